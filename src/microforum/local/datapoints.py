"""CloudWatch-like datapoints from the load balancer's running counters, with no I/O.

The local ALB keeps cumulative counters per target group (lb/metrics.py). `PeriodSampler`
turns readings of them into one `Datapoint` per period, as CloudWatch sums a metric per period:
the difference between the readings at the period's two ends. Times are AWS seconds (the local
clock times `local.time_scale`), so a 60 s period passes in 6 local seconds at scale 10.

TargetResponseTime p99 is the load balancer's p99 over its latest responses at the period's end
(the local figures keep a window of responses, not one per period); UnHealthyHostCount and the
running count are read at the period's end, like CloudWatch's Maximum over the period's samples.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    """The counters of one target group at one moment."""

    requests: int
    target_4xx: int
    target_5xx: int
    p99: float | None  # seconds
    unhealthy: int
    running: int  # registered, non-draining targets
    cpu_percent: float | None = None  # ECSServiceAverageCPUUtilization since the last reading


@dataclass(frozen=True)
class Datapoint:
    """One period's figures."""

    end: float  # AWS seconds
    seconds: float  # the period's length, AWS seconds
    requests: int
    target_4xx: int
    target_5xx: int
    p99: float | None
    unhealthy: int
    running: int
    cpu_percent: float | None

    @property
    def error_percent(self) -> float | None:
        """(target 4xx + 5xx) / requests * 100; None without requests (missing data)."""
        if not self.requests:
            return None
        return (self.target_4xx + self.target_5xx) * 100.0 / self.requests

    @property
    def requests_per_target(self) -> float | None:
        """ALBRequestCountPerTarget: requests per running target per minute (the period's sum
        scaled to 60 s: a late reading makes a longer period, not a busier one)."""
        if not self.running or self.seconds <= 0:
            return None
        return round(self.requests * 60.0 / self.seconds / self.running, 3)


class PeriodSampler:
    """Readings in, one `Datapoint` per completed `period` out."""

    def __init__(self, period: float, now: float, first: Reading) -> None:
        self.period = period
        self._start, self._base = now, first

    def observe(self, now: float, reading: Reading) -> Datapoint | None:
        """The datapoint of the period that ended at or before `now`, if one did."""
        if now - self._start < self.period:
            return None
        base = self._base
        point = Datapoint(
            end=now,
            seconds=now - self._start,
            requests=max(reading.requests - base.requests, 0),
            target_4xx=max(reading.target_4xx - base.target_4xx, 0),
            target_5xx=max(reading.target_5xx - base.target_5xx, 0),
            p99=reading.p99 if reading.requests > base.requests else None,
            unhealthy=reading.unhealthy,
            running=reading.running,
            cpu_percent=reading.cpu_percent,
        )
        self._start, self._base = now, reading
        return point
