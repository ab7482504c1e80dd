"""What the reconciler asks the supervisor to do: plain frozen values (see reconcile.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Start:
    """Launch a new replica `replica_id` of `service` (the shell picks its port)."""

    service: str
    replica_id: str


@dataclass(frozen=True)
class Register:
    """Register the listening replica as a target of its service's target group."""

    service: str
    replica_id: str


@dataclass(frozen=True)
class Drain:
    """Deregister the replica (wait for the draining to finish), then stop it.

    `fault` is True when the replica is stopped because it failed (its target is unhealthy):
    the shell then shows the reason with the replica's last log lines.
    """

    service: str
    replica_id: str
    reason: str
    fault: bool = False


@dataclass(frozen=True)
class Stop:
    """Stop a replica that was never registered (SIGTERM); `fault` as for `Drain`."""

    service: str
    replica_id: str
    reason: str
    fault: bool = False


@dataclass(frozen=True)
class Remove:
    """Deregister a replica whose process already exited (nothing left to drain)."""

    service: str
    replica_id: str


@dataclass(frozen=True)
class Report:
    """Tell the user something went wrong with a service (printed once)."""

    service: str
    message: str


Action = Start | Register | Drain | Stop | Remove | Report
