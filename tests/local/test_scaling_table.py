"""Target tracking's rule as tables and transcripts (local/scaling.py; docs/policies.md).

`decide` is called with datapoints built here (one a minute), the Scaler is fed minute by minute.
"""

from __future__ import annotations

import pytest

from microforum.local.datapoints import Datapoint
from microforum.local.scaling import Cooldowns, Scaler, decide
from microforum.spec.model import Autoscaling

REQUESTS = Autoscaling(min=1, max=10, requests_per_target=100, cpu_percent=None)
BOTH = Autoscaling(min=1, max=10, requests_per_target=100, cpu_percent=50)


def per_target(load: float, cpu: float | None = None, running: int = 1) -> Datapoint:
    """A one-minute datapoint with `load` requests per target."""
    return Datapoint(0.0, 60.0, round(load * running), 0, 0, None, 0, running, cpu)


def change(spec: Autoscaling, desired: int, loads: list[float], cool: Cooldowns | None = None,
           now: float = 10_000.0, cpu: list[float] | None = None) -> tuple[int, str, str] | None:  # fmt: skip
    cpus = cpu or [None] * len(loads)  # type: ignore[list-item]
    points = [per_target(load, c) for load, c in zip(loads, cpus, strict=True)]
    got = decide(spec, desired, points, cool or Cooldowns(), now)
    return None if got is None else (got.desired, got.direction, got.reason)


@pytest.mark.parametrize(
    ("desired", "loads", "want"),
    [
        # the count comes from the LATEST datapoint: ceil(2 * 250 / 100) = 5
        (2, [400, 150, 250], (5, "out", "ALBRequestCountPerTarget 250 > target 100 for 3 datapoints")),
        (2, [250, 400, 150], (3, "out", "ALBRequestCountPerTarget 150 > target 100 for 3 datapoints")),
        (2, [500, 100, 500], None),  # one datapoint AT the target breaks the run
        (10, [500] * 3, None),  # already at max: no change, not a change to the same count
        (9, [500] * 3, (10, "out", "ALBRequestCountPerTarget 500 > target 100 for 3 datapoints")),
        # scale-in from the latest of 15: ceil(6 * 50 / 100) = 3
        (
            6,
            [10.0] * 14 + [50.0],
            (3, "in", "ALBRequestCountPerTarget 50 < 90 (90 % of target) for 15 datapoints"),
        ),
        (6, [10.0] * 14 + [90.0], None),  # exactly 90 % of the target is not below it
        (6, [10.0] * 13 + [90.0, 10.0], None),
        (1, [0.0] * 15, None),  # at min already
    ],
)
def test_requests_per_target(desired: int, loads: list[float], want: tuple[int, str, str] | None) -> None:
    assert change(REQUESTS, desired, loads) == want


def test_scale_in_never_below_one_task_while_any_run_even_when_min_is_zero() -> None:
    spec = Autoscaling(min=0, max=4, requests_per_target=None, cpu_percent=50)
    idle = [0.0] * 15
    assert change(spec, 3, idle, cpu=[0.0] * 15) == (
        1, "in", "ECSServiceAverageCPUUtilization 0 < 45 (90 % of target) for 15 datapoints",
    )  # fmt: skip
    assert change(spec, 1, idle, cpu=[0.0] * 15) is None
    # no task: nothing to scale in, and no load figure can ask for a first one
    assert change(spec, 0, idle, cpu=[0.0] * 15) is None
    assert change(spec, 0, [0.0] * 3, cpu=[90.0] * 3) is None


def test_scale_in_respects_min() -> None:
    spec = Autoscaling(min=2, max=4, requests_per_target=100, cpu_percent=None)
    assert change(spec, 2, [10.0] * 15) is None
    assert change(spec, 3, [10.0] * 15) == (
        2, "in", "ALBRequestCountPerTarget 10 < 90 (90 % of target) for 15 datapoints",
    )  # fmt: skip


def test_every_tracked_policy_must_agree_to_scale_in_and_the_largest_count_wins() -> None:
    low_cpu = [5.0] * 15
    # requests ask for ceil(8 * 0.5) = 4, CPU for ceil(8 * 40 / 50) = 7: the larger, 7
    got = change(BOTH, 8, [50.0] * 15, cpu=[40.0] * 15)
    assert got is not None and got[:2] == (7, "in")
    assert change(BOTH, 8, [50.0] * 15, cpu=[45.0] * 15) is None  # CPU at 90 %: no agreement
    assert change(BOTH, 8, [50.0] * 15, cpu=low_cpu) is not None


def test_out_of_bounds_is_brought_in_with_its_reason() -> None:
    assert change(REQUESTS, 0, [0.0]) == (1, "bound", "desired 0 outside min 1..max 10")
    assert change(REQUESTS, 11, [0.0]) == (10, "bound", "desired 11 outside min 1..max 10")


def test_cooldowns_to_the_second() -> None:
    high, low = [500.0] * 3, [10.0] * 15
    assert change(REQUESTS, 2, high, Cooldowns(last_out=1000.0), now=1299.0) is None
    assert change(REQUESTS, 2, high, Cooldowns(last_out=1000.0), now=1300.0) is not None
    # a scale-in waits for the scale-in cooldown after ANY activity, not only a scale-out
    assert change(REQUESTS, 5, low, Cooldowns(last_activity=1000.0), now=1299.0) is None
    assert change(REQUESTS, 5, low, Cooldowns(last_activity=1000.0), now=1300.0) is not None
    # a scale-out does not wait for the scale-in cooldown
    assert change(REQUESTS, 2, high, Cooldowns(last_activity=1000.0), now=1001.0) is not None


def test_scaler_transcript_steps_down_one_cooldown_at_a_time() -> None:
    scaler = Scaler(Autoscaling(min=1, max=8, requests_per_target=100, cpu_percent=None), 6)
    assert scaler.reason == "the stack's desired_count"
    steps = []
    for minute in range(1, 31):  # 50 requests per target each minute, at whatever count runs
        got = scaler.observe(per_target(50.0, running=scaler.desired), minute * 60.0)
        if got is not None:
            steps.append((minute, got.desired))
    # 15 datapoints, then every 300 s (the scale-in cooldown after the last change): 6 -> 3 -> 2 -> 1
    assert steps == [(15, 3), (20, 2), (25, 1)]
    assert len(scaler.points) == 15  # only what the rule reads is kept
    assert scaler.reason.endswith("for 15 datapoints -> 1")


def test_a_bound_change_starts_the_scale_in_cooldown() -> None:
    scaler = Scaler(Autoscaling(min=1, max=4, requests_per_target=100, cpu_percent=None), 6)
    for minute in range(1, 15):
        scaler.observe(per_target(10.0, running=4), minute * 60.0)
    assert scaler.desired == 4  # brought in at minute 1
    assert scaler.cool.last_activity == 60.0 and scaler.cool.last_out is None
