"""Scenario (e): `microforum up` with the repository's stack.yaml, start to every target healthy."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import yaml

from . import configs
from .balancers import start_up
from .core import REPO, Context, command_available
from .procs import Proc, free_port, wait_ready

READY_DEADLINE_S = 20.0  # generous: the goal is 3 s
ROUTES = ["/api/users", "/api/threads", "/api/posts", "/"]


def healthy_counts(status: dict[str, Any]) -> dict[str, int]:
    """Healthy targets per target group, from the control channel's /status answer."""
    groups = status.get("target_groups") or {}
    return {
        name: sum(1 for t in (group.get("targets") or []) if t.get("state") == "healthy")
        for name, group in groups.items()
        if isinstance(group, dict)
    }


def all_healthy(counts: dict[str, int], desired: dict[str, int]) -> bool:
    """Whether every service has at least its desired count of healthy targets."""
    return all(counts.get(name, 0) >= n for name, n in desired.items())


def _status(data: Path) -> dict[str, Any] | None:
    """The running stack's /status through microforum's own control client, None if not yet."""
    from microforum.errors import MicroforumError
    from microforum.local.control import call, read_control

    try:
        return call(read_control(data), "GET", "/status")
    except MicroforumError:
        return None


def _wait_healthy(proc: Proc, data: Path, desired: dict[str, int]) -> float:
    end = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < end and proc.alive():
        status = _status(data)
        if status and all_healthy(healthy_counts(status), desired):
            return time.monotonic() - proc.started
        time.sleep(0.02)
    raise RuntimeError(f"not every target healthy in {READY_DEADLINE_S:.0f} s: {proc.tail()}")


def run(ctx: Context) -> None:
    """Start the default stack a few times, each in a fresh data directory (seeding included)."""
    missing = command_available("up")
    if missing:
        ctx.note("e", missing)
        return
    from microforum.spec.load import parse_stack

    stack: dict[str, Any] = yaml.safe_load((REPO / "stack.yaml").read_text())
    desired = {s.name: s.desired_count for s in parse_stack(stack).services}
    for i in range(ctx.settings.startup_runs):
        data = ctx.tmp / f"data-up-{i}"
        data.mkdir()
        proc, port = start_up(ctx, f"mf-up-{i}", configs.with_local(stack, free_port(), str(data)), None)
        try:
            first = wait_ready(port, ROUTES, proc, deadline_s=READY_DEADLINE_S)
            healthy = _wait_healthy(proc, data, desired)
        except (RuntimeError, ImportError) as exc:
            ctx.note("e", f"microforum up (default stack) did not become ready: {exc}")
            break
        finally:
            proc.stop(signal.SIGINT)
        ctx.startup_first_s.append(first)
        ctx.startup_s.append(healthy)
        print(f"  up: routes answer after {first:.2f} s, every target healthy after {healthy:.2f} s")
