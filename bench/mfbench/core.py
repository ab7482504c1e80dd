"""What every scenario shares: settings, the run context, cases and comparisons."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import stats, wrk
from .measure import Run, measured, run_wrk
from .procs import Proc

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
MICROFORUM = str(REPO / ".venv" / "bin" / "microforum")
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
NODE_SERVER = str(BENCH / "baseline" / "server.js")

# The original read routes of each service (docs/architecture.md "The services").
READ_ROUTES = {
    "users": ["/api/users", "/api/users/2"],
    "threads": ["/api/threads", "/api/threads/2"],
    "posts": ["/api/posts", "/api/posts/in-thread/2", "/api/posts/by-user/2"],
}


@dataclass(frozen=True)
class Settings:
    """How long and how often: the default set, or `--quick`."""

    runs: int = 3
    seconds: int = 5
    warmup: int = 2
    connections: int = 64
    write_connections: int = 16
    startup_runs: int = 3
    routes_per_service: int = 0  # scenario (a): 0 = every read route; the quick set takes 1
    old_tree: str = ""  # scenario (w): an older checkout with its own .venv

    def routes(self, service: str) -> list[str]:
        """The read routes of `service` scenario (a) measures."""
        routes = READ_ROUTES[service]
        return routes[: self.routes_per_service] if self.routes_per_service else routes

    @classmethod
    def quick(cls, old_tree: str = "") -> Settings:
        return cls(runs=3, seconds=1, warmup=1, startup_runs=1, routes_per_service=1, old_tree=old_tree)


@dataclass
class Case:
    """One system measured on one subject, over several runs."""

    scenario: str
    subject: str  # "users GET /api/users"
    system: str  # "microforum", "Koa", "nginx", ...
    runs: list[Run] = field(default_factory=list)
    cpu_role: str = "server"  # whose CPU per request is the headline figure

    def rps(self) -> stats.Summary:
        return stats.summarize([r.wrk.rps for r in self.runs])

    def p50(self) -> stats.Summary:
        return stats.summarize([r.wrk.p50_ms for r in self.runs])

    def p99(self) -> stats.Summary:
        return stats.summarize([r.wrk.p99_ms for r in self.runs])

    def cpu(self) -> stats.Summary:
        return stats.summarize([r.cpu_us.get(self.cpu_role, float("nan")) for r in self.runs])

    def errors(self) -> int:
        return sum(r.wrk.non_2xx_3xx + r.wrk.socket_errors for r in self.runs)


# rps: req/s (higher is better); cpu: CPU µs per request; p99: latency; per_cpu: requests per
# CPU-second, i.e. throughput per core (higher is better; the most robust figure on a busy machine).
Metric = Literal["rps", "cpu", "p99", "per_cpu"]


@dataclass(frozen=True)
class Comparison:
    """A candidate against its baseline from the same run, maybe with a goal on the ratio."""

    scenario: str
    subject: str
    candidate: Case
    baseline: Case
    metric: Metric
    goal: stats.Goal | None = None

    def ratio(self) -> float:
        if self.metric == "per_cpu":  # inverse of the CPU ratio
            return stats.ratio(self.baseline.cpu().median, self.candidate.cpu().median)
        pick = {"rps": Case.rps, "cpu": Case.cpu, "p99": Case.p99}[self.metric]
        return stats.ratio(pick(self.candidate).median, pick(self.baseline).median)


@dataclass
class Context:
    """One benchmark session: settings, temp dir, CPUs, and everything measured so far."""

    settings: Settings
    tmp: Path
    cases: list[Case] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    startup_s: list[float] = field(default_factory=list)
    startup_first_s: list[float] = field(default_factory=list)  # (e) first answer on every route
    cpus: list[int] = field(default_factory=lambda: sorted(os.sched_getaffinity(0)))

    def note(self, scenario: str, text: str) -> None:
        """A line for the report under `scenario` (skips, failures, pinning)."""
        print(f"[{scenario}] {text}", flush=True)
        self.notes.setdefault(scenario, []).append(text)

    def cpu_sets(self) -> tuple[str | None, str | None]:
        """(server CPU, load-generator CPU): the last core for the server, the first for wrk."""
        if len(self.cpus) < 2:
            return None, None
        return str(self.cpus[-1]), str(self.cpus[0])

    def all_cpus(self) -> str:
        return ",".join(str(c) for c in self.cpus[:2])

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def start(self, name: str, argv: list[str], **kw: object) -> Proc:
        """Start a process under test, logging to the temp dir."""
        return Proc(name, argv, self.log(name), **kw)  # type: ignore[arg-type]

    def warm(self, url: str, script: str | None, cpus: str | None, connections: int) -> None:
        """Warm-up load, not measured (JITs, caches, connection pools)."""
        argv = wrk.argv(url, connections, self.settings.warmup, script)
        run_wrk(argv, cpus, self.log("wrk"))

    def measure(
        self,
        case: Case,
        url: str,
        roles: dict[str, list[int]],
        cpus: str | None,
        script: str | None = None,
        connections: int | None = None,
    ) -> Run:
        """One measured run appended to `case`."""
        argv = wrk.argv(url, connections or self.settings.connections, self.settings.seconds, script)
        run = measured(argv, cpus, roles, self.log("wrk"))
        case.runs.append(run)
        flag = " NOISY" if run.noisy else ""
        cpu = run.cpu_us.get(case.cpu_role, float("nan"))
        print(
            f"  {case.system:>12} {case.subject}: {run.wrk.rps:,.0f} req/s, "
            f"{cpu:.1f} µs CPU/req, p99 {run.wrk.p99_ms:.2f} ms, noise {run.noise_cores:.2f}{flag}",
            flush=True,
        )
        return run

    def script(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text)
        return str(path)


def command_available(*args: str) -> str | None:
    """None when `microforum ARGS --help` works, else why not (for the report)."""
    if not Path(MICROFORUM).exists():
        return f"{MICROFORUM} not found (run `make test` or `pip install -e .` first)"
    done = subprocess.run(
        [MICROFORUM, *args, "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return f"`microforum {' '.join(args)}` not available yet ({last[0][:160]})"
    return None
