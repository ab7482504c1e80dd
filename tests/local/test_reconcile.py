"""The reconciler as transcripts: events in, actions out, an explicit clock, no sleeping."""

from __future__ import annotations

import pytest

from microforum.local.reconcile import (
    BACKOFF_MAX,
    START_TIMEOUT,
    Drain,
    Reconciler,
    Register,
    Remove,
    Report,
    ServicePolicy,
    Start,
    Stop,
    backoff_delay,
    crash_message,
)


def policy(
    name: str = "users", desired: int = 2, low: int = 100, high: int = 200, grace: float = 0
) -> ServicePolicy:
    return ServicePolicy(name, desired, low, high, grace)


def healthy(rec: Reconciler, starts: list[Start], now: float) -> None:
    """Carry the started replicas through listening, registration and two good checks."""
    for start in starts:
        rec.listening(start.replica_id)
    registered = [a for a in rec.decide(now) if isinstance(a, Register)]
    assert {a.replica_id for a in registered} == {s.replica_id for s in starts}
    for start in starts:
        rec.health_changed(start.replica_id, "healthy", now)


def up(rec: Reconciler, now: float = 0.0) -> list[str]:
    starts = [a for a in rec.decide(now) if isinstance(a, Start)]
    healthy(rec, starts, now)
    assert rec.settled()
    return [s.replica_id for s in starts]


def test_starts_desired_count_and_registers_only_listening_replicas() -> None:
    rec = Reconciler([policy("users", 2), policy("monolith", 1)])
    assert rec.decide(0) == [
        Start("users", "users-1"),
        Start("users", "users-2"),
        Start("monolith", "monolith-1"),
    ]
    assert rec.decide(0.1) == []  # nothing new until a replica listens
    rec.listening("users-2")
    assert rec.decide(0.2) == [Register("users", "users-2")]
    assert not rec.settled()
    assert repr(rec) == (
        "<Reconciler users: gen=1 [<Replica users-1 gen=1 starting initial>, "
        "<Replica users-2 gen=1 registered initial>]; "
        "monolith: gen=1 [<Replica monolith-1 gen=1 starting initial>]>"
    )


def test_killed_replica_is_removed_from_its_target_group_and_replaced_at_once() -> None:
    rec = Reconciler([policy("users", 2)])
    up(rec)
    rec.exited("users-1", -9, ["serving"], now=100)
    actions = rec.decide(100)
    assert actions[0] == Remove("users", "users-1")
    assert isinstance(actions[1], Report)
    assert "replica users-1 was killed by signal 9 (1st failure in a row); restarting now" in (
        actions[1].message
    )
    assert actions[2:] == [Start("users", "users-3")]


def test_crash_loop_backs_off_exponentially_with_one_message_each_time() -> None:
    rec = Reconciler([policy("posts", 1)])
    now = 0.0
    rec.decide(now)
    delays = []
    for n in range(2, 9):
        rec.exited(f"posts-{n - 1}", 1, ["Traceback ...", "ImportError: boom"], now)
        actions = rec.decide(now)
        (report,) = [a for a in actions if isinstance(a, Report)]
        assert report.service == "posts"
        assert "ImportError: boom" in report.message
        starts = [a for a in actions if isinstance(a, Start)]
        if not starts:  # backing off: nothing until the wake-up time
            wake = rec.next_wakeup()
            assert wake is not None
            delays.append(wake - now)
            assert rec.decide(wake - 0.001) == []
            now = wake
            starts = [a for a in rec.decide(now) if isinstance(a, Start)]
        else:
            delays.append(0.0)
        assert starts == [Start("posts", f"posts-{n}")]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, BACKOFF_MAX]


