"""The target health state machine as transcripts with a fake clock (docs/alb.md §B)."""

from __future__ import annotations

import pytest

from microforum.lb.health import CheckResult, HealthTracker, classify_status
from microforum.spec.model import HealthCheck

CHECK = HealthCheck("/", interval=6, timeout=5, healthy_threshold=3, unhealthy_threshold=2,
                    success_codes="200-299")  # fmt: skip
OK = CheckResult("ok", 200)
BAD = CheckResult("code", 503)
TIMEOUT = CheckResult("timeout")
REFUSED = CheckResult("error", detail="connection refused")


def run(transcript, tracker=None):
    """Feed (time, event) steps; return (time, state, reason, transition) after each."""
    tracker = tracker or HealthTracker(CHECK, now=0.0, initial_interval=0.2)
    seen = []
    for now, event in transcript:
        if event == "deregister":
            change = tracker.deregister(now, delay=2.0)
        elif isinstance(event, tuple):  # ("expire", in_flight)
            change = tracker.expire(now, event[1])
        else:
            change = tracker.record(event, now)
        seen.append((now, tracker.state, tracker.reason, change and (change.old, change.new)))
    return seen


def test_registered_target_starts_initial():
    tracker = HealthTracker(CHECK, now=100.0, initial_interval=0.2)
    assert (tracker.state, tracker.reason) == ("initial", "Elb.RegistrationInProgress")
    assert tracker.description == "Target registration is in progress"
    assert tracker.due(100.0) == 0.0  # the first check is immediate


def test_one_pass_makes_an_initial_target_healthy():
    assert run([(0.0, REFUSED), (0.2, REFUSED), (0.4, OK)]) == [
        (0.0, "initial", "Elb.InitialHealthChecking", None),
        (0.2, "initial", "Elb.InitialHealthChecking", None),
        (0.4, "healthy", None, ("initial", "healthy")),
    ]


def test_initial_checks_run_at_the_fast_local_cadence_then_the_interval():
    tracker = HealthTracker(CHECK, now=0.0, initial_interval=0.2)
    tracker.record(REFUSED, 0.0)
    assert tracker.due(0.0) == pytest.approx(0.2)  # local deviation: 0.2 s while initial
    tracker.record(OK, 0.25)
    assert tracker.due(0.25) == pytest.approx(6.0 - 0.05)  # schedule from when it was due


def test_initial_turns_unhealthy_only_after_albs_time_not_after_two_fast_failures():
    # unhealthy_threshold 2 x interval 6 = 12 s of failures before `unhealthy`
    steps = [(t / 10, TIMEOUT) for t in range(0, 121, 40)]  # 0, 4, 8, 12 s
    seen = run(steps)
    assert [s[1] for s in seen] == ["initial", "initial", "initial", "unhealthy"]
    assert seen[-1][2:] == ("Target.Timeout", ("initial", "unhealthy"))


def test_healthy_needs_unhealthy_threshold_failures_in_a_row():
    assert run([(0, OK), (6, BAD), (12, OK), (18, BAD), (24, BAD)]) == [
        (0, "healthy", None, ("initial", "healthy")),
        (6, "healthy", None, None),
        (12, "healthy", None, None),  # a pass resets the failure count
        (18, "healthy", None, None),
        (24, "unhealthy", "Target.ResponseCodeMismatch", ("healthy", "unhealthy")),
    ]


def test_unhealthy_needs_healthy_threshold_passes_and_keeps_the_latest_reason():
    seen = run([(0, OK), (6, BAD), (12, BAD), (18, REFUSED), (24, OK), (30, OK), (36, OK)])
    assert [(s[1], s[2]) for s in seen[2:]] == [
        ("unhealthy", "Target.ResponseCodeMismatch"),
        ("unhealthy", "Target.FailedHealthChecks"),
        ("unhealthy", "Target.FailedHealthChecks"),
        ("unhealthy", "Target.FailedHealthChecks"),
        ("healthy", None),  # healthy_threshold = 3
    ]


def test_descriptions_and_last_failure():
    tracker = HealthTracker(CHECK, now=0.0, initial_interval=0.2)
    run([(0, OK), (6, BAD), (12, BAD)], tracker)
    assert tracker.description == "Health checks failed with these codes: [503]"
    assert tracker.last_failure == (
        "Target.ResponseCodeMismatch: Health checks failed with these codes: [503]"
    )
    run([(18, REFUSED)], tracker)
    assert tracker.last_failure == "Target.FailedHealthChecks: Health checks failed (connection refused)"
    assert tracker.last_failure_at == 18


def test_draining_stops_checks_and_ends_when_idle_or_after_the_delay():
    seen = run([(0, OK), (1, "deregister"), (1.5, BAD), (2, ("expire", 1)), (3.1, ("expire", 1))])
    assert seen == [
        (0, "healthy", None, ("initial", "healthy")),
        (1, "draining", "Target.DeregistrationInProgress", ("healthy", "draining")),
        (1.5, "draining", "Target.DeregistrationInProgress", None),  # checks ignored
        (2, "draining", "Target.DeregistrationInProgress", None),  # one in flight, delay not over
        (3.1, "unused", "Target.NotRegistered", ("draining", "unused")),  # delay (2 s) passed
    ]
    assert run([(0, "deregister"), (0.1, ("expire", 0))])[-1][1] == "unused"  # nothing in flight


@pytest.mark.parametrize(("codes", "status", "outcome"), [
    ("200", 200, "ok"), ("200", 204, "code"), ("200,202", 202, "ok"), ("200-299", 299, "ok"),
    ("200-299", 301, "code"),
])  # fmt: skip
def test_success_codes(codes, status, outcome):
    check = HealthCheck("/", 6, 5, 2, 2, codes)
    assert classify_status(check, status).outcome == outcome


def test_repr_is_informative():
    tracker = HealthTracker(CHECK, now=0.0, initial_interval=0.2)
    tracker.record(OK, 0.0)
    assert repr(tracker) == "<HealthTracker healthy reason=None ok=1 fail=0 next=6>"
