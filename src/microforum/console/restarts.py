"""A rolling replacement's progress as the console shows it (pure).

`restart SERVICE` starts a new generation of the service's replicas; the old ones drain once
enough new ones are healthy (local/reconcile.py). Progress is read from the supervisor's
replica snapshot: how many replicas of the new generation are registered and healthy, and how
many of the older generations are still there. Half the bar is each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class Restart:
    """One restart asked for from the console."""

    service: str
    generation: int  # the generation being rolled out
    desired: int
    old_at_start: int
    state: str = RUNNING
    message: str = ""


def begin(service: str, desired: int, replicas: Iterable[Mapping[str, Any]]) -> Restart:
    """A restart of `service` about to be requested, given the replicas before it."""
    mine = [r for r in replicas if r.get("service") == service]
    generation = max((int(r.get("generation", 1)) for r in mine), default=0) + 1
    return Restart(service, generation, desired, len(mine))


def progress(restart: Restart, replicas: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """JSON-able progress: state, new healthy replicas, old ones left, a fraction, a sentence."""
    mine = [r for r in replicas if r.get("service") == restart.service]
    new = [r for r in mine if int(r.get("generation", 0)) >= restart.generation]
    healthy = sum(1 for r in new if r.get("phase") == "registered" and r.get("health") == "healthy")
    old_left = len(mine) - len(new)
    if restart.state == DONE:
        fraction = 1.0
    else:
        started = min(healthy, restart.desired) / max(1, restart.desired)
        drained = 1 - old_left / restart.old_at_start if restart.old_at_start else 1.0
        fraction = (started + max(0.0, drained)) / 2
    text = restart.message or (
        f"generation {restart.generation}: {healthy}/{restart.desired} new replicas healthy, "
        f"{old_left} old left"
    )
    return {
        "service": restart.service,
        "state": restart.state,
        "generation": restart.generation,
        "new_healthy": healthy,
        "old_left": old_left,
        "fraction": round(fraction, 3),
        "text": text,
    }