def test_a_healthy_replica_resets_the_crash_count() -> None:
    rec = Reconciler([policy("posts", 1)])
    rec.decide(0)
    rec.exited("posts-1", 1, [], 0)
    rec.decide(0)
    rec.exited("posts-2", 1, [], 0)
    assert "2nd failure" in rec.decide(0)[0].message  # type: ignore[union-attr]
    assert rec.decide(1.0) == [Start("posts", "posts-3")]  # after the 1 s back-off
    healthy(rec, [Start("posts", "posts-3")], 1.0)
    rec.exited("posts-3", 1, [], 5.0)
    actions = rec.decide(5.0)
    assert "1st failure in a row); restarting now" in actions[1].message  # type: ignore[union-attr]
    assert actions[-1] == Start("posts", "posts-4")


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.0), (1, 0.0), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (50, 30.0)],
)
def test_backoff_delay(failures: int, delay: float) -> None:
    assert backoff_delay(failures) == delay


def test_crash_message_names_the_replica_and_quotes_the_last_lines() -> None:
    lines = [f"line {i}" for i in range(30)]
    message = crash_message("users-4", 3, 3, 2.0, lines)
    assert message.splitlines()[0] == (
        "replica users-4 exited with code 3 (3rd failure in a row); restarting in 2 s; its last lines:"
    )
    assert message.splitlines()[1:] == [f"    line {i}" for i in range(20, 30)]
    assert crash_message("users-4", 1, 1, 0, []).endswith("; it printed nothing")


def test_unhealthy_target_is_drained_and_replaced_after_the_grace_period() -> None:
    rec = Reconciler([policy("users", 1, grace=10)])
    up(rec, now=0)
    rec.health_changed("users-1", "unhealthy", 4)
    assert rec.decide(4) == []  # still within the grace period
    assert rec.next_wakeup() == 10
    assert rec.decide(10) == [
        Drain("users", "users-1", "its target is unhealthy", fault=True),
        Start("users", "users-2"),
    ]


def test_replica_that_never_listens_is_stopped_as_a_failure() -> None:
    rec = Reconciler([policy("users", 1)])
    rec.decide(0)
    assert rec.next_wakeup() == START_TIMEOUT
    actions = rec.decide(START_TIMEOUT)
    assert actions == [
        Stop("users", "users-1", f"not listening after {START_TIMEOUT:g} s", fault=True),
        Start("users", "users-2"),
    ]
    rec.exited("users-1", -15, [], START_TIMEOUT + 1)  # the stop we asked for: no new report
    assert rec.decide(START_TIMEOUT + 1) == []


def test_port_conflict_is_retried_at_once_without_back_off() -> None:
    rec = Reconciler([policy("users", 1)])
    rec.decide(0)
    rec.port_conflict("users-1")
    assert rec.decide(0) == [Start("users", "users-2")]


def test_rolling_restart_default_100_200_new_healthy_before_old_drains() -> None:
    rec = Reconciler([policy("users", 2)])
    up(rec)
    rec.restart("users")
    starts = rec.decide(1)
    assert starts == [Start("users", "users-3"), Start("users", "users-4")]  # up to 200 %
    rec.listening("users-3")
    assert rec.decide(2) == [Register("users", "users-3")]
    rec.health_changed("users-3", "healthy", 3)
    # three healthy, floor two: one old replica may go, the oldest first
    assert rec.decide(3) == [Drain("users", "users-1", "replaced by a newer replica")]
    healthy(rec, [Start("users", "users-4")], 4)
    assert rec.decide(4) == [Drain("users", "users-2", "replaced by a newer replica")]
    assert not rec.settled("users")  # the old ones are still draining
    rec.exited("users-1", 0, [], 5)
    rec.exited("users-2", 0, [], 6)
    assert rec.decide(6) == []
    assert rec.settled("users")


def test_rolling_restart_with_maximum_100_drains_first_within_minimum_50() -> None:
    rec = Reconciler([policy("users", 2, low=50, high=100)])
    up(rec)
    rec.restart("users")
    # room for no extra replica: drain one (one healthy stays, 50 %), start after it is gone
    assert rec.decide(1) == [Drain("users", "users-1", "replaced by a newer replica")]
    rec.exited("users-1", 0, [], 2)
    assert rec.decide(2) == [Start("users", "users-3")]
    healthy(rec, [Start("users", "users-3")], 3)
    assert rec.decide(3) == [Drain("users", "users-2", "replaced by a newer replica")]
    rec.exited("users-2", 0, [], 4)
    assert rec.decide(4) == [Start("users", "users-4")]


