# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "4.1× pre-issue")
"""Scenario (w): writes through the whole local stack, this tree vs an older one, side by side.

`POST /api/posts` (posts checks its user and thread with the other services and commits before
it answers) through `microforum up` with one replica per service, on SQLite and on PostgreSQL,
for this source tree and for an older checkout with its own venv (`--old-tree`). Both stacks
run at once and the runs alternate between them, so a busy machine disturbs both alike. Each
tree runs as `make run` runs it: its load balancer's compiled build is made first with that
tree's own venv (`python -m microforum.lb.native --if-possible`, the build cache is keyed by
source, so each tree gets its own), and the report says which load balancer each stack ran.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import yaml

from . import configs, stats, wrk
from .core import MICROFORUM, REPO, Case, Comparison, Context, Metric
from .postgres import Postgres
from .procfs import read_cmdline
from .procs import Proc, free_port, stop_all
from .stacks import POST_BODY, post_ok, ready_or_stopped

GOAL = stats.Goal("at_least", 4.0, "≥ 4× pre-issue")
OLD = "pre-issue"
NEW = "microforum"
METRICS: tuple[Metric, ...] = ("rps", "per_cpu")
SERVICES = [name for _, name in configs.ROUTES]


def microforum_of(tree: Path) -> str:
    """The `microforum` command of a source tree: its own venv's, this tree's for this one."""
    if tree.resolve() == REPO:
        return MICROFORUM
    return str(tree / ".venv" / "bin" / "microforum")


def database_names(system: str) -> dict[str, str]:
    """Service -> database name for one system (each system has its own databases)."""
    prefix = "old" if system == OLD else "new"
    return {name: f"{prefix}_{name}" for name in SERVICES}


def own_database_pids(pids: dict[int, str], system: str) -> list[int]:
    """The PostgreSQL processes (pid -> command line) that are not another system's connections."""
    others = [f" {db} " for other in (OLD, NEW) if other != system for db in database_names(other).values()]
    return [pid for pid, cmdline in pids.items() if not any(db in f"{cmdline} " for db in others)]


def python_of(tree: Path) -> str:
    """The Python of a source tree's venv (this tree's for this one)."""
    return str(Path(microforum_of(tree)).parent / "python")


