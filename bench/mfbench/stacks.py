# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""Scenarios (c) whole stack end to end and (d) writes."""

from __future__ import annotations

import json
import signal

from . import configs, stats, wrk
from .balancers import ran_compiled, start_up
from .core import NODE_SERVER, READ_ROUTES, Case, Comparison, Context, command_available
from .postgres import Postgres
from .procs import Proc, free_port, stop_all, wait_ready

E2E_GOAL = stats.Goal("at_least", 1.5, "≥ 1.5× nginx + Koa")
UP_GOAL = stats.Goal("at_most", 3.0, "≤ 3 s")
ALL_ROUTES = [r for routes in READ_ROUTES.values() for r in routes]
READY = ["/api/users", "/api/threads", "/api/posts"]
READY_DEADLINE_S = 20.0  # generous: the goal is 3 s
POST_BODY = {"thread": 1, "user": 2, "text": "A benchmark post"}


def _koa_stack(ctx: Context, cpus: str) -> list[Proc]:
    procs, upstreams = [], {}
    for _, name in configs.ROUTES:
        port = free_port()
        proc = ctx.start(f"e2e-koa-{name}", ["node", NODE_SERVER, name], cpus=cpus, env={"PORT": str(port)})
        procs.append(proc)
        wait_ready(port, ["/"], proc)
        upstreams[name] = port
    port = free_port()
    conf = ctx.tmp / "nginx-e2e.conf"
    routes = {prefix: name for prefix, name in configs.ROUTES}
    conf.write_text(configs.nginx_conf(str(ctx.tmp), port, upstreams, routes))
    argv = ["nginx", "-p", str(ctx.tmp), "-e", str(ctx.tmp / "nginx-error.log"), "-c", str(conf)]
    nginx = ctx.start("e2e-nginx", argv, cpus=cpus)
    procs.append(nginx)
    wait_ready(port, READY, nginx)
    nginx.port = port  # type: ignore[attr-defined]
    return procs


def _mf_stack(
    ctx: Context, name: str, cpus: str, databases: dict[str, str] | None = None
) -> tuple[Proc, int]:
    data = ctx.tmp / f"data-{name}"
    data.mkdir(exist_ok=True)
    proc, port = start_up(ctx, name, configs.forum_stack(free_port(), str(data), databases), cpus)
    return ready_or_stopped(proc, port)


def ready_or_stopped(proc: Proc, port: int) -> tuple[Proc, int]:
    """`(proc, port)` once the stack on `port` serves; a stack that never does is stopped."""
    try:
        wait_ready(port, READY, proc, deadline_s=READY_DEADLINE_S)
    except RuntimeError:
        proc.stop(signal.SIGINT)
        raise
    return proc, port


def end_to_end(ctx: Context) -> None:
    """(c) and (d) on SQLite: both stacks on the same cores, a mix of every read route."""
    cpus = ctx.all_cpus()
    ctx.note(
        "c",
        f"each whole stack pinned to CPUs {cpus}, wrk (-t1 -c{ctx.settings.connections}) "
        "on the same CPUs (this machine has no third core); a mix of the 7 read routes",
    )
    mix = ctx.script("mix-all.lua", wrk.rotate_script(ALL_ROUTES))
    koa = _koa_stack(ctx, cpus)
    koa_port = koa[-1].port  # type: ignore[attr-defined]
    mf: Proc | None = None
    try:
        missing = command_available("up")
        if missing:
            ctx.note("c", missing)
            ctx.note("d", missing)
        else:
            try:
                mf, mf_port = _mf_stack(ctx, "mf-e2e", cpus)
                how = "compiled with mypyc" if ran_compiled(ctx, "mf-e2e") else "interpreted"
                ctx.note("c", f"microforum's load balancer ran {how}")
            except RuntimeError as exc:
                ctx.note("c", f"microforum up did not start: {exc}")
        systems = [("nginx + Koa", koa_port, [p for proc in koa for p in proc.tree()])]
        if mf:
            systems.append(("microforum", mf_port, mf.tree()))
        cases = _measure_mix(ctx, systems, mix, cpus)
        if mf:
            ctx.comparisons.append(
                Comparison("c", "read mix", cases["microforum"], cases["nginx + Koa"], "rps", E2E_GOAL)
            )
            ctx.comparisons.append(
                Comparison("c", "read mix", cases["microforum"], cases["nginx + Koa"], "per_cpu", E2E_GOAL)
            )
            writes(ctx, {"SQLite": (mf, mf_port)})
    finally:
        if mf:
            mf.send(signal.SIGINT)  # Ctrl-C: the supervisor drains and stops its replicas
        stop_all([*koa[::-1], *([mf] if mf else [])])