def test_rolling_restart_drains_unhealthy_old_replicas_first() -> None:
    rec = Reconciler([policy("users", 2, high=150)])
    up(rec)
    rec.health_changed("users-2", "initial", 1)
    rec.restart("users")
    # users-2 serves nothing: it may go at once; ceiling 3 leaves room for one new replica
    assert rec.decide(1) == [
        Drain("users", "users-2", "replaced by a newer replica"),
        Start("users", "users-3"),
    ]


def test_shutdown_drains_registered_and_stops_the_rest_and_starts_nothing() -> None:
    rec = Reconciler([policy("users", 2)])
    starts = [a for a in rec.decide(0) if isinstance(a, Start)]
    healthy(rec, starts[:1], 1)
    rec.shutdown()
    assert rec.decide(2) == [
        Drain("users", "users-1", "the stack is stopping"),
        Stop("users", "users-2", "the stack is stopping"),
    ]
    rec.exited("users-1", 0, [], 3)
    assert not rec.all_stopped()
    rec.exited("users-2", 0, [], 3)
    assert rec.decide(4) == []
    assert rec.all_stopped()


def test_events_about_unknown_replicas_are_ignored() -> None:
    rec = Reconciler([policy("users", 1)])
    rec.listening("nobody-1")
    rec.health_changed("nobody-1", "healthy", 0)
    rec.exited("nobody-1", 1, [], 0)
    assert rec.decide(0) == [Start("users", "users-1")]


def test_no_wakeup_in_the_past_once_an_unhealthy_replica_is_draining() -> None:
    rec = Reconciler([policy("users", 1, grace=0)])
    up(rec, now=0)
    rec.health_changed("users-1", "unhealthy", 5)
    assert rec.next_wakeup() == 0  # due now: the grace period is over
    rec.decide(5)  # drains users-1, starts users-2
    assert rec.next_wakeup() == 5 + START_TIMEOUT  # only users-2's start deadline


def test_a_held_restart_starts_a_full_new_set_beside_the_old_until_released() -> None:
    rec = Reconciler([policy("users", 2)])
    up(rec)
    assert rec.restart("users", hold=True) == 2
    starts = rec.decide(1)
    assert starts == [Start("users", "users-3"), Start("users", "users-4")]
    healthy(rec, starts, 2)
    assert rec.decide(3) == []  # held: the old replicas stay, all four serve
    rec.release("users")
    assert rec.decide(4) == [
        Drain("users", "users-1", "replaced by a newer replica"),
        Drain("users", "users-2", "replaced by a newer replica"),
    ]


def test_a_rollback_drains_the_new_replicas_and_the_next_restart_gets_a_fresh_generation() -> None:
    rec = Reconciler([policy("users", 2)])
    up(rec)
    rec.restart("users", hold=True)
    healthy(rec, rec.decide(1), 2)
    assert rec.rollback("users") == 1
    assert rec.decide(3) == [
        Drain("users", "users-3", "its deployment was rolled back"),
        Drain("users", "users-4", "its deployment was rolled back"),
    ]
    assert rec.restart("users") == 3  # never 2 again: those replicas may still be draining


def test_a_lower_desired_count_drains_the_extras() -> None:
    rec = Reconciler([policy("users", 3)])
    up(rec)
    rec.set_desired("users", 1)
    assert rec.desired("users") == 1
    drains = rec.decide(1)
    assert len(drains) == 2 and all(isinstance(a, Drain) for a in drains)
    assert {a.reason for a in drains} == {"more replicas than the desired count (1)"}  # type: ignore[union-attr]
    rec.set_desired("users", 2)
    assert rec.decide(2) == [Start("users", "users-4")]
