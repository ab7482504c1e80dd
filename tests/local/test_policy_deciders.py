"""The pure deciders of the local policies: target tracking, alarms, rollouts, datapoints.

Transcripts: datapoints with an injected clock (AWS seconds) in, changes out.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from microforum.local.alarms import ALARM, INSUFFICIENT, OK, evaluate
from microforum.local.datapoints import Datapoint, PeriodSampler, Reading
from microforum.local.rollout import Rollout
from microforum.local.scaling import Scaler
from microforum.spec.model import Alarms, Autoscaling, Deployment

ALARMS = Alarms(target_5xx=10, unhealthy_hosts=1, p99_seconds=2.0, error_percent=1.0, period=60,
                datapoints=2, evaluation_periods=3)  # fmt: skip


def point(requests: int = 0, running: int = 1, *, t5xx: int = 0, t4xx: int = 0, p99: float | None = None,
          unhealthy: int = 0, cpu: float | None = None, end: float = 0.0) -> Datapoint:  # fmt: skip
    return Datapoint(end, 60.0, requests, t4xx, t5xx, p99 if requests else None, unhealthy, running, cpu)


def run_scaler(spec: Autoscaling, desired: int, per_target: list[float]) -> list[tuple[int, int, str]]:
    """Feed one datapoint a minute with `per_target` requests per target; (minute, desired, why)."""
    scaler = Scaler(spec, desired)
    out = []
    for minute, load in enumerate(per_target, start=1):
        running = scaler.desired
        change = scaler.observe(point(int(load * running), running), minute * 60.0)
        if change is not None:
            out.append((minute, change.desired, change.direction))
    return out


def test_scale_out_after_three_datapoints_above_target_then_cooldown() -> None:
    spec = Autoscaling(min=1, max=6, requests_per_target=100, cpu_percent=None)
    # 250 requests per target: ceil(1 * 250 / 100) = 3 after three minutes; the load stays (per
    # target it is still 250 at 3 replicas), so after the 300 s cooldown: ceil(3 * 2.5) = 6 (max).
    assert run_scaler(spec, 1, [250] * 9) == [(3, 3, "out"), (8, 6, "out")]


def test_scale_in_after_fifteen_datapoints_below_ninety_percent_and_never_below_min() -> None:
    spec = Autoscaling(min=2, max=6, requests_per_target=100, cpu_percent=None)
    assert run_scaler(spec, 6, [89.0] * 14) == []  # 14 datapoints are not enough
    assert run_scaler(spec, 6, [10.0] * 15) == [(15, 2, "in")]  # ceil(6 * 0.1) = 1, but min 2
    assert run_scaler(spec, 6, [91.0] * 20) == []  # above 90 % of the target: no scale-in


def test_scale_in_waits_for_the_cooldown_after_a_scale_out() -> None:
    spec = Autoscaling(min=1, max=4, requests_per_target=100, cpu_percent=None)
    scaler = Scaler(spec, 1)
    for minute in (1, 2, 3):
        scaler.observe(point(300, 1), minute * 60.0)
    assert scaler.desired == 3
    for minute in range(4, 19):  # 15 idle datapoints, the last at minute 18: cooldown long over
        change = scaler.observe(point(0, scaler.desired), minute * 60.0)
    assert (change is not None, scaler.desired) == (True, 1)
    assert "ALBRequestCountPerTarget 0 < 90 (90 % of target) for 15 datapoints -> 1" in scaler.reason


def test_cpu_and_requests_both_tracked_scale_in_only_when_both_agree() -> None:
    spec = Autoscaling(min=1, max=5, requests_per_target=100, cpu_percent=50)
    scaler = Scaler(spec, 4)
    for minute in range(1, 16):  # requests low, CPU at the target: no scale-in
        assert scaler.observe(point(40, 4, cpu=50.0), minute * 60.0) is None
    for minute in range(16, 19):  # CPU high: scale out on CPU alone
        change = scaler.observe(point(40, 4, cpu=80.0), minute * 60.0)
    assert change is not None and (change.desired, change.direction) == (5, "out")  # ceil(4*1.6)=7 -> max 5
    assert "ECSServiceAverageCPUUtilization 80 > target 50" in change.reason


def test_a_desired_count_outside_the_bounds_is_brought_in_at_once() -> None:
    spec = Autoscaling(min=2, max=3, requests_per_target=100, cpu_percent=None)
    assert run_scaler(spec, 1, [0]) == [(1, 2, "bound")]
    assert run_scaler(spec, 5, [0]) == [(1, 3, "bound")]


def test_missing_datapoints_break_a_run() -> None:
    spec = Autoscaling(min=1, max=4, requests_per_target=100, cpu_percent=None)
    scaler = Scaler(spec, 1)
    points = [point(300, 1), point(300, 1), point(300, 0), point(300, 1)]  # no target: missing
    assert [scaler.observe(p, i * 60.0) for i, p in enumerate(points)] == [None] * 4


@pytest.mark.parametrize(
    ("points", "states"),
    [
        ([], {"target-5xx": INSUFFICIENT, "error-rate": INSUFFICIENT}),
        (
            [point(1000)] * 3,
            {"target-5xx": OK, "unhealthy-hosts": OK, "p99-latency": INSUFFICIENT, "error-rate": OK},
        ),
        # ECS Express's rule: 4xx+5xx over 1 % of requests in 2 of 3 datapoints.
        (
            [point(1000, t5xx=20), point(1000), point(1000, t4xx=11)],
            {"error-rate": ALARM, "target-5xx": OK},
        ),
        ([point(1000, t5xx=20), point(1000), point(1000, t4xx=10)], {"error-rate": OK, "target-5xx": OK}),
        ([point(1000, p99=0.1)] * 3, {"p99-latency": OK}),
        ([point(1000, p99=2.5), point(1000, p99=0.1), point(1000, p99=2.1)], {"p99-latency": ALARM}),
        ([point(0, unhealthy=1)] * 2 + [point(0)], {"unhealthy-hosts": ALARM}),
        # no requests: no error rate (missing data), earlier datapoints still count
        ([point(100, t5xx=5), point(100, t5xx=5), point(0), point(100)], {"error-rate": ALARM}),
    ],
)
def test_alarms(points: list[Datapoint], states: dict[str, str]) -> None:
    got = {a.name: a.state for a in evaluate(ALARMS, points)}
    assert {name: got[name] for name in states} == states


def test_alarm_reason_names_the_metric_threshold_and_values() -> None:
    states = evaluate(ALARMS, [point(100, t5xx=5), point(100), point(100, t5xx=2)])
    error = next(a for a in states if a.name == "error-rate")
    assert error.reason == "4xx+5xx % of requests > 1 %: 2 of the last 3 datapoints breach (need 2) [5, 0, 2]"


DEPLOY = Deployment(100, 200, 0, "canary", 5.0, 10.0, 10)


def test_canary_transcript() -> None:
    rollout = Rollout("web", DEPLOY, started=0.0)
    assert (rollout.phase, rollout.share, rollout.weighted) == ("launching", 0.0, True)
    assert rollout.on("ready", 30.0) == "canary: new replicas get 5 % of requests, baking 10 min"
    assert rollout.tick(629.0) is None
    assert rollout.tick(630.0) == "new replicas get all requests; the old ones drain"
    assert (rollout.phase, rollout.share, rollout.done, rollout.weighted) == ("shifted", 100.0, True, False)


def test_linear_transcript_and_a_rollback_midway() -> None:
    rollout = Rollout("web", replace(DEPLOY, strategy="linear", step_percent=40.0, bake_minutes=1), 0.0)
    rollout.on("ready", 0.0)
    assert (rollout.phase, rollout.share) == ("step", 40.0)
    rollout.tick(60.0)
    assert (rollout.phase, rollout.share) == ("step", 80.0)
    assert rollout.on("alarm", 61.0) == "rolled back: the old replicas get all requests; the new ones drain"
    assert (rollout.phase, rollout.share, rollout.done) == ("rolled_back", 0.0, True)
    assert rollout.on("alarm", 62.0) is None and rollout.tick(1000.0) is None


def test_rolling_waits_for_the_reconciler_and_rolls_back_on_alarm() -> None:
    rolling = replace(DEPLOY, strategy="rolling")
    rollout = Rollout("web", rolling, 0.0)
    assert rollout.weighted is False and rollout.on("ready", 1.0) is None
    assert rollout.on("settled", 2.0) == "new replicas get all requests; the old ones drain"
    assert Rollout("web", rolling, 0.0).on("alarm", 1.0) is not None


def test_sampler_makes_one_datapoint_per_period_from_running_counters() -> None:
    sampler = PeriodSampler(60.0, 0.0, Reading(100, 1, 2, None, 0, 2))
    assert sampler.observe(59.0, Reading(150, 1, 2, 0.2, 0, 2)) is None
    got = sampler.observe(60.0, Reading(400, 4, 12, 0.3, 1, 2))
    assert got == Datapoint(60.0, 60.0, 300, 3, 10, 0.3, 1, 2, None)
    assert (got.error_percent, got.requests_per_target) == (13 * 100 / 300, 150.0)
    assert sampler.observe(120.0, Reading(400, 4, 12, 0.3, 0, 2)) == Datapoint(
        120.0, 60.0, 0, 0, 0, None, 0, 2, None
    )
