"""A target group's live table: slots, health trackers, connection pools and figures.

Shared by the balancer facade (registration, health checks, draining) and the proxy (picking a
target per request). Decisions are delegated to the pure modules `targets` and `health`.
"""

from __future__ import annotations

import random
from typing import Any

from microforum.lb.health import HEALTHY, HealthTracker
from microforum.lb.metrics import Metrics
from microforum.lb.pool import TargetPool
from microforum.lb.targets import ALGORITHMS, Slot, Target, candidates, choose_weighted, pick_from
from microforum.spec.model import TargetGroup, WeightedTargetGroup


class GroupState:
    """One target group as the local ALB runs it."""

    def __init__(self, spec: TargetGroup, arn: str = "-") -> None:
        self.spec = spec
        self.name = spec.name
        self.arn = arn  # for the access log's target_group_arn
        self.slots: list[Slot] = []
        self.by_target: dict[Target, tuple[Slot, HealthTracker, TargetPool]] = {}
        self.metrics = Metrics()
        self.counter = 0
        self.pools: dict[Slot, TargetPool] = {}
        self.algorithm = ALGORITHMS[spec.algorithm]
        # The slots new requests may go to, recomputed when registration, health or draining
        # changes (a few times a second at most) rather than per request.
        self.live: list[Slot] = []
        # A deployment's traffic split (canary, linear): the new targets get `split_percent` of
        # the requests, chosen as a weighted forward chooses its target group (targets.py).
        self.split = False
        self.split_ids: frozenset[str] = frozenset()
        self.split_weights: tuple[WeightedTargetGroup, ...] = ()
        self.live_new: list[Slot] = []
        self.live_old: list[Slot] = []

    def __repr__(self) -> str:
        return f"<GroupState {self.name} slots={self.slots!r}>"

    def add(self, target: Target, tracker: HealthTracker) -> Slot:
        """Register `target` (replacing a previous registration of the same target)."""
        self.remove(target)
        slot = Slot(target)
        self.slots.append(slot)
        pool = self.pools[slot] = TargetPool(target)
        self.by_target[target] = (slot, tracker, pool)
        self._refresh()
        return slot

    def remove(self, target: Target) -> None:
        """Forget `target`; its idle connections are closed, busy ones aborted."""
        entry = self.by_target.pop(target, None)
        if entry is not None:
            slot, _, pool = entry
            if slot in self.slots:
                self.slots.remove(slot)
            self.pools.pop(slot, None)
            self._refresh()
            pool.close(abort_busy=True)

    def drain(self, slot: Slot) -> None:
        """`slot` gets no new request from now on (deregistration)."""
        slot.draining = True
        self._refresh()

    def pick(self) -> tuple[Slot, TargetPool] | None:
        """The slot and pool for a new request, or None (no registered live target: 503)."""
        self.counter += 1
        pool = self._split_pool() if self.split else self.live
        # (a group of one live target, as most are locally: no algorithm to run)
        slot = pool[0] if len(pool) == 1 else pick_from(pool, self.algorithm, self.counter)
        return None if slot is None else (slot, self.pools[slot])

    def set_split(self, new_ids: frozenset[str] | None, percent: float) -> None:
        """Send `percent` of new requests to the targets named in `new_ids`, the rest to the
        others (None: no split). A side without a live target leaves all to the other."""
        self.split = new_ids is not None
        self.split_ids = new_ids or frozenset()
        tenths = round(percent * 10)
        self.split_weights = (WeightedTargetGroup("new", tenths), WeightedTargetGroup("old", 1000 - tenths))
        self._refresh()

    def _split_pool(self) -> list[Slot]:
        side = choose_weighted(self.split_weights, random.random())
        first, other = (self.live_new, self.live_old) if side == "new" else (self.live_old, self.live_new)
        return first or other

    def sync_health(self, target: Target) -> None:
        """Copy the tracker's verdict into the routing slot."""
        entry = self.by_target.get(target)
        if entry is not None:
            slot, tracker, _ = entry
            healthy = tracker.state == HEALTHY
            if slot.healthy != healthy:
                slot.healthy = healthy
                self._refresh()

    def _refresh(self) -> None:
        self.live = candidates(self.slots)
        if self.split:
            self.live_new = candidates([s for s in self.slots if s.target.id in self.split_ids])
            self.live_old = candidates([s for s in self.slots if s.target.id not in self.split_ids])

    def describe(self) -> dict[str, Any]:
        """Targets with state, reason, description, last failure; and the figures."""
        targets = []
        for target, (slot, tracker, _pool) in self.by_target.items():
            targets.append({
                "id": target.id, "host": target.host, "port": target.port,
                "state": tracker.state, "reason": tracker.reason,
                "description": tracker.description, "last_failure": tracker.last_failure,
                "in_flight": slot.outstanding,
            })  # fmt: skip
        out: dict[str, Any] = {"targets": targets, "metrics": self.metrics.snapshot()}
        if self.split:
            out["split"] = {"new": sorted(self.split_ids), "percent": self.split_weights[0].weight / 10}
        return out
