"""The console's graphs: figures sampled into per-period series, drawn as SVG charts."""

from __future__ import annotations

import pytest

from microforum.console.charts import nice_ceiling, render_chart
from microforum.console.history import History


def group(requests: int, elb_5xx: int, p99: float | None, states: list[str]) -> dict:  # type: ignore[type-arg]
    return {
        "targets": [{"state": s} for s in states],
        "metrics": {"RequestCount": requests, "HTTPCode_Target_4XX_Count": 0,
                    "HTTPCode_Target_5XX_Count": 0, "HTTPCode_ELB_5XX_Count": elb_5xx,
                    "TargetResponseTime_p50": p99, "TargetResponseTime_p99": p99},
    }  # fmt: skip


def test_counts_become_sums_per_period_and_the_rest_is_sampled() -> None:
    history = History(points=4)
    history.add(0, {"web": group(0, 0, None, ["initial"])})
    history.add(2, {"web": group(10, 0, 0.004, ["healthy", "healthy"])})
    history.add(4, {"web": group(25, 3, 0.006, ["healthy", "unhealthy"])})
    series = history.series("web")
    assert series["requests"] == [None, None, 10, 15]
    assert series["elb_5xx"] == [None, None, 0, 3]
    assert series["p99"] == [None, None, 0.004, 0.006]
    assert series["healthy"] == [None, None, 2, 1]
    assert series["unhealthy"] == [None, None, 0, 1]
    assert repr(history) == "<History points=4 {'web': 3}>"


def test_only_the_last_points_are_kept_and_a_reset_is_a_gap() -> None:
    history = History(points=2)
    for at, requests in enumerate((0, 5, 9, 2, 4)):  # 9 -> 2: the counters started again
        history.add(at, {"web": group(requests, 0, None, [])})
    assert history.series("web")["requests"] == [None, 2]
    assert history.series("nothing")["requests"] == [None, None]


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (0.3, 0.5), (1, 1), (1.1, 2), (2.2, 2.5), (3, 5), (7, 10), (10, 10), (11, 20), (4100, 5000)],
)
def test_axis_maxima_are_round(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)


def test_a_chart_breaks_its_line_at_gaps_and_says_the_latest_or_the_total() -> None:
    values = [None, 1, 2, None, 4, None, 3]
    latest = render_chart("Requests", [("RequestCount", "#123456", values)], minutes=5)
    assert latest.count("<polyline") == 3  # 1-2, 4 (a dot), 3 (a dot)
    assert "RequestCount 3</text>" in latest and "5 min ago" in latest
    total = render_chart("Requests", [("RequestCount", "#123456", values)], total=True)
    assert "RequestCount 10</text>" in total
    empty = render_chart("Hosts", [("Healthy", "#123456", [None, None])], unit=" ms")
    assert "Healthy - ms" in empty and "<polyline" not in empty
