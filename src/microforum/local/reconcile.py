"""Desired versus running: the local ECS service scheduler's decisions, with no I/O.

Theory of operation
-------------------
The supervisor's loop feeds a `Reconciler` events (a replica was launched, is listening, its
target's health changed, it exited, a restart was asked for, shut down) and then calls
`decide(now)`, which returns the actions to carry out (`Start`, `Register`, `Drain`, `Stop`,
`Report`) and moves the replicas it acted on to their next phase. Time only enters through
`now`: back-off and timeouts are deadlines compared with it, and `next_wakeup()` tells the loop
when to call `decide` again. Nothing here sleeps, spawns or touches a socket (docs/development.md).

A replica goes through these phases (the ECS task lifecycle, locally)::

    STARTING --listening--> LISTENING --decide: Register--> REGISTERED --decide: Drain--> DRAINING
        |                                                        |                          |
        +--decide: Stop (start timeout, shutdown)--> STOPPING     +--exited (crash)          +--exited
                                                                                            (gone)

Health (`initial`, `healthy`, `unhealthy`) is the target group's view of a registered replica,
reported by the load balancer; `draining` there is our DRAINING phase.

Rules, per service, each `decide`:

* Keep `desired_count` replicas of the current generation (ECS's desired count). A replica
  that exits unexpectedly is forgotten and replaced. Crash loops back off: a replica that
  exits before it was ever healthy counts as a failure; the n-th failure in a row waits
  `backoff_delay(n)` (0, then 1 s doubling, capped) before the next start, and every failure
  yields one `Report` naming the service, the exit code and its last log lines. A healthy
  replica resets the count.
* A registered replica whose target is `unhealthy` (already `unhealthy_threshold` failed checks)
  after the service's `health_check_grace_period` is drained and replaced, as ECS does.
* Rolling replacement (`restart`): a new generation starts; old replicas are drained only while
  the healthy count stays >= `minimum_healthy_percent` of desired (rounded up) and new ones start
  only while all replicas (draining included) stay <= `maximum_percent` (rounded down), per
  BOTO-ECS `DeploymentConfiguration`. With the defaults 100/200 each new replica is healthy
  before an old one drains.
* Autoscaling changes a service's desired count (`set_desired`). A canary or linear deployment
  holds the old replicas (`hold`) while a full set of new ones starts beside them; `rollback`
  makes the previous generation current again, so the new replicas are the ones drained.
* Shutdown: no more starts; registered replicas drain, the others are stopped.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from microforum.local.actions import Action, Drain, Register, Remove, Report, Start, Stop

__all__ = [
    "Action", "Drain", "Reconciler", "Register", "Remove", "Replica", "Report", "ServicePolicy",
    "Start", "Stop", "backoff_delay", "crash_message",
]  # fmt: skip

# Crash-loop back-off. ECS throttles restarts of failing tasks with an increasing delay; locally
# the first retry is immediate (a replica killed once comes straight back), then 1 s doubling,
# capped at 30 s so a fixed bug is picked up quickly.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A replica that does not listen on its port within this many seconds is stopped (a failure).
START_TIMEOUT = 60.0
# Log lines quoted in a crash report.
REPORT_LINES = 10


class Phase(enum.Enum):
    STARTING = "starting"  # launched, not listening yet
    LISTENING = "listening"  # listening, not registered yet
    REGISTERED = "registered"  # a target of its target group
    DRAINING = "draining"  # deregistering, then stopped
    STOPPING = "stopping"  # stopped without draining (never registered)


@dataclass
class Replica:
    """What the reconciler knows about one replica."""

    id: str
    service: str
    generation: int
    started_at: float
    phase: Phase = Phase.STARTING
    health: str = "initial"
    unhealthy_since: float | None = None
    was_healthy: bool = False
    registered: bool = False  # registered in its target group at some point

    def __repr__(self) -> str:
        return f"<Replica {self.id} gen={self.generation} {self.phase.value} {self.health}>"


@dataclass(frozen=True)
class ServicePolicy:
    """The parts of a service the scheduler obeys (from stack.yaml's `Service`)."""

    name: str
    desired_count: int
    minimum_healthy_percent: int
    maximum_percent: int
    health_check_grace_period: float


def backoff_delay(failures: int) -> float:
    """Seconds to wait before the next start after `failures` failures in a row."""
    if failures <= 1:
        return 0.0
    return min(BACKOFF_FIRST * 2.0 ** (failures - 2), BACKOFF_MAX)


def crash_message(replica_id: str, exit_code: int, failures: int, delay: float, lines: Sequence[str]) -> str:
    """One message for a replica that failed: what, how often, when it is retried, its log."""
    how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with code {exit_code}"
    retry = "restarting now" if delay == 0 else f"restarting in {delay:g} s"
    head = f"replica {replica_id} {how} ({_ordinal(failures)} failure in a row); {retry}"
    tail = list(lines)[-REPORT_LINES:]
    if not tail:
        return head + "; it printed nothing"
    return head + "; its last lines:\n" + "\n".join(f"    {line}" for line in tail)


def _ordinal(n: int) -> str:
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass
class _ServiceState:
    policy: ServicePolicy
    desired: int = 0
    generation: int = 1
    previous: int = 1  # the generation before the last restart (what a rollback returns to)
    latest: int = 1  # the highest generation ever started
    hold: bool = False  # keep old-generation replicas (a canary or linear deployment)
    failures: int = 0
    not_before: float = 0.0
    serial: int = 0
    replicas: dict[str, Replica] = field(default_factory=dict)


class Reconciler:
    """Decides, for every service, which replicas to start, register, drain and stop."""

    def __init__(self, policies: Iterable[ServicePolicy]) -> None:
        self._services = {p.name: _ServiceState(p, desired=p.desired_count) for p in policies}
        self._index: dict[str, _ServiceState] = {}
        self._pending: list[Action] = []  # actions that events caused, returned by `decide`
        self.shutting_down = False

    def __repr__(self) -> str:
        parts = [
            f"{name}: gen={s.generation} {sorted(s.replicas.values(), key=lambda r: r.id)}"
            for name, s in self._services.items()
        ]
        return f"<Reconciler {'; '.join(parts)}>"

    # Queries ---------------------------------------------------------------------------------

    def replicas(self, service: str | None = None) -> list[Replica]:
        """The live replicas (of one service, or all), in start order."""
        states = [self._services[service]] if service else list(self._services.values())
        return [r for s in states for r in s.replicas.values()]

    def replica(self, replica_id: str) -> Replica | None:
        """The live replica with that id, if any."""
        state = self._index.get(replica_id)
        return state.replicas.get(replica_id) if state else None

    def settled(self, service: str | None = None) -> bool:
        """Whether every service (or one) runs exactly desired healthy current replicas."""
        names = [service] if service else list(self._services)
        return all(self._settled(self._services[name]) for name in names)

    def failures(self, service: str) -> int:
        """How many replicas of `service` failed in a row (reset by a healthy one)."""
        return self._services[service].failures

    def all_stopped(self) -> bool:
        """Whether no replica is left at all (the end of a shutdown)."""
        return not self._index

    def next_wakeup(self) -> float | None:
        """The earliest time a `decide` would act without any new event (None: no timer)."""
        times = [s.not_before for s in self._services.values() if s.not_before > 0]
        times += [r.started_at + START_TIMEOUT for r in self.replicas() if r.phase is Phase.STARTING]
        for s in self._services.values():
            grace = s.policy.health_check_grace_period
            times += [
                r.started_at + grace
                for r in s.replicas.values()
                if r.phase is Phase.REGISTERED and r.unhealthy_since is not None
            ]
        return min(times) if times else None

    # Events ----------------------------------------------------------------------------------

    def listening(self, replica_id: str) -> None:
        """The replica is listening on its port (and owns it)."""
        replica = self.replica(replica_id)
        if replica and replica.phase is Phase.STARTING:
            replica.phase = Phase.LISTENING

    def health_changed(self, replica_id: str, health: str, now: float) -> None:
        """The load balancer reports a new health state for the replica's target."""
        replica = self.replica(replica_id)
        if replica is None or replica.phase is not Phase.REGISTERED:
            return
        replica.health = health
        replica.unhealthy_since = now if health == "unhealthy" else None
        if health == "healthy":
            replica.was_healthy = True
            self._index[replica_id].failures = 0

    def exited(self, replica_id: str, exit_code: int, lines: Sequence[str], now: float) -> None:
        """The replica's process is gone. Unexpected exits count toward crash-loop back-off."""
        state = self._index.pop(replica_id, None)
        if state is None:
            return
        replica = state.replicas.pop(replica_id)
        if replica.phase is Phase.REGISTERED:
            self._pending.append(Remove(replica.service, replica.id))
        if replica.phase in _LEAVING or self.shutting_down:
            return
        delay = self._count_failure(state, replica, now)
        message = crash_message(replica_id, exit_code, state.failures, delay, lines)
        self._pending.append(Report(state.policy.name, message))

    def port_conflict(self, replica_id: str) -> None:
        """The replica could not bind its port (another process took it): forget it, no back-off.

        The next `decide` starts a replacement, on a new port.
        """
        state = self._index.pop(replica_id, None)
        if state:
            del state.replicas[replica_id]  # the index and the service hold the same ids

    def restart(self, service: str, *, hold: bool = False) -> int:
        """Begin replacing every replica of `service`; the new generation. With `hold`, the old
        replicas stay until `release` (a canary or linear deployment)."""
        state = self._services[service]
        state.previous, state.latest = state.generation, state.latest + 1
        state.generation, state.hold = state.latest, hold
        state.failures, state.not_before = 0, 0.0
        return state.generation

    def release(self, service: str) -> None:
        """End a hold: the old replicas drain (the new ones took all the traffic)."""
        self._services[service].hold = False

    def rollback(self, service: str) -> int:
        """Make the generation before the last restart current again; the new replicas drain."""
        state = self._services[service]
        state.generation, state.hold = state.previous, False
        state.failures, state.not_before = 0, 0.0
        return state.generation

    def set_desired(self, service: str, count: int) -> None:
        """A new desired count (autoscaling)."""
        self._services[service].desired = count

    def desired(self, service: str) -> int:
        return self._services[service].desired

    def generation(self, service: str) -> int:
        return self._services[service].generation

    def shutdown(self) -> None:
        """Stop everything: no more starts, drain what is registered, stop the rest."""
        self.shutting_down = True

    # Decisions -------------------------------------------------------------------------------

    def decide(self, now: float) -> list[Action]:
        """The actions to carry out now; the replicas acted on move to their next phase."""
        actions, self._pending = self._pending, []
        for state in self._services.values():
            actions += self._decide_service(state, now)
        return actions

    def _decide_service(self, state: _ServiceState, now: float) -> list[Action]:
        if self.shutting_down:
            return self._stop_all(state)
        actions: list[Action] = self._register_listening(state)
        actions += self._stop_stuck(state, now)
        actions += self._replace_unhealthy(state, now)
        actions += self._drain_surplus(state)
        actions += self._start_missing(state, now)
        return actions

    def _register_listening(self, state: _ServiceState) -> list[Action]:
        actions: list[Action] = []
        for r in state.replicas.values():
            if r.phase is Phase.LISTENING:
                r.phase, r.registered = Phase.REGISTERED, True
                actions.append(Register(r.service, r.id))
        return actions

    def _stop_stuck(self, state: _ServiceState, now: float) -> list[Action]:
        stuck = [
            r
            for r in state.replicas.values()
            if r.phase is Phase.STARTING and now >= r.started_at + START_TIMEOUT
        ]
        # A replica that never listens is a failure like a crash: it exits and is reported.
        for r in stuck:
            self._count_failure(state, r, now)
        return [self._stop(r, f"not listening after {START_TIMEOUT:g} s", fault=True) for r in stuck]

    def _replace_unhealthy(self, state: _ServiceState, now: float) -> list[Action]:
        grace = state.policy.health_check_grace_period
        sick = [
            r
            for r in state.replicas.values()
            if r.phase is Phase.REGISTERED and r.health == "unhealthy" and now >= r.started_at + grace
        ]
        for r in sick:
            self._count_failure(state, r, now)
        return [self._drain(r, "its target is unhealthy", fault=True) for r in sick]

    def _drain_surplus(self, state: _ServiceState) -> list[Action]:
        """Drain old-generation replicas and extras while enough healthy ones remain."""
        desired = state.desired
        floor = math.ceil(desired * state.policy.minimum_healthy_percent / 100)
        active = [r for r in state.replicas.values() if r.phase not in _LEAVING]
        healthy = sum(1 for r in active if r.health == "healthy")
        current = [r for r in active if r.generation == state.generation]
        old = [] if state.hold else [r for r in active if r.generation != state.generation]
        # Unhealthy or not yet registered old replicas go first: they serve nothing.
        old.sort(key=lambda r: (r.health == "healthy", r.started_at))
        extra = sorted(current, key=lambda r: (r.health == "healthy", -r.started_at))
        candidates = old + extra[: max(len(current) - desired, 0)]
        actions: list[Action] = []
        for r in candidates:
            counts = r.health == "healthy"
            if counts and healthy - 1 < floor:
                break
            healthy -= counts
            actions.append(self._leave(r, _why_surplus(r.generation, state.generation, desired)))
        return actions

    def _start_missing(self, state: _ServiceState, now: float) -> list[Action]:
        if now < state.not_before:
            return []
        state.not_before = 0.0
        desired = state.desired
        ceiling = max(desired, math.floor(desired * state.policy.maximum_percent / 100))
        current = sum(
            1 for r in state.replicas.values() if r.generation == state.generation and r.phase not in _LEAVING
        )
        if state.hold:  # a full new set beside the old replicas
            ceiling = len(state.replicas) - current + desired
        room = min(desired - current, ceiling - len(state.replicas))
        return [self._start(state, now) for _ in range(max(room, 0))]

    def _stop_all(self, state: _ServiceState) -> list[Action]:
        return [
            self._leave(r, "the stack is stopping")
            for r in state.replicas.values()
            if r.phase not in _LEAVING
        ]

    # Transitions -----------------------------------------------------------------------------

    def _start(self, state: _ServiceState, now: float) -> Start:
        state.serial += 1
        name = state.policy.name
        replica = Replica(f"{name}-{state.serial}", name, state.generation, started_at=now)
        state.replicas[replica.id] = replica
        self._index[replica.id] = state
        return Start(name, replica.id)

    def _leave(self, replica: Replica, reason: str) -> Drain | Stop:
        if replica.phase is Phase.REGISTERED:
            return self._drain(replica, reason)
        return self._stop(replica, reason)

    def _drain(self, replica: Replica, reason: str, *, fault: bool = False) -> Drain:
        replica.phase = Phase.DRAINING
        return Drain(replica.service, replica.id, reason, fault)

    def _stop(self, replica: Replica, reason: str, *, fault: bool = False) -> Stop:
        replica.phase = Phase.STOPPING
        return Stop(replica.service, replica.id, reason, fault)

    def _count_failure(self, state: _ServiceState, replica: Replica, now: float) -> float:
        """Count a failed replica toward the crash loop; the back-off delay it causes."""
        # A replica that had been healthy starts a new count: it is the first failure in a row.
        state.failures = 1 if replica.was_healthy else state.failures + 1
        delay = backoff_delay(state.failures)
        state.not_before = now + delay if delay else 0.0
        return delay

    def _settled(self, state: _ServiceState) -> bool:
        replicas = state.replicas.values()
        return len(replicas) == state.desired and all(
            r.generation == state.generation and r.phase is Phase.REGISTERED and r.health == "healthy"
            for r in replicas
        )


_LEAVING = (Phase.DRAINING, Phase.STOPPING)


def _why_surplus(generation: int, current: int, desired: int) -> str:
    if generation < current:
        return "replaced by a newer replica"
    if generation > current:
        return "its deployment was rolled back"
    return f"more replicas than the desired count ({desired})"
