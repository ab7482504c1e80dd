"""What the console's page shows, as one JSON document (pure): `GET /api/state`'s answer.

Made from what `microforum status` reads — the load balancer's `describe()` (targets with ALB's
states and reason codes, figures) and the supervisor's replica snapshot — plus the sampled
history, the restarts asked for from the page, and the latest access-log lines. The picture and
the charts come as SVG text: the page only places them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from microforum.console import restarts as rs
from microforum.console.charts import render_chart
from microforum.console.history import History
from microforum.console.logs import STATUS_FILTERS
from microforum.console.picture import render_picture

# Colours of the chart lines (CloudWatch's first palette colours).
BLUE, ORANGE, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"


def state(
    topo: Mapping[str, Any],
    live: Mapping[str, Any],
    replicas: Sequence[Mapping[str, Any]],
    history: History,
    restarts: Mapping[str, rs.Restart],
    logs: Sequence[Mapping[str, Any]],
    minutes: float,
) -> dict[str, Any]:
    """The page's whole state."""
    return {
        "stack": topo["stack"],
        "url": topo["url"],
        "picture": render_picture(topo, live),
        "groups": [
            group_state(group, live.get(group["name"]) or {}, replicas, history, restarts, minutes)
            for group in topo["groups"]
        ],
        "logs": list(logs),
        "filters": {"groups": [g["name"] for g in topo["groups"]], "statuses": list(STATUS_FILTERS)},
    }


def group_state(
    group: Mapping[str, Any],
    live: Mapping[str, Any],
    replicas: Sequence[Mapping[str, Any]],
    history: History,
    restarts: Mapping[str, rs.Restart],
    minutes: float,
) -> dict[str, Any]:
    """One target group: its targets, figures, charts and the latest restart of its service."""
    restart = restarts.get(group["service"])
    return {
        "name": group["name"],
        "service": group["service"],
        "desired": group["desired"],
        "targets": sorted(live.get("targets") or [], key=lambda t: str(t.get("id"))),
        "metrics": live.get("metrics") or {},
        "charts": charts(history.series(group["name"]), minutes),
        "restart": rs.progress(restart, replicas) if restart else None,
    }


def charts(series: Mapping[str, Sequence[float | None]], minutes: float) -> list[str]:
    """CloudWatch's four ALB graphs of a target group: requests, errors, times, hosts."""
    return [
        render_chart("Requests", [("RequestCount", BLUE, series["requests"])], minutes=minutes, total=True),
        render_chart(
            "Errors",
            [
                ("Target 4XX", ORANGE, series["target_4xx"]),
                ("Target 5XX", RED, series["target_5xx"]),
                ("ELB 5XX", PURPLE, series["elb_5xx"]),
            ],
            minutes=minutes,
            total=True,
        ),
        render_chart(
            "Target response time",
            [("p50", BLUE, _ms(series["p50"])), ("p99", ORANGE, _ms(series["p99"]))],
            unit=" ms",
            minutes=minutes,
        ),
        render_chart(
            "Hosts",
            [("Healthy", GREEN, series["healthy"]), ("Unhealthy", RED, series["unhealthy"])],
            minutes=minutes,
        ),
    ]


def _ms(seconds: Sequence[float | None]) -> list[float | None]:
    return [None if s is None else s * 1000 for s in seconds]
