"""The reconciler at its edges: ordinals in crash reports, exit code 0, back-off and its reset,
rounding of minimum_healthy_percent, two restarts in a row, queries per service (local/reconcile.py)."""

from __future__ import annotations

import pytest

from microforum.local.reconcile import (
    START_TIMEOUT,
    Drain,
    Reconciler,
    Register,
    ServicePolicy,
    Start,
    Stop,
    crash_message,
)


def policy(
    name: str = "users", desired: int = 1, low: int = 100, high: int = 200, grace: float = 0
) -> ServicePolicy:
    return ServicePolicy(name, desired, low, high, grace)


def started(actions: list[object]) -> list[str]:
    return [a.replica_id for a in actions if isinstance(a, Start)]


def make_healthy(rec: Reconciler, ids: list[str], now: float) -> None:
    for replica_id in ids:
        rec.listening(replica_id)
    assert {a.replica_id for a in rec.decide(now) if isinstance(a, Register)} == set(ids)
    for replica_id in ids:
        rec.health_changed(replica_id, "healthy", now)


@pytest.mark.parametrize(
    ("n", "ordinal"),
    [
        (1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (10, "10th"), (11, "11th"), (12, "12th"),
        (13, "13th"), (14, "14th"), (20, "20th"), (21, "21st"), (22, "22nd"), (23, "23rd"),
        (101, "101st"), (111, "111th"), (112, "112th"), (121, "121st"),
    ],
)  # fmt: skip
def test_crash_reports_count_in_english(n: int, ordinal: str) -> None:
    assert f"({ordinal} failure in a row)" in crash_message("web-1", 1, n, 0, [])


def test_exit_code_zero_is_an_exit_not_a_signal() -> None:
    assert crash_message("web-1", 0, 1, 0, []) == (
        "replica web-1 exited with code 0 (1st failure in a row); restarting now; it printed nothing"
    )


def test_a_fresh_reconciler_is_not_shutting_down_and_has_no_timer() -> None:
    rec = Reconciler([policy()])
    assert rec.shutting_down is False
    assert rec.next_wakeup() is None
    assert rec.all_stopped()


def test_registration_is_remembered_on_the_replica() -> None:
    rec = Reconciler([policy()])
    (first,) = started(rec.decide(0))
    assert rec.replica(first).registered is False  # type: ignore[union-attr]
    make_healthy(rec, [first], 0)
    assert rec.replica(first).registered is True  # type: ignore[union-attr]
    assert rec.replica("nope") is None


def test_a_first_failure_sets_no_timer_and_a_healthy_replica_resets_the_count() -> None:
    rec = Reconciler([policy()])
    (first,) = started(rec.decide(0))
    rec.exited(first, 1, [], now=1)
    assert (rec.failures("users"), rec.next_wakeup()) == (1, None)  # retried at once: no timer
    (second,) = started(rec.decide(1))
    rec.exited(second, 1, [], now=2)
    assert (rec.failures("users"), rec.next_wakeup()) == (2, 3.0)  # then 1 s
    assert started(rec.decide(2.5)) == []
    (third,) = started(rec.decide(3))
    make_healthy(rec, [third], 4)
    assert rec.failures("users") == 0
    assert rec.next_wakeup() is None  # healthy: no grace timer either


def test_a_replica_that_had_been_healthy_starts_a_new_count() -> None:
    rec = Reconciler([policy(desired=2)])
    first, second = started(rec.decide(0))
    make_healthy(rec, [first], 0)
    rec.exited(second, 1, [], now=1)  # never healthy: 1st failure
    assert rec.failures("users") == 1
    rec.exited(first, 1, [], now=2)  # had been healthy: 1st again, not 2nd
    assert rec.failures("users") == 1
    assert rec.next_wakeup() is None


def test_stuck_and_unhealthy_replicas_back_off_like_crashes() -> None:
    rec = Reconciler([policy()])
    (first,) = started(rec.decide(0))
    assert rec.next_wakeup() == START_TIMEOUT
    actions = rec.decide(START_TIMEOUT)
    assert actions[0] == Stop("users", first, f"not listening after {START_TIMEOUT:g} s", True)
    (second,) = started(actions)
    rec.listening(second)
    rec.decide(START_TIMEOUT + 1)
    rec.health_changed(second, "unhealthy", START_TIMEOUT + 10)
    actions = rec.decide(START_TIMEOUT + 10)
    assert actions == [Drain("users", second, "its target is unhealthy", True)]  # 2nd failure: 1 s
    assert rec.next_wakeup() == START_TIMEOUT + 11


def test_minimum_healthy_percent_rounds_up() -> None:
    # 3 x 67 % = 2.01: three must stay healthy, so no old replica drains before a new one is healthy
    rec = Reconciler([policy(desired=3, low=67, high=200)])
    old = started(rec.decide(0))
    make_healthy(rec, old, 0)
    rec.restart("users")
    assert not any(isinstance(a, Drain) for a in rec.decide(1))
    # 4 x 50 % = 2: two of the four old replicas drain at once
    rec = Reconciler([policy(desired=4, low=50, high=100)])
    old = started(rec.decide(0))
    make_healthy(rec, old, 0)
    rec.restart("users")
    assert [a.replica_id for a in rec.decide(1) if isinstance(a, Drain)] == old[:2]


def test_two_restarts_in_a_row_drain_each_old_replica_once() -> None:
    rec = Reconciler([policy(desired=1, low=0, high=200)])
    (first,) = started(rec.decide(0))
    make_healthy(rec, [first], 0)
    assert rec.restart("users") == 2
    actions = rec.decide(1)
    (second,) = started(actions)
    assert Drain("users", first, "replaced by a newer replica", False) in actions
    rec.exited(first, 0, [], now=1.5)  # drained and gone: not a failure
    assert rec.failures("users") == 0
    make_healthy(rec, [second], 2)
    assert rec.restart("users") == 3
    actions = rec.decide(3)
    assert [a.replica_id for a in actions if isinstance(a, Drain)] == [second]
    assert len(started(actions)) == 1


def test_a_restart_clears_the_back_off() -> None:
    rec = Reconciler([policy()])
    for now in (0, 1):
        (replica,) = started(rec.decide(now))
        rec.exited(replica, 1, [], now=now)
    assert (rec.failures("users"), rec.next_wakeup()) == (2, 2.0)
    rec.restart("users")
    assert (rec.failures("users"), rec.next_wakeup()) == (0, None)
    assert len(started(rec.decide(1.5))) == 1


def test_queries_per_service() -> None:
    rec = Reconciler([policy("users"), policy("posts")])
    actions = rec.decide(0)
    users_1, posts_1 = started(actions)
    make_healthy(rec, [users_1], 0)
    assert [r.id for r in rec.replicas("users")] == [users_1]
    assert [r.id for r in rec.replicas()] == [users_1, posts_1]
    assert rec.settled("users") and not rec.settled("posts") and not rec.settled()


def test_a_draining_replica_is_not_settled_even_if_healthy() -> None:
    rec = Reconciler([policy()])
    (first,) = started(rec.decide(0))
    make_healthy(rec, [first], 0)
    assert rec.settled()
    rec.shutdown()
    assert rec.decide(1) == [Drain("users", first, "the stack is stopping", False)]
    assert not rec.settled()


def test_a_port_conflict_of_an_unknown_replica_is_ignored() -> None:
    rec = Reconciler([policy()])
    (first,) = started(rec.decide(0))
    rec.port_conflict("nope")
    rec.port_conflict(first)
    rec.port_conflict(first)
    assert rec.replicas() == []
    assert started(rec.decide(1)) == ["users-2"]


def test_a_stuck_replica_after_a_crash_is_the_second_failure() -> None:
    rec = Reconciler([policy()])
    (first,) = started(rec.decide(0))
    rec.exited(first, 1, [], now=0)
    (second,) = started(rec.decide(0))
    actions = rec.decide(START_TIMEOUT)
    assert actions == [Stop("users", second, f"not listening after {START_TIMEOUT:g} s", True)]
    assert (rec.failures("users"), rec.next_wakeup()) == (2, START_TIMEOUT + 1)


def test_a_scale_in_drains_unhealthy_extras_first_then_the_newest() -> None:
    rec = Reconciler([policy(desired=1, low=0, high=200)])
    (first,) = started(rec.decide(0))
    make_healthy(rec, [first], 0)
    rec.set_desired("users", 2)
    (second,) = started(rec.decide(1))
    rec.set_desired("users", 3)
    (third,) = started(rec.decide(2))
    make_healthy(rec, [third], 2)
    rec.listening(second)
    assert rec.decide(3) == [Register("users", second)]  # registered, not yet healthy
    rec.set_desired("users", 2)
    assert rec.decide(4) == [Drain("users", second, "more replicas than the desired count (2)", False)]
    rec.set_desired("users", 1)
    assert rec.decide(5) == [Drain("users", third, "more replicas than the desired count (1)", False)]


def test_a_rollback_clears_the_crash_loop_of_the_new_generation() -> None:
    rec = Reconciler([policy()])
    (old,) = started(rec.decide(0))
    make_healthy(rec, [old], 0)
    rec.restart("users", hold=True)
    for now in (0.1, 0.2):
        (new,) = started(rec.decide(now))
        rec.exited(new, 1, [], now=now)
    assert (rec.failures("users"), rec.next_wakeup()) == (2, 1.2)  # the 2nd failure: 1 s
    assert rec.rollback("users") == 1
    assert (rec.failures("users"), rec.next_wakeup()) == (0, None)
    assert rec.settled()