def build_native(tree: Path) -> str:
    """Make `tree`'s compiled load balancer with its own venv (a no-op when up to date): its
    last line of output, for the report."""
    argv = [python_of(tree), "-m", "microforum.lb.native", "--if-possible"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else f"exit {done.returncode}"


def lb_mode(log: Path) -> str:
    """What `microforum up` said about its load balancer (compiled or interpreted, and why)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    said = [
        line[line.index("load balancer") :].strip()
        for line in text.splitlines()
        if "load balancer" in line and ("compiled" in line or "interpreted" in line)
    ]
    return said[-1] if said else "load balancer: not said"


def old_tree_missing(tree: str) -> str | None:
    """None when `tree` has a venv with `microforum`, else what to do (for the report)."""
    if not tree:
        return "no --old-tree given: `git worktree add /tmp/mf-old COMMIT` with its own .venv"
    if not Path(microforum_of(Path(tree))).exists():
        return f"{tree}/.venv/bin/microforum not found: make a venv there and `pip install -e .`"
    return None


def _start(
    ctx: Context, system: str, tree: Path, store: str, urls: dict[str, str] | None
) -> tuple[Proc, int]:
    name = f"w-{system}-{store}".replace(" ", "-").lower()
    data = ctx.tmp / f"data-{name}"
    data.mkdir(exist_ok=True)
    port = free_port()
    path = ctx.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(configs.forum_stack(port, str(data), urls), sort_keys=False))
    argv = [microforum_of(tree), "up", "--stack", str(path), "--port", str(port)]
    proc = ctx.start(name, argv, cpus=ctx.all_cpus(), cwd=str(ctx.tmp))
    started = ready_or_stopped(proc, port)
    ctx.note("w", f"{system} on {store}: {lb_mode(proc.log)}")
    return started


def run(ctx: Context) -> None:
    """(w) on SQLite, then on PostgreSQL (one throw-away server, one database per service)."""
    missing = old_tree_missing(ctx.settings.old_tree)
    if missing:
        ctx.note("w", missing)
        return
    ctx.note(
        "w",
        f"both stacks pinned to CPUs {ctx.all_cpus()} with wrk (-t1 -c{ctx.settings.write_connections}); "
        f"{OLD} = {ctx.settings.old_tree} ({_commit(ctx.settings.old_tree)}); each tree's own "
        "compiled load balancer when it can be built; runs alternate between the two; CPU per write "
        "counts every process of the stack (supervisor, LB, replicas) and, on PostgreSQL, the server's",
    )
    trees = {OLD: Path(ctx.settings.old_tree), NEW: REPO}
    for system, tree in trees.items():
        ctx.note("w", f"{system} build: {build_native(tree)}")
    _store(ctx, trees, "SQLite", None)
    try:
        pg = Postgres([db for system in trees for db in database_names(system).values()])
    except RuntimeError as exc:
        ctx.note("w", f"PostgreSQL not available: {exc}")
        return
    try:
        _store(ctx, trees, "PostgreSQL", pg)
    finally:
        pg.stop()


def _commit(tree: str) -> str:
    head = Path(tree) / ".git"
    if head.is_file():  # a worktree: "gitdir: …"
        head = Path(head.read_text().split(":", 1)[1].strip())
    try:
        return (head / "HEAD").read_text().strip()[:7]
    except OSError:
        return "commit unknown"


def _store(ctx: Context, trees: dict[str, Path], store: str, pg: Postgres | None) -> None:
    stacks: dict[str, tuple[Proc, int]] = {}
    try:
        for system, tree in trees.items():
            urls = {s: pg.url(db) for s, db in database_names(system).items()} if pg else None
            try:
                stacks[system] = _start(ctx, system, tree, store, urls)
            except RuntimeError as exc:
                ctx.note("w", f"{system} on {store} did not start: {exc}")
        _measure(ctx, stacks, store, pg)
    finally:
        for proc, _ in stacks.values():
            proc.send(signal.SIGINT)  # Ctrl-C: the supervisor drains and stops its replicas
        stop_all([proc for proc, _ in stacks.values()], signal.SIGINT)


def _measure(ctx: Context, stacks: dict[str, tuple[Proc, int]], store: str, pg: Postgres | None) -> None:
    script = ctx.script("post-w.lua", wrk.post_script("/api/posts", POST_BODY))
    conns, cpus, subject = ctx.settings.write_connections, ctx.all_cpus(), f"POST /api/posts ({store})"
    cases: dict[str, Case] = {}
    for system, (_, port) in stacks.items():
        status, body = post_ok(port)
        if status != 201:
            ctx.note("w", f"{system} on {store}: POST /api/posts answered {status} {body!r}: not measured")
            continue
        ctx.warm(f"http://127.0.0.1:{port}/", script, cpus, conns)
        cases[system] = Case("w", subject, f"{system} ({store})", cpu_role="stack")
    for _ in range(ctx.settings.runs):
        for system, case in cases.items():
            proc, port = stacks[system]
            server = {pid: read_cmdline(pid) for pid in pg.pids()} if pg else {}
            pids = proc.tree() + own_database_pids(server, system)
            ctx.measure(case, f"http://127.0.0.1:{port}/", {"stack": pids}, cpus, script, conns)
    ctx.cases.extend(cases.values())
    if OLD in cases and NEW in cases:
        for metric in METRICS:
            goal = GOAL if metric == "rps" else None
            ctx.comparisons.append(Comparison("w", subject, cases[NEW], cases[OLD], metric, goal))
