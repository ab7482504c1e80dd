"""One measured wrk run: throughput, latency, CPU per request, RSS and the machine's noise."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procfs, stats, wrk
from .procs import pinned


@dataclass(frozen=True)
class Run:
    """A run's figures: wrk's, CPU µs per request per role, peak RSS per process, noise."""

    wrk: wrk.WrkResult
    cpu_us: dict[str, float]  # role -> CPU µs per request (every process of the role)
    rss_kb: dict[str, int] = field(default_factory=dict)  # "role: command" -> peak RSS
    noise_cores: float = 0.0

    @property
    def noisy(self) -> bool:
        return stats.is_noisy(self.noise_cores)


def _ticks(pids: list[int]) -> dict[int, int]:
    out = {}
    for pid in pids:
        st = procfs.read_pid_stat(pid)
        if st:
            out[pid] = st.cpu_ticks
    return out


def _children_ticks() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * procfs.HZ


def _label(role: str, pid: int) -> str:
    """`role: command` with the meaningful words only ("microforum serve users", "nginx: worker")."""
    words = [w.rsplit("/", 1)[-1] for w in procfs.read_cmdline(pid).split()[:6]]
    cut = next((i for i, w in enumerate(words) if i and w.startswith("--")), len(words))
    return f"{role}: {' '.join(words[:cut])} [{pid}]"


def run_wrk(argv: list[str], cpus: str | None, log: Path) -> str:
    """Run wrk to completion (warm-up or measured) and return its output."""
    done = subprocess.run(pinned(argv, cpus), capture_output=True, text=True, check=False)
    log.open("a").write(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return done.stdout


def measured(argv: list[str], cpus: str | None, roles: dict[str, list[int]], log: Path) -> Run:
    """Run wrk once while sampling the roles' CPU and RSS and the machine's busy time."""
    all_pids = [p for pids in roles.values() for p in pids]
    before, busy0, kids0, t0 = _ticks(all_pids), procfs.read_busy_ticks(), _children_ticks(), time.monotonic()
    proc = subprocess.Popen(pinned(argv, cpus), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak: dict[int, int] = {}
    while proc.poll() is None:
        for pid in all_pids:
            peak[pid] = max(peak.get(pid, 0), procfs.read_rss_kb(pid))
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.2)
    out, err = proc.communicate()
    after, busy1, kids1, t1 = _ticks(all_pids), procfs.read_busy_ticks(), _children_ticks(), time.monotonic()
    log.open("a").write(out + err)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()[-300:]}")
    result = wrk.parse(out)
    role_ticks = {
        role: sum(after.get(p, before.get(p, 0)) - before.get(p, 0) for p in pids)
        for role, pids in roles.items()
    }
    ours = sum(role_ticks.values()) + round(kids1 - kids0)
    return Run(
        wrk=result,
        cpu_us={r: stats.cpu_us_per_request(t, procfs.HZ, result.requests) for r, t in role_ticks.items()},
        rss_kb={_label(r, p): peak.get(p, 0) for r, pids in roles.items() for p in pids},
        noise_cores=stats.noise_cores(busy1 - busy0, ours, procfs.HZ, t1 - t0),
    )
