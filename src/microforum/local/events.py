"""What happens to a running stack, as the supervisor's loop receives it (see supervisor.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True)
class Listening:
    """The replica listens on its port, and the listening socket is its own."""

    replica_id: str


@dataclass(frozen=True)
class Exited:
    """The replica's process is gone; `port_conflict`: it lost the race for its port."""

    replica_id: str
    exit_code: int
    lines: tuple[str, ...]
    port_conflict: bool = False


@dataclass(frozen=True)
class HealthChanged:
    """The load balancer changed the state of the replica's target."""

    replica_id: str
    state: str


@dataclass(frozen=True)
class RestartRequested:
    """`microforum restart`: `done` gets the new replica ids (or an error)."""

    service: str
    done: asyncio.Future[list[str]]


@dataclass(frozen=True)
class ShutdownRequested:
    """SIGINT/SIGTERM: drain and stop everything."""

    reason: str


Event = Listening | Exited | HealthChanged | RestartRequested | ShutdownRequested | None
