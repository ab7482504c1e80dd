"""ALB's CloudWatch figures per target group over the last minutes (pure).

The load balancer keeps running totals (`lb/metrics.py`, what `microforum status` prints); the
console samples them every `CONSOLE_SAMPLE_INTERVAL` seconds and draws, as CloudWatch does, the
sum per period for the counts (RequestCount, HTTPCode_Target_4XX/5XX_Count,
HTTPCode_ELB_5XX_Count), and the value at the sample for the rest: TargetResponseTime p50/p99
(over the load balancer's latest responses) and HealthyHostCount/UnHealthyHostCount.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

# Series name -> the running total it is the per-period difference of.
COUNTS = {
    "requests": "RequestCount",
    "target_4xx": "HTTPCode_Target_4XX_Count",
    "target_5xx": "HTTPCode_Target_5XX_Count",
    "elb_5xx": "HTTPCode_ELB_5XX_Count",
}
# Series name -> the figure sampled as it is (seconds for the times).
GAUGES = {"p50": "TargetResponseTime_p50", "p99": "TargetResponseTime_p99"}
SERIES = (*COUNTS, *GAUGES, "healthy", "unhealthy")

Value = float | None


@dataclass(frozen=True)
class Sample:
    at: float
    figures: Mapping[str, Value]


def sample_of(at: float, group: Mapping[str, Any]) -> Sample:
    """One group's figures at `at`, from its entry in `LoadBalancer.describe()`."""
    metrics = group.get("metrics") or {}
    states = [t.get("state") for t in group.get("targets") or []]
    figures: dict[str, Value] = {name: metrics.get(key) for name, key in (COUNTS | GAUGES).items()}
    figures["healthy"] = states.count("healthy")
    figures["unhealthy"] = states.count("unhealthy")
    return Sample(at, figures)


class History:
    """The last `points` samples of every target group."""

    def __init__(self, points: int) -> None:
        self.points = points
        self._samples: dict[str, deque[Sample]] = {}

    def __repr__(self) -> str:
        sizes = {name: len(samples) for name, samples in self._samples.items()}
        return f"<History points={self.points} {sizes}>"

    def add(self, at: float, groups: Mapping[str, Any]) -> None:
        """Record `LoadBalancer.describe()` as seen at `at`."""
        for name, group in groups.items():
            ring = self._samples.setdefault(name, deque(maxlen=self.points + 1))
            ring.append(sample_of(at, group))

    def series(self, group: str) -> dict[str, list[Value]]:
        """Each series of `group`, oldest first, padded with None to `points` values."""
        samples = list(self._samples.get(group, ()))
        out: dict[str, list[Value]] = {}
        for name in SERIES:
            if name in COUNTS:
                values = [_delta(a.figures[name], b.figures[name]) for a, b in pairwise(samples)]
            else:
                values = [s.figures[name] for s in samples[1:]]
            padding: list[Value] = [None] * (self.points - len(values))
            out[name] = padding + values
        return out


def _delta(before: Value, after: Value) -> Value:
    if before is None or after is None or after < before:
        return None
    return after - before
