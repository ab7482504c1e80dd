"""Target selection at its edges: zero and unit weights, exact boundaries, sticky cookies for
group names of every padding length, least-outstanding ties (lb/targets.py)."""

from __future__ import annotations

import pytest

from microforum.lb.targets import (
    Slot,
    Target,
    choose,
    choose_weighted,
    least_outstanding,
    pick_from,
    round_robin,
    sticky_group,
    sticky_set_cookies,
    sticky_value,
)
from microforum.spec.model import WeightedTargetGroup


def groups(*weights: tuple[str, int]) -> tuple[WeightedTargetGroup, ...]:
    return tuple(WeightedTargetGroup(name, weight) for name, weight in weights)


def table(*loads: int) -> list[Slot]:
    out = []
    for i, load in enumerate(loads):
        slot = Slot(Target("127.0.0.1", 9000 + i, f"t-{i}"))
        slot.healthy, slot.outstanding = True, load
        out.append(slot)
    return out


@pytest.mark.parametrize(
    ("weights", "point", "chosen"),
    [
        ((("a", 0), ("b", 0)), 0.0, "a"),  # every weight 0: the first group
        ((("a", 0), ("b", 0)), 0.99, "a"),
        ((("a", 0), ("b", 1)), 0.0, "b"),  # a total of 1: the only weighted group, always
        ((("a", 0), ("b", 1)), 0.999, "b"),
        ((("a", 1), ("b", 0)), 0.999, "a"),
        ((("a", 1), ("b", 1)), 0.5, "b"),  # a boundary goes to the next group
        ((("a", 1), ("b", 1)), 0.4999, "a"),
        ((("a", 1), ("off", 0), ("b", 1)), 0.5, "b"),  # a zero weight in between takes nothing
        ((("a", 3),), 0.7, "a"),
        # a point of 1.0 (float rounding can get there): the last group with a weight
        ((("a", 1), ("b", 1), ("off", 0)), 1.0, "b"),
    ],
)
def test_weighted_choice_at_its_edges(
    weights: tuple[tuple[str, int], ...], point: float, chosen: str
) -> None:
    assert choose_weighted(groups(*weights), point) == chosen


@pytest.mark.parametrize("name", ["a", "ab", "abc", "abcd", "posts", "threads", "users-v2", "x" * 32])
def test_a_sticky_cookie_names_its_group_whatever_the_name_length(name: str) -> None:
    value = sticky_value(name)
    assert "=" not in value  # unpadded: a cookie value without '='
    assert sticky_group(f"AWSALBTG={value}", groups((name, 1), ("other", 1))) == name
    assert sticky_group(f"x=1;AWSALBTG={value}", groups(("other", 1), (name, 0))) == name


@pytest.mark.parametrize(
    ("cookie", "chosen"),
    [
        ("", None),
        ("AWSALBTGCORS=" + sticky_value("posts"), None),  # the CORS twin alone is not read
        ("awsalbtg=" + sticky_value("posts"), None),  # cookie names are case-sensitive
        ("AWSALBTG=" + sticky_value("posts") + "; AWSALBTG=" + sticky_value("users"), "posts"),
        ("AWSALBTG=%%%; AWSALBTG=" + sticky_value("users"), None),  # the first one decides
        ("AWSALBTG=_w", None),  # decodes to b"\xff", not UTF-8
        ("  AWSALBTG=" + sticky_value("users") + "  ", "users"),
        ("AWSALBTG=cG9zdHM=", "posts"),  # a padded value (base64 of "posts") is read too
    ],
)
def test_which_cookie_is_read(cookie: str, chosen: str | None) -> None:
    assert sticky_group(cookie, groups(("users", 1), ("posts", 1))) == chosen


def test_sticky_set_cookies_in_full() -> None:
    value = sticky_value("posts")
    assert sticky_set_cookies("posts", 60, "Sat, 28 Nov 2026 01:00:00 GMT") == [
        f"AWSALBTG={value}; Expires=Sat, 28 Nov 2026 01:00:00 GMT; Path=/",
        f"AWSALBTGCORS={value}; Expires=Sat, 28 Nov 2026 01:00:00 GMT; Path=/; SameSite=None; Secure",
    ]


@pytest.mark.parametrize(
    ("loads", "picks"),
    [
        ((1, 1, 1), ["t-0", "t-1", "t-2", "t-0"]),  # all tied: round robin from the counter
        ((2, 1, 1), ["t-1", "t-1", "t-2", "t-1"]),  # a tie between the least: the first after the counter
        ((0, 3, 0), ["t-0", "t-2", "t-2", "t-0"]),
        ((5, 4, 3), ["t-2", "t-2", "t-2", "t-2"]),
    ],
)
def test_least_outstanding_ties(loads: tuple[int, ...], picks: list[str]) -> None:
    pool = table(*loads)
    assert [least_outstanding(pool, counter).target.id for counter in range(4)] == picks
    assert [choose(pool, "least_outstanding_requests", c).target.id for c in range(4)] == picks  # type: ignore[union-attr]


def test_round_robin_and_a_pool_of_one() -> None:
    pool = table(0, 0, 0)
    assert [round_robin(pool, c).target.id for c in (0, 1, 2, 3, 7)] == ["t-0", "t-1", "t-2", "t-0", "t-1"]
    assert pick_from(pool[1:2], round_robin, 5) is pool[1]
    assert pick_from([], round_robin, 0) is None


def test_a_slot_starts_unhealthy_idle_and_shows_its_address() -> None:
    slot = Slot(Target("127.0.0.1", 9000, "users-1"))
    assert (slot.healthy, slot.draining, slot.outstanding, slot.addr) == (False, False, 0, "127.0.0.1:9000")
    assert repr(slot) == "<Slot users-1 127.0.0.1:9000 not-healthy out=0>"
