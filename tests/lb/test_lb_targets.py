"""Target selection as tables: algorithms, fail-open, draining, weights, stickiness."""

from __future__ import annotations

import pytest

from microforum.lb.targets import (
    Slot,
    Target,
    choose,
    choose_weighted,
    sticky_group,
    sticky_set_cookies,
    sticky_value,
)
from microforum.spec.model import WeightedTargetGroup


def slots(*specs):
    """'h' healthy, 'u' not healthy, 'd' draining; optional outstanding count after ':'."""
    out = []
    for i, spec in enumerate(specs):
        flags, _, load = spec.partition(":")
        slot = Slot(Target("127.0.0.1", 9000 + i, f"t-{i}"))
        slot.healthy, slot.draining, slot.outstanding = "h" in flags, "d" in flags, int(load or 0)
        out.append(slot)
    return out


def ids(table, algorithm, n):
    return [(choose(table, algorithm, c) or Slot(Target("", 0, "none"))).target.id for c in range(n)]


@pytest.mark.parametrize(
    ("table", "algorithm", "expected"),
    [
        (("h", "h", "h"), "round_robin", ["t-0", "t-1", "t-2", "t-0"]),
        (("h", "u", "h"), "round_robin", ["t-0", "t-2", "t-0", "t-2"]),  # skip unhealthy
        (("u", "u"), "round_robin", ["t-0", "t-1", "t-0", "t-1"]),  # fail open
        (("u", "d"), "round_robin", ["t-0", "t-0", "t-0", "t-0"]),  # never a draining one
        (("d", "d"), "round_robin", ["none"] * 4),  # nothing live: caller answers 503
        ((), "round_robin", ["none"] * 4),
        (("d",), "round_robin", ["none"] * 4),
        (("u",), "round_robin", ["t-0"] * 4),  # fail open with one target
        (("h:5", "h:1", "h:3"), "least_outstanding_requests", ["t-1"] * 4),
        (("h:2", "h:2", "u:0"), "least_outstanding_requests", ["t-0", "t-1", "t-0", "t-1"]),
    ],
)
def test_choose(table, algorithm, expected):
    assert ids(slots(*table), algorithm, 4) == expected


GROUPS = (WeightedTargetGroup("users", 10), WeightedTargetGroup("posts", 20), WeightedTargetGroup("off", 0))


@pytest.mark.parametrize(("point", "group"), [
    (0.0, "users"), (0.33, "users"), (0.34, "posts"), (0.999, "posts"),
])  # fmt: skip
def test_weighted_choice_is_proportional(point, group):
    assert choose_weighted(GROUPS, point) == group


def test_weighted_split_over_a_grid():
    picks = [choose_weighted(GROUPS, i / 300) for i in range(300)]
    assert (picks.count("users"), picks.count("posts"), picks.count("off")) == (100, 200, 0)


@pytest.mark.parametrize(("cookie", "group"), [
    (None, None),
    (f"AWSALBTG={sticky_value('posts')}", "posts"),
    (f"a=1; AWSALBTG={sticky_value('users')}; b=2", "users"),
    (f"AWSALBTG={sticky_value('gone')}", None),  # not one of this rule's groups
    ("AWSALBTG=%%%", None),  # undecodable: pick again
])  # fmt: skip
def test_sticky_cookie(cookie, group):
    assert sticky_group(cookie, GROUPS) == group


def test_sticky_set_cookies_use_expires_and_a_cors_twin():
    first, cors = sticky_set_cookies("posts", 60, "Sat, 28 Nov 2026 01:00:00 GMT")
    assert first == f"AWSALBTG={sticky_value('posts')}; Expires=Sat, 28 Nov 2026 01:00:00 GMT; Path=/"
    assert cors.startswith("AWSALBTGCORS=") and cors.endswith("SameSite=None; Secure")


def test_slot_repr():
    (slot,) = slots("hd:2")
    assert repr(slot) == "<Slot t-0 127.0.0.1:9000 healthy,draining out=2>"
