"""A service's alarms evaluated from its datapoints, as CloudWatch evaluates metric alarms.

Each alarm compares one figure of each datapoint with its threshold; it is in ALARM when at least
`datapoints` of the latest `evaluation_periods` datapoints breach (M out of N), OK when fewer do,
INSUFFICIENT_DATA before there are N datapoints with the figure. A datapoint without the figure
(no requests: no error rate, no latency) is missing and neither breaches nor counts (CloudWatch's
TreatMissingData "missing"). The alarms and their defaults are in docs/policies.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from microforum.local.datapoints import Datapoint
from microforum.spec.model import Alarms

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str
    reason: str


@dataclass(frozen=True)
class _Check:
    name: str
    metric: str  # as CloudWatch names it, for the reason
    figure: Callable[[Datapoint], float | None]
    breaches: Callable[[float, Alarms], bool]
    threshold: Callable[[Alarms], str]


CHECKS = (
    _Check("target-5xx", "HTTPCode_Target_5XX_Count", lambda p: float(p.target_5xx),
           lambda v, a: v > a.target_5xx, lambda a: f"> {a.target_5xx}"),
    _Check("unhealthy-hosts", "UnHealthyHostCount", lambda p: float(p.unhealthy),
           lambda v, a: v >= a.unhealthy_hosts, lambda a: f">= {a.unhealthy_hosts}"),
    _Check("p99-latency", "TargetResponseTime p99", lambda p: p.p99,
           lambda v, a: v > a.p99_seconds, lambda a: f"> {a.p99_seconds:g} s"),
    _Check("error-rate", "4xx+5xx % of requests", lambda p: p.error_percent,
           lambda v, a: v > a.error_percent, lambda a: f"> {a.error_percent:g} %"),
)  # fmt: skip


def evaluate(alarms: Alarms, points: Sequence[Datapoint]) -> list[AlarmState]:
    """Every alarm's state after `points` (oldest first)."""
    return [_evaluate(check, alarms, points) for check in CHECKS]


def _evaluate(check: _Check, alarms: Alarms, points: Sequence[Datapoint]) -> AlarmState:
    values = [v for v in (check.figure(p) for p in points) if v is not None]
    window = values[-alarms.evaluation_periods :]
    what = f"{check.metric} {check.threshold(alarms)}"
    if len(window) < alarms.evaluation_periods:
        return AlarmState(
            check.name, INSUFFICIENT, f"{what}: {len(window)} of {alarms.evaluation_periods} datapoints"
        )
    breaching = [v for v in window if check.breaches(v, alarms)]
    shown = ", ".join(f"{v:g}" for v in window)
    state = ALARM if len(breaching) >= alarms.datapoints else OK
    return AlarmState(
        check.name,
        state,
        f"{what}: {len(breaching)} of the last {len(window)} datapoints breach"
        f" (need {alarms.datapoints}) [{shown}]",
    )


def firing(states: Sequence[AlarmState]) -> list[AlarmState]:
    """The alarms in ALARM."""
    return [s for s in states if s.state == ALARM]
