# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""Scenarios (a) and (p): one service process on one core, microforum vs Koa, every original read
route; (a) on SQLite, (p) on PostgreSQL (the server pinned to the service's core)."""

from __future__ import annotations

import subprocess

from . import answers, stats, wrk
from .core import MICROFORUM, NODE_SERVER, READ_ROUTES, Case, Comparison, Context, Metric, command_available
from .postgres import Postgres
from .procs import Proc, free_port, http_get, repin, stop_all, wait_ready

GOAL = stats.Goal("at_least", 1.5, "≥ 1.5× Koa")
METRICS: tuple[Metric, ...] = ("rps", "per_cpu")


def serve_argv(service: str, port: int) -> list[str]:
    """`microforum serve` for one process (one worker when the option exists)."""
    argv = [MICROFORUM, "serve", service, "--port", str(port)]
    helptext = subprocess.run([MICROFORUM, "serve", "--help"], capture_output=True, text=True).stdout
    if "--host" in helptext:
        argv += ["--host", "127.0.0.1"]  # loopback only
    return [*argv, "--workers", "1"] if "--workers" in helptext else argv


def _start_pair(
    ctx: Context, scenario: str, service: str, cpu: str | None, database: str | None
) -> tuple[Proc, int, Proc | None, int]:
    koa_port = free_port()
    koa = ctx.start(
        f"koa-{scenario}-{service}", ["node", NODE_SERVER, service], cpus=cpu, env={"PORT": str(koa_port)}
    )
    wait_ready(koa_port, ["/"], koa)
    missing = command_available("serve")
    if missing:
        ctx.note(scenario, missing)
        return koa, koa_port, None, 0
    port = free_port()
    data = ctx.tmp / f"data-{scenario}-{service}"
    data.mkdir(exist_ok=True)
    env = {"DATA_DIR": str(data), **({"DATABASE_URL": database} if database else {})}
    mf = ctx.start(f"mf-{scenario}-{service}", serve_argv(service, port), cpus=cpu, env=env, cwd=str(data))
    try:
        wait_ready(port, ["/"], mf)
    except RuntimeError as exc:
        ctx.note(scenario, f"microforum serve {service} did not start: {exc}")
        mf.stop()
        return koa, koa_port, None, 0
    return koa, koa_port, mf, port


def _routes_ok(
    ctx: Context, scenario: str, koa_port: int, port: int, routes: list[str], service: str
) -> list[str]:
    """The routes microforum answers with 200 and Koa's answer (else a note, not measured)."""
    ok = []
    for route in routes:
        status, body = http_get(port, route)
        _, koa_body = http_get(koa_port, route)
        diff = answers.difference(koa_body, body)
        if status != 200 or diff:
            ctx.note(scenario, f"microforum {service} GET {route}: {status} {diff or ''}: not measured")
            continue
        ok.append(route)
        extra = answers.added_fields(koa_body, body)
        if extra:
            ctx.note(scenario, f"GET {route}: same answer as Koa, plus field(s) {', '.join(sorted(extra))}")
    return ok


def run(ctx: Context) -> None:
    """(a): every read route of every service on SQLite, Koa and microforum alternating run by run."""
    compare(ctx, "a")


def run_postgres(ctx: Context) -> None:
    """(p): as (a) with each service on its own database of a throw-away PostgreSQL server.

    The server is pinned to the services' core and its processes count in their CPU per request:
    one core holds the service and its database, as one core holds Koa and its in-memory data.
    """
    missing = command_available("serve")
    if missing:
        ctx.note("p", missing)
        return
    try:
        pg = Postgres(list(READ_ROUTES))
    except RuntimeError as exc:
        ctx.note("p", f"PostgreSQL not available: {exc}")
        return
    try:
        server_cpu, _ = ctx.cpu_sets()
        if server_cpu:
            for pid in pg.pids():  # backends forked later inherit the postmaster's affinity
                repin(pid, server_cpu)
        compare(ctx, "p", pg)
    finally:
        pg.stop()


def compare(ctx: Context, scenario: str, pg: Postgres | None = None) -> None:
    """Measure every read route of every service, Koa and microforum alternating run by run.

    All six processes start together (idle ones use no CPU) to keep the session short.
    """
    server_cpu, load_cpu = ctx.cpu_sets()
    where = f"; PostgreSQL pinned to CPU {server_cpu}, its CPU counted with the service's" if pg else ""
    ctx.note(
        scenario,
        f"server pinned to CPU {server_cpu}, wrk (-t1 -c{ctx.settings.connections}) "
        f"to CPU {load_cpu}; runs alternate between the two systems{where}"
        + ("" if not ctx.settings.routes_per_service else "; quick set: the list route of each service only"),
    )
    pairs = {}
    try:
        for service in READ_ROUTES:
            url = pg.url(service) if pg else None
            pairs[service] = _start_pair(ctx, scenario, service, server_cpu, url)
        for service in READ_ROUTES:
            routes = ctx.settings.routes(service)
            koa, koa_port, mf, mf_port = pairs[service]
            systems = [("Koa", koa, koa_port)] + ([("microforum", mf, mf_port)] if mf else [])
            mix = ctx.script(f"mix-{service}.lua", wrk.rotate_script(routes))
            for _, _, port in systems:
                ctx.warm(f"http://127.0.0.1:{port}/", mix, load_cpu, ctx.settings.connections)
            measurable = _routes_ok(ctx, scenario, koa_port, mf_port, routes, service) if mf else []
            for route in routes:
                subject = f"{service} GET {route}"
                _measure_route(ctx, scenario, subject, systems, route in measurable, load_cpu, pg)
    finally:
        stop_all([p for koa, _, mf, _ in pairs.values() for p in (koa, mf) if p])


def _measure_route(
    ctx: Context,
    scenario: str,
    subject: str,
    systems: list[tuple[str, Proc, int]],
    mf_ok: bool,
    load_cpu: str | None,
    pg: Postgres | None,
) -> None:
    cases = {name: Case(scenario, subject, name) for name, _, _ in systems if name == "Koa" or mf_ok}
    route = subject.split(" GET ", 1)[1]
    for _ in range(ctx.settings.runs):
        for name, proc, port in systems:
            if name in cases:
                roles = {"server": proc.tree()}
                if pg and name == "microforum":
                    roles["server"] += pg.pids()
                ctx.measure(cases[name], f"http://127.0.0.1:{port}{route}", roles, load_cpu)
    ctx.cases.extend(cases.values())
    if "microforum" in cases:
        for metric in METRICS:
            ctx.comparisons.append(
                Comparison(scenario, subject, cases["microforum"], cases["Koa"], metric, GOAL)
            )
