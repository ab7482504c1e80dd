"""Target-tracking autoscaling, decided from datapoints with no I/O (Application Auto Scaling's
rules, locally; the facts and their sources are in docs/policies.md).

Each tracked figure (requests per target per minute, average CPU percent) is one policy:

* scale out when the latest `SCALE_OUT_DATAPOINTS` datapoints are all above the target, to
  ceil(desired * figure / target) — the count that would bring the figure back to the target;
* scale in when the latest `SCALE_IN_DATAPOINTS` are all below 90 % of the target, to the same
  formula (never below by more than that), and only when every policy agrees;
* never outside [min, max]; no scale-out within the scale-out cooldown of the last scale-out,
  no scale-in within the scale-in cooldown of the last scaling activity.

Times are AWS seconds. `Scaler` keeps the datapoints and the last activities; `decide` is the
rule itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from microforum.local.datapoints import Datapoint
from microforum.spec import defaults as d
from microforum.spec.model import Autoscaling


@dataclass(frozen=True)
class Change:
    """A new desired count and why."""

    desired: int
    reason: str
    direction: str  # "out", "in" or "bound"


@dataclass(frozen=True)
class _Policy:
    metric: str
    target: float
    figure: Callable[[Datapoint], float | None]


def policies(spec: Autoscaling) -> list[_Policy]:
    out = []
    if spec.requests_per_target is not None:
        out.append(
            _Policy("ALBRequestCountPerTarget", spec.requests_per_target, lambda p: p.requests_per_target)
        )
    if spec.cpu_percent is not None:
        out.append(_Policy("ECSServiceAverageCPUUtilization", spec.cpu_percent, lambda p: p.cpu_percent))
    return out


@dataclass
class Cooldowns:
    last_out: float | None = None
    last_activity: float | None = None


def decide(
    spec: Autoscaling, desired: int, points: Sequence[Datapoint], cool: Cooldowns, now: float
) -> Change | None:
    """The change target tracking makes now, if any."""
    if desired < spec.min or desired > spec.max:
        bound = min(max(desired, spec.min), spec.max)
        return Change(bound, f"desired {desired} outside min {spec.min}..max {spec.max}", "bound")
    outs, ins = [], []
    tracked = policies(spec)
    for policy in tracked:
        values = [policy.figure(p) for p in points]
        want = _want(policy, desired, values)
        if want is not None and want[0] > desired:
            outs.append(want)
        elif want is not None and want[0] < desired:
            ins.append(want)
    if outs and (cool.last_out is None or now - cool.last_out >= d.SCALE_OUT_COOLDOWN):
        count, reason = max(outs)
        return Change(min(count, spec.max), reason, "out") if min(count, spec.max) > desired else None
    if (
        tracked
        and len(ins) == len(tracked)
        and (cool.last_activity is None or now - cool.last_activity >= d.SCALE_IN_COOLDOWN)
    ):
        count, reason = max(ins)
        count = max(count, spec.min)
        return Change(count, reason, "in") if count < desired else None
    return None


def _want(policy: _Policy, desired: int, values: Sequence[float | None]) -> tuple[int, str] | None:
    """The count this policy asks for (with its reason), or None when its alarms are quiet."""
    high = [v for v in values[-d.SCALE_OUT_DATAPOINTS :] if v is not None and v > policy.target]
    if len(high) == d.SCALE_OUT_DATAPOINTS:  # the latest datapoints, every one above the target
        figure = high[-1]
        count = math.ceil(desired * figure / policy.target)
        return count, (f"{policy.metric} {figure:g} > target {policy.target:g} for {len(high)} datapoints")
    floor = policy.target * d.SCALE_IN_RATIO
    low = [v for v in values[-d.SCALE_IN_DATAPOINTS :] if v is not None and v < floor]
    if len(low) == d.SCALE_IN_DATAPOINTS:
        figure = low[-1]
        count = max(math.ceil(desired * figure / policy.target), 1 if desired else 0)
        return count, (f"{policy.metric} {figure:g} < {floor:g} (90 % of target) for {len(low)} datapoints")
    return None


class Scaler:
    """One service's autoscaling: datapoints in, changes of the desired count out."""

    def __init__(self, spec: Autoscaling, desired: int) -> None:
        self.spec = spec
        self.desired = desired
        self.reason = "the stack's desired_count"
        self.points: list[Datapoint] = []
        self.cool = Cooldowns()

    def observe(self, point: Datapoint, now: float) -> Change | None:
        """Record a datapoint; the change it causes, if any."""
        self.points = [*self.points[-(d.SCALE_IN_DATAPOINTS - 1) :], point]
        change = decide(self.spec, self.desired, self.points, self.cool, now)
        if change is None:
            return None
        self.desired, self.reason = change.desired, f"{change.reason} -> {change.desired}"
        self.cool.last_activity = now
        if change.direction == "out":
            self.cool.last_out = now
        return change
