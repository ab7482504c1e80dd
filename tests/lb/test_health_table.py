"""The health state machine at its edges: exact deadlines, a registration time other than 0,
overrun checks, what a fresh tracker holds, every failure's reason (lb/health.py)."""

from __future__ import annotations

import pytest

from microforum.lb.health import CheckResult, HealthTracker, Transition, classify_status
from microforum.spec.model import HealthCheck

CHECK = HealthCheck(
    "/", interval=6, timeout=5, healthy_threshold=3, unhealthy_threshold=2, success_codes="200"
)
OK = CheckResult("ok", 200)
REFUSED = CheckResult("error", detail="connection refused")


def tracker(now: float = 0.0) -> HealthTracker:
    return HealthTracker(CHECK, now=now, initial_interval=0.2)


def test_a_fresh_tracker_has_no_failure_and_no_drain_deadline() -> None:
    fresh = tracker(50.0)
    assert (fresh.last_failure, fresh.last_failure_at, fresh.drain_deadline) == (None, None, None)
    assert (fresh.successes, fresh.failures, fresh.registered_at, fresh.next_check) == (0, 0, 50.0, 50.0)
    assert fresh.checking


def test_classify_status_keeps_the_code() -> None:
    assert classify_status(CHECK, 200) == CheckResult("ok", 200)
    assert classify_status(CHECK, 503) == CheckResult("code", 503)


def test_the_grace_counts_from_registration_not_from_time_zero() -> None:
    late = tracker(100.0)  # unhealthy_threshold 2 x interval 6: unhealthy from 112 on
    assert late.record(REFUSED, 111.9) is None
    assert late.reason == "Elb.InitialHealthChecking"
    assert late.record(REFUSED, 112.0) == Transition("initial", "unhealthy")
    assert (late.reason, late.description) == ("Target.FailedHealthChecks", "Health checks failed")


@pytest.mark.parametrize(
    ("result", "reason", "description", "last_failure"),
    [
        (
            CheckResult("code", 404),
            "Target.ResponseCodeMismatch",
            "Health checks failed with these codes: [404]",
            "Target.ResponseCodeMismatch: Health checks failed with these codes: [404]",
        ),
        (
            CheckResult("timeout"),
            "Target.Timeout",
            "Request timed out",
            "Target.Timeout: Request timed out",
        ),
        (
            CheckResult("internal", detail="boom"),
            "Elb.InternalError",
            "Health checks failed due to an internal error",
            "Elb.InternalError: Health checks failed due to an internal error (boom)",
        ),
    ],
)
def test_each_failure_has_its_reason(
    result: CheckResult, reason: str, description: str, last_failure: str
) -> None:
    target = tracker()
    target.record(OK, 0.0)
    target.record(result, 6.0)
    assert (target.state, target.failures, target.successes) == ("healthy", 1, 0)
    target.record(result, 12.0)
    assert (target.state, target.reason, target.description) == ("unhealthy", reason, description)
    assert (target.last_failure, target.last_failure_at) == (last_failure, 12.0)


def test_an_overrun_initial_check_is_followed_at_once_and_a_healthy_one_keeps_the_grid() -> None:
    target = tracker()
    target.record(REFUSED, 1.0)  # due at 0, answered at 1: past its 0.2 s slot
    assert target.next_check == 1.0
    target.record(OK, 1.0)
    assert target.next_check == 7.0  # healthy: one interval after the check was due
    target.record(OK, 14.0)  # due at 7, recorded at 14 (after the next slot)
    assert target.next_check == 13.0
    assert target.due(14.0) == 0.0


def test_descriptions_follow_the_state() -> None:
    target = tracker()
    target.record(REFUSED, 0.0)
    assert target.description == "Initial health checks in progress"
    target.record(OK, 0.2)
    assert (target.reason, target.description) == (None, None)
    assert target.deregister(1.0, delay=5.0) == Transition("healthy", "draining")
    assert (target.description, target.drain_deadline, target.checking) == (
        "Target deregistration is in progress",
        6.0,
        False,
    )
    assert target.deregister(2.0, delay=5.0) is None  # already draining: the deadline stays
    assert target.drain_deadline == 6.0


def test_draining_ends_exactly_at_the_deadline() -> None:
    target = tracker()
    target.deregister(0.0, delay=2.0)
    assert target.expire(1.999, in_flight=1) is None
    assert target.expire(2.0, in_flight=1) == Transition("draining", "unused")
    assert (target.reason, target.description) == (
        "Target.NotRegistered",
        "Target is not registered to the target group",
    )
    assert target.expire(3.0, in_flight=0) is None  # unused stays unused
    assert target.deregister(3.0, delay=2.0) is None
    assert target.record(OK, 3.0) is None and target.state == "unused"


def test_only_a_draining_target_expires() -> None:
    target = tracker()
    target.record(OK, 0.0)
    assert target.expire(100.0, in_flight=0) is None
    assert target.state == "healthy"


def test_healthy_again_after_exactly_healthy_threshold_passes() -> None:
    target = tracker()
    for now, result in [(0, OK), (6, REFUSED), (12, REFUSED), (18, OK), (24, OK)]:
        target.record(result, now)
    assert (target.state, target.successes) == ("unhealthy", 2)
    assert target.record(OK, 30) == Transition("unhealthy", "healthy")
