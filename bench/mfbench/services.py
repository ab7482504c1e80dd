# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""Scenario (a): one service process on one core, microforum vs Koa, every original read route."""

from __future__ import annotations

import subprocess

from . import answers, stats, wrk
from .core import MICROFORUM, NODE_SERVER, READ_ROUTES, Case, Comparison, Context, command_available
from .procs import Proc, free_port, http_get, stop_all, wait_ready

GOAL = stats.Goal("at_least", 1.5, "≥ 1.5× Koa")


def serve_argv(service: str, port: int) -> list[str]:
    """`microforum serve` for one process (one worker when the option exists)."""
    argv = [MICROFORUM, "serve", service, "--port", str(port)]
    helptext = subprocess.run([MICROFORUM, "serve", "--help"], capture_output=True, text=True).stdout
    if "--host" in helptext:
        argv += ["--host", "127.0.0.1"]  # loopback only
    return [*argv, "--workers", "1"] if "--workers" in helptext else argv


def _start_pair(ctx: Context, service: str, cpu: str | None) -> tuple[Proc, int, Proc | None, int]:
    koa_port = free_port()
    koa = ctx.start(f"koa-{service}", ["node", NODE_SERVER, service], cpus=cpu, env={"PORT": str(koa_port)})
    wait_ready(koa_port, ["/"], koa)
    missing = command_available("serve")
    if missing:
        ctx.note("a", missing)
        return koa, koa_port, None, 0
    port = free_port()
    data = ctx.tmp / f"data-{service}"
    data.mkdir(exist_ok=True)
    mf = ctx.start(
        f"mf-{service}", serve_argv(service, port), cpus=cpu, env={"DATA_DIR": str(data)}, cwd=str(data)
    )
    try:
        wait_ready(port, ["/"], mf)
    except RuntimeError as exc:
        ctx.note("a", f"microforum serve {service} did not start: {exc}")
        mf.stop()
        return koa, koa_port, None, 0
    return koa, koa_port, mf, port


def _routes_ok(ctx: Context, koa_port: int, port: int, routes: list[str], service: str) -> list[str]:
    """The routes microforum answers with 200 and Koa's answer (else a note, not measured)."""
    ok = []
    for route in routes:
        status, body = http_get(port, route)
        _, koa_body = http_get(koa_port, route)
        diff = answers.difference(koa_body, body)
        if status != 200 or diff:
            ctx.note("a", f"microforum {service} GET {route}: {status} {diff or ''}: not measured")
            continue
        ok.append(route)
        extra = answers.added_fields(koa_body, body)
        if extra:
            ctx.note("a", f"GET {route}: same answer as Koa, plus field(s) {', '.join(sorted(extra))}")
    return ok


def run(ctx: Context) -> None:
    """Measure every read route of every service, Koa and microforum alternating run by run.

    All six processes start together (idle ones use no CPU) to keep the session short.
    """
    server_cpu, load_cpu = ctx.cpu_sets()
    ctx.note(
        "a",
        f"server pinned to CPU {server_cpu}, wrk (-t1 -c{ctx.settings.connections}) "
        f"to CPU {load_cpu}; runs alternate between the two systems"
        + ("" if not ctx.settings.routes_per_service else "; quick set: the list route of each service only"),
    )
    pairs = {}
    try:
        for service in READ_ROUTES:
            pairs[service] = _start_pair(ctx, service, server_cpu)
        for service in READ_ROUTES:
            routes = ctx.settings.routes(service)
            koa, koa_port, mf, mf_port = pairs[service]
            systems = [("Koa", koa, koa_port)] + ([("microforum", mf, mf_port)] if mf else [])
            mix = ctx.script(f"mix-{service}.lua", wrk.rotate_script(routes))
            for _, _, port in systems:
                ctx.warm(f"http://127.0.0.1:{port}/", mix, load_cpu, ctx.settings.connections)
            measurable = _routes_ok(ctx, koa_port, mf_port, routes, service) if mf else []
            for route in routes:
                _measure_route(ctx, service, route, systems, route in measurable, load_cpu)
    finally:
        stop_all([p for koa, _, mf, _ in pairs.values() for p in (koa, mf) if p])


def _measure_route(
    ctx: Context,
    service: str,
    route: str,
    systems: list[tuple[str, Proc, int]],
    mf_ok: bool,
    load_cpu: str | None,
) -> None:
    subject = f"{service} GET {route}"
    cases = {name: Case("a", subject, name) for name, _, _ in systems if name == "Koa" or mf_ok}
    for _ in range(ctx.settings.runs):
        for name, proc, port in systems:
            if name in cases:
                ctx.measure(cases[name], f"http://127.0.0.1:{port}{route}", {"server": proc.tree()}, load_cpu)
    ctx.cases.extend(cases.values())
    if "microforum" in cases:
        ctx.comparisons.append(Comparison("a", subject, cases["microforum"], cases["Koa"], "rps", GOAL))
        ctx.comparisons.append(Comparison("a", subject, cases["microforum"], cases["Koa"], "per_cpu", GOAL))
