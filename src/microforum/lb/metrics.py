"""ALB's CloudWatch figures per target group, kept locally (for `microforum status`).

RequestCount, HTTPCode_Target_{2,3,4,5}XX_Count, HTTPCode_ELB_{4,5}XX_Count and
TargetResponseTime percentiles (p50, p99) over the most recent `WINDOW` responses.
"""

from __future__ import annotations

from typing import Any, Final

WINDOW: Final = 4096  # (Final: compiled, a C constant rather than a module lookup)


class Metrics:
    """Counters for one target group (or for the load balancer as a whole)."""

    __slots__ = ("_next", "elb_4xx", "elb_5xx", "requests", "target_2xx", "target_3xx",
                 "target_4xx", "target_5xx", "times")  # fmt: skip

    def __init__(self) -> None:
        self.requests = 0
        # (attributes, not a list by status class: compiled, they are C integers, while a
        # list holds int objects, made anew on each increment past 256)
        self.target_2xx = self.target_3xx = self.target_4xx = self.target_5xx = 0
        self.elb_4xx = 0
        self.elb_5xx = 0
        self.times: list[float] = []  # the latest WINDOW response times, a ring once full
        self._next = 0

    def target_response(self, status: int, seconds: float) -> None:
        """A response that came from a target, `seconds` after the request was sent to it."""
        self.requests += 1
        if 200 <= status < 300:
            self.target_2xx += 1
        elif 300 <= status < 400:
            self.target_3xx += 1
        elif 400 <= status < 500:
            self.target_4xx += 1
        elif not 100 <= status < 200:  # 5xx, and anything outside 100-599 (1xx: not counted)
            self.target_5xx += 1
        times = self.times
        if len(times) < WINDOW:
            times.append(seconds)
        else:
            at = self._next
            times[at] = seconds
            self._next = at + 1 if at + 1 < WINDOW else 0

    def elb_response(self, status: int) -> None:
        """A response the load balancer generated itself."""
        self.requests += 1
        if status >= 500:
            self.elb_5xx += 1
        elif status >= 400:
            self.elb_4xx += 1

    def snapshot(self) -> dict[str, Any]:
        """The figures as JSON-able data; response times in seconds (None before any)."""
        ordered = sorted(self.times)
        return {
            "RequestCount": self.requests,
            "HTTPCode_Target_2XX_Count": self.target_2xx,
            "HTTPCode_Target_3XX_Count": self.target_3xx,
            "HTTPCode_Target_4XX_Count": self.target_4xx,
            "HTTPCode_Target_5XX_Count": self.target_5xx,
            "HTTPCode_ELB_4XX_Count": self.elb_4xx,
            "HTTPCode_ELB_5XX_Count": self.elb_5xx,
            "TargetResponseTime_p50": percentile(ordered, 50),
            "TargetResponseTime_p99": percentile(ordered, 99),
        }


def percentile(ordered: list[float], pct: float) -> float | None:
    """The nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]
