# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""Scenario (b): load-balancer capacity, microforum vs nginx vs HAProxy, trivially fast backend."""

from __future__ import annotations

from pathlib import Path

import yaml

from . import configs, procfs, stats
from .core import BENCH, MICROFORUM, PYTHON, Case, Comparison, Context, command_available
from .procs import Proc, free_port, repin, stop_all, wait_ready

# Issue 14's goals: compiled (what `make run` runs) no dearer than HAProxy, interpreted within 1.3×.
CPU_GOAL = stats.Goal("at_most", 1.0, "≤ 1.0× HAProxy")
INTERPRETED_CPU_GOAL = stats.Goal("at_most", 1.3, "≤ 1.3× HAProxy")
P99_GOAL = stats.Goal("at_most", 1.0, "≤ 1.0× HAProxy (p99 no worse)")
BACKEND = [PYTHON, str(BENCH / "backend.py")]
PASSTHROUGH = [PYTHON, str(BENCH / "passthrough.py")]


def _backend(ctx: Context, cpu: str | None) -> tuple[Proc, int]:
    port = free_port()
    proc = ctx.start("backend", BACKEND, cpus=cpu, env={"PORT": str(port)})
    wait_ready(port, ["/"], proc)
    return proc, port


def _nginx(ctx: Context, cpu: str | None, backend_port: int) -> tuple[Proc, int]:
    port = free_port()
    conf = ctx.tmp / "nginx-lb.conf"
    conf.write_text(configs.nginx_conf(str(ctx.tmp), port, {"backend": backend_port}, {"/": "backend"}))
    argv = ["nginx", "-p", str(ctx.tmp), "-e", str(ctx.tmp / "nginx-error.log"), "-c", str(conf)]
    proc = ctx.start("nginx-lb", argv, cpus=cpu)
    wait_ready(port, ["/"], proc)
    return proc, port


def _haproxy(ctx: Context, cpu: str | None, backend_port: int) -> tuple[Proc, int]:
    port = free_port()
    cfg = ctx.tmp / "haproxy.cfg"
    cfg.write_text(configs.haproxy_cfg(port, backend_port))
    proc = ctx.start("haproxy", ["haproxy", "-db", "-f", str(cfg)], cpus=cpu)
    wait_ready(port, ["/"], proc)
    return proc, port


def _passthrough(ctx: Context, cpu: str | None, backend_port: int) -> tuple[Proc, int]:
    port = free_port()
    env = {"PORT": str(port), "BACKEND_PORT": str(backend_port)}
    proc = ctx.start("passthrough", PASSTHROUGH, cpus=cpu, env=env)
    wait_ready(port, ["/"], proc)
    return proc, port


def start_up(
    ctx: Context, name: str, stack: dict[str, object], cpu: str | None, env: dict[str, str] | None = None
) -> tuple[Proc, int]:
    """`microforum up` on a generated stack file; (process, port) once it starts."""
    port = int(stack["local"]["port"])  # type: ignore[index]
    path = ctx.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(stack, sort_keys=False))
    argv = [MICROFORUM, "up", "--stack", str(path), "--port", str(port)]
    return ctx.start(name, argv, cpus=cpu, cwd=str(ctx.tmp), env=env or {}), port


def ran_compiled(ctx: Context, name: str) -> bool:
    """Whether the `up` started as `name` said it loaded the compiled load balancer."""
    return COMPILED_LINE in ctx.log(name).read_text(errors="replace")


COMPILED_LINE = "load balancer compiled with mypyc"  # what `up` prints (lb/compiled.py)


def _microforum(
    ctx: Context, cpu: str | None, load_cpu: str | None, name: str, env: dict[str, str]
) -> tuple[Proc, int, list[int]]:
    data = ctx.tmp / f"data-{name}"
    data.mkdir(exist_ok=True)
    stack = configs.lb_stack(free_port(), str(data), BACKEND)
    proc, port = start_up(ctx, name, stack, cpu, env)
    wait_ready(port, ["/"], proc)
    backends = [p for p in proc.tree() if "backend.py" in procfs.read_cmdline(p)]
    for pid in backends:
        if load_cpu:
            repin(pid, load_cpu)
    return proc, port, backends


