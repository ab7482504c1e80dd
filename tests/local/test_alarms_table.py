"""The alarm evaluator as tables (local/alarms.py; docs/policies.md): each alarm at its threshold
and one step over it, M of N with missing data, the reasons, and which alarms fire.

The checks are a module-level table, which mutmut does not mutate: these tests pin their
comparisons (`>` or `>=`) at the threshold itself.
"""

from __future__ import annotations

import pytest

from microforum.local.alarms import ALARM, INSUFFICIENT, OK, AlarmState, evaluate, firing
from microforum.local.datapoints import Datapoint
from microforum.spec.model import Alarms

ALARMS = Alarms(target_5xx=10, unhealthy_hosts=2, p99_seconds=2.0, error_percent=1.0, period=60,
                datapoints=2, evaluation_periods=3)  # fmt: skip


def point(requests: int = 100, *, t4xx: int = 0, t5xx: int = 0, p99: float | None = None,
          unhealthy: int = 0) -> Datapoint:  # fmt: skip
    return Datapoint(0.0, 60.0, requests, t4xx, t5xx, p99 if requests else None, unhealthy, 1, None)


def states(points: list[Datapoint]) -> dict[str, str]:
    return {a.name: a.state for a in evaluate(ALARMS, points)}


@pytest.mark.parametrize(
    ("name", "at", "over"),
    [
        # Target 5xx count: > 10 (11 of 1000 is 1.1 % too, so use many requests)
        ("target-5xx", point(100_000, t5xx=10), point(100_000, t5xx=11)),
        ("unhealthy-hosts", point(unhealthy=1), point(unhealthy=2)),  # >= 2: 2 breaches
        ("p99-latency", point(p99=2.0), point(p99=2.001)),
        ("error-rate", point(1000, t4xx=10), point(1000, t4xx=5, t5xx=6)),  # 1.0 % vs 1.1 %
    ],
)
def test_each_alarm_at_its_threshold_and_over_it(name: str, at: Datapoint, over: Datapoint) -> None:
    assert states([at] * 3)[name] == OK
    assert states([over] * 3)[name] == ALARM
    assert states([over, at, over])[name] == ALARM  # 2 of 3
    assert states([over, at, at])[name] == OK
    assert states([over, over, at, at])[name] == OK  # only the latest 3 count


def test_the_order_and_names_of_the_alarms() -> None:
    assert [a.name for a in evaluate(ALARMS, [])] == [
        "target-5xx",
        "unhealthy-hosts",
        "p99-latency",
        "error-rate",
    ]


def test_insufficient_data_says_how_many_datapoints_there_are() -> None:
    got = {a.name: a for a in evaluate(ALARMS, [point(0), point(100, p99=0.5)])}
    assert got["p99-latency"] == AlarmState(
        "p99-latency", INSUFFICIENT, "TargetResponseTime p99 > 2 s: 1 of 3 datapoints"
    )
    assert got["target-5xx"].reason == "HTTPCode_Target_5XX_Count > 10: 2 of 3 datapoints"


def test_reasons_of_ok_and_alarm() -> None:
    got = {a.name: a for a in evaluate(ALARMS, [point(unhealthy=3), point(), point(unhealthy=2)])}
    assert got["unhealthy-hosts"] == AlarmState(
        "unhealthy-hosts",
        ALARM,
        "UnHealthyHostCount >= 2: 2 of the last 3 datapoints breach (need 2) [3, 0, 2]",
    )
    assert got["target-5xx"].reason == (
        "HTTPCode_Target_5XX_Count > 10: 0 of the last 3 datapoints breach (need 2) [0, 0, 0]"
    )


def test_firing_lists_the_alarms_in_alarm_only() -> None:
    got = evaluate(ALARMS, [point(unhealthy=2)] * 3)
    assert [a.name for a in firing(got)] == ["unhealthy-hosts"]
    assert firing(evaluate(ALARMS, [])) == []