def _measure_mix(
    ctx: Context, systems: list[tuple[str, int, list[int]]], mix: str, cpus: str
) -> dict[str, Case]:
    for _, port, _ in systems:
        ctx.warm(f"http://127.0.0.1:{port}/", mix, cpus, ctx.settings.connections)
    cases = {name: Case("c", "read mix (7 routes)", name, cpu_role="stack") for name, _, _ in systems}
    for _ in range(ctx.settings.runs):
        for name, port, pids in systems:
            ctx.measure(cases[name], f"http://127.0.0.1:{port}/", {"stack": pids}, cpus, mix)
    ctx.cases.extend(cases.values())
    return cases


def post_ok(port: int) -> tuple[int, str]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/api/posts", json.dumps(POST_BODY), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")[:200]
    finally:
        conn.close()


def writes(
    ctx: Context, stacks: dict[str, tuple[Proc, int]], database: Postgres | None = None
) -> dict[str, Case]:
    """(d) POST /api/posts through the LB (posts checks its user and thread with the others).

    The PostgreSQL server's processes count as part of the system under test (SQLite's work
    happens inside the services' processes).
    """
    script = ctx.script("post.lua", wrk.post_script("/api/posts", POST_BODY))
    cases: dict[str, Case] = {}
    conns = ctx.settings.write_connections
    for db, (proc, port) in stacks.items():
        status, body = post_ok(port)
        if status not in (200, 201):
            ctx.note("d", f"POST /api/posts on {db} answered {status} {body!r}: not measured")
            continue
        ctx.warm(f"http://127.0.0.1:{port}/", script, ctx.all_cpus(), conns)
        case = cases[db] = Case("d", "POST /api/posts", f"microforum ({db})", cpu_role="stack")
        for _ in range(ctx.settings.runs):
            pids = proc.tree() + (database.pids() if database else [])
            ctx.measure(case, f"http://127.0.0.1:{port}/", {"stack": pids}, ctx.all_cpus(), script, conns)
        ctx.cases.append(case)
    return cases


def writes_postgres(ctx: Context) -> None:
    """(d) on PostgreSQL: a throw-away server, one database per service."""
    missing = command_available("up")
    if missing:
        return
    try:
        pg = Postgres([name for _, name in configs.ROUTES])
    except RuntimeError as exc:
        ctx.note("d", f"PostgreSQL not available: {exc}")
        return
    try:
        urls = {name: pg.url(name) for _, name in configs.ROUTES}
        proc, port = _mf_stack(ctx, "mf-pg", ctx.all_cpus(), urls)
        try:
            cases = writes(ctx, {"PostgreSQL": (proc, port)}, pg)
        finally:
            proc.stop(signal.SIGINT)
        sqlite = next((c for c in ctx.cases if c.scenario == "d" and "SQLite" in c.system), None)
        if sqlite and "PostgreSQL" in cases:
            ctx.comparisons.append(Comparison("d", "POST /api/posts", cases["PostgreSQL"], sqlite, "rps"))
    except RuntimeError as exc:
        ctx.note("d", f"microforum on PostgreSQL did not run: {exc}")
    finally:
        pg.stop()
