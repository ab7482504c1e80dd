"""A deployment's traffic split inside one target group (lb/groups.py `set_split`): the new
targets get their percent of the requests, chosen as a weighted forward chooses its group."""

from __future__ import annotations

import random

from microforum.lb.groups import GroupState
from microforum.lb.health import HealthTracker
from microforum.lb.targets import Target
from microforum.spec.model import HealthCheck, TargetGroup

CHECK = HealthCheck("/", 6, 5, 2, 2, "200")


def _group(ids: list[str]) -> GroupState:
    group = GroupState(TargetGroup("web", 3000, CHECK, 0, "round_robin"))
    for port, rid in enumerate(ids, start=40000):
        slot = group.add(Target("127.0.0.1", port, rid), HealthTracker(CHECK, 0.0, 0.2))
        slot.healthy = True
    group.set_split(None, 0.0)  # (refresh: every slot healthy)
    return group


def _share(group: GroupState, new: set[str], picks: int = 4000) -> float:
    random.seed(7)
    hits = 0
    for _ in range(picks):
        picked = group.pick()
        assert picked is not None
        hits += picked[0].target.id in new
    return hits / picks


def test_the_new_targets_get_their_percent_of_requests() -> None:
    group = _group(["web-1", "web-2", "web-3", "web-4"])
    group.set_split(frozenset({"web-3", "web-4"}), 10.0)
    assert 0.08 < _share(group, {"web-3", "web-4"}) < 0.12
    group.set_split(frozenset({"web-3", "web-4"}), 0.0)
    assert _share(group, {"web-3", "web-4"}) == 0.0
    group.set_split(frozenset({"web-3", "web-4"}), 100.0)
    assert _share(group, {"web-3", "web-4"}) == 1.0
    group.set_split(None, 0.0)
    assert 0.45 < _share(group, {"web-3", "web-4"}) < 0.55  # no split: round robin over all
    assert group.describe().get("split") is None


def test_a_side_without_a_live_target_leaves_all_to_the_other() -> None:
    group = _group(["web-1", "web-2"])
    group.set_split(frozenset({"web-9"}), 50.0)  # the new replicas are not registered yet
    assert _share(group, {"web-1", "web-2"}) == 1.0
    assert group.describe()["split"] == {"new": ["web-9"], "percent": 50.0}