def run(ctx: Context) -> None:
    """Each load balancer on one core in front of the same backend code on the other core."""
    lb_cpu, load_cpu = ctx.cpu_sets()
    ctx.note(
        "b",
        f"load balancer pinned to CPU {lb_cpu}; backend ({Path(BACKEND[1]).name}, "
        f"asyncio + uvloop) and wrk (-t1 -c{ctx.settings.connections}) to CPU {load_cpu}. "
        "Every LB logs each request and keeps connections to the backend alive. "
        "microforum's figure is its whole `up` process (the LB with its health checks, access "
        "log and the supervisor) without the backend replica it starts. `asyncio pass-through` "
        "(passthrough.py) is the floor of that architecture: asyncio + uvloop + httptools "
        "relaying requests with no feature at all (no log, no rules, no checks).",
    )
    backend, backend_port = _backend(ctx, load_cpu)
    procs: list[Proc] = [backend]
    lbs: dict[str, tuple[Proc, int, list[int]]] = {}
    try:
        starts = (("HAProxy", _haproxy), ("nginx", _nginx), ("asyncio pass-through", _passthrough))
        for name, start in starts:
            proc, port = start(ctx, lb_cpu, backend_port)
            procs.append(proc)
            lbs[name] = (proc, port, [backend.pid])
        missing = command_available("up")
        if missing:
            ctx.note("b", missing)
        else:
            # The default run path (compiled when `make bench` could build it), and interpreted.
            for system, name, env in (
                ("microforum", "mf-lb", {}),
                ("microforum (interpreted)", "mf-lb-interpreted", {"MICROFORUM_NATIVE": "0"}),
            ):
                try:
                    proc, port, backends = _microforum(ctx, lb_cpu, load_cpu, name, env)
                except RuntimeError as exc:
                    ctx.note("b", f"{system} (LB stack) did not start: {exc}")
                    continue
                procs.append(proc)
                lbs[system] = (proc, port, backends)
            if "microforum" in lbs:
                how = "compiled with mypyc" if ran_compiled(ctx, "mf-lb") else "interpreted (no build)"
                ctx.note("b", f"`microforum` is what `make run` runs: here its load balancer ran {how}.")
        _measure_all(ctx, lbs, load_cpu)
    finally:
        stop_all(procs[::-1])


def _measure_all(ctx: Context, lbs: dict[str, tuple[Proc, int, list[int]]], load_cpu: str | None) -> None:
    for _, port, _ in lbs.values():
        ctx.warm(f"http://127.0.0.1:{port}/", None, load_cpu, ctx.settings.connections)
    cases = {name: Case("b", "GET / proxied", name, cpu_role="lb") for name in lbs}
    for _ in range(ctx.settings.runs):
        for name, (proc, port, backends) in lbs.items():
            lb_pids = [p for p in proc.tree() if p not in backends]
            roles = {"lb": lb_pids, "backend": backends}
            ctx.measure(cases[name], f"http://127.0.0.1:{port}/", roles, load_cpu)
    ctx.cases.extend(cases.values())
    base, floor = cases["HAProxy"], cases["asyncio pass-through"]
    ctx.comparisons.append(Comparison("b", "CPU per proxied request", cases["nginx"], base, "cpu"))
    ctx.comparisons.append(Comparison("b", "CPU per proxied request", floor, base, "cpu"))
    if "microforum" in cases:
        mf = cases["microforum"]
        ctx.comparisons.append(Comparison("b", "CPU per proxied request", mf, base, "cpu", CPU_GOAL))
        ctx.comparisons.append(Comparison("b", "p99 latency at 64 connections", mf, base, "p99", P99_GOAL))
        ctx.comparisons.append(Comparison("b", "req/s (LB on one core)", mf, base, "rps"))
        ctx.comparisons.append(Comparison("b", "CPU per proxied request", mf, cases["nginx"], "cpu"))
        ctx.comparisons.append(Comparison("b", "CPU per proxied request", mf, floor, "cpu"))
    if "microforum (interpreted)" in cases:
        slow = cases["microforum (interpreted)"]
        subject = "CPU per proxied request, interpreted"
        ctx.comparisons.append(Comparison("b", subject, slow, base, "cpu", INTERPRETED_CPU_GOAL))
