"""The production-policy parts of stack.yaml: autoscaling, deployment strategy, alarms, cluster,
the listener's certificate. Each reader checks AWS's limits (numbers in `defaults`) and fills the
gaps; `load.py` calls them.
"""

from __future__ import annotations

import re
from typing import cast

from microforum.spec import defaults as d
from microforum.spec.model import Alarms, Autoscaling, Cluster, Strategy
from microforum.spec.reader import Node, optional

_CERTIFICATE_ARN = re.compile(d.CERTIFICATE_ARN_PATTERN)
_INSTANCE_TYPE = re.compile(d.INSTANCE_TYPE_PATTERN)


def read_certificate_arn(node: Node) -> str:
    return node.string(_CERTIFICATE_ARN, "an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)")


def read_autoscaling(node: Node) -> Autoscaling | None:
    if node.value is None:
        return None
    f = node.mapping(("min", "max", "requests_per_target", "cpu_percent"))
    for key in ("min", "max"):
        if key not in f or f[key].value is None:
            raise node.child(key, None).fail("required when autoscaling is given")
    low = f["min"].integer(*d.AUTOSCALING_CAPACITY_RANGE)
    high = f["max"].integer(*d.AUTOSCALING_CAPACITY_RANGE)
    if low > high:
        raise f["min"].fail(f"must not exceed max ({high}), got {low}")
    return Autoscaling(
        min=low,
        max=high,
        requests_per_target=optional(
            f, "requests_per_target", lambda n: n.number(*d.REQUESTS_PER_TARGET_RANGE), None
        ),
        cpu_percent=optional(f, "cpu_percent", lambda n: n.number(*d.CPU_PERCENT_RANGE), None),
    )


def read_strategy(f: dict[str, Node]) -> tuple[Strategy, float, float, int]:
    """strategy, canary_percent, step_percent, bake_minutes from a `deployment` mapping."""
    strategy = cast(
        Strategy, optional(f, "strategy", lambda n: n.choice(d.DEPLOYMENT_STRATEGIES), d.DEPLOYMENT_STRATEGY)
    )
    canary = optional(f, "canary_percent", lambda n: _tenths(n, d.CANARY_PERCENT_RANGE), d.CANARY_PERCENT)
    step = optional(f, "step_percent", lambda n: _tenths(n, d.STEP_PERCENT_RANGE), d.STEP_PERCENT)
    bake_default = d.STEP_BAKE_MINUTES if strategy == "linear" else d.CANARY_BAKE_MINUTES
    bake = optional(f, "bake_minutes", lambda n: n.integer(*d.BAKE_MINUTES_RANGE), bake_default)
    return strategy, canary, step, bake


def _tenths(node: Node, limits: tuple[float, float]) -> float:
    value = node.number(*limits)
    if abs(value * 10 - round(value * 10)) > 1e-9:
        raise node.fail(f"must be a multiple of 0.1, got {value:g}")
    return round(value, 1)


def read_alarms(node: Node) -> Alarms:
    f = node.mapping(
        ("target_5xx", "unhealthy_hosts", "p99_seconds", "error_percent", "datapoints", "evaluation_periods")
    )
    periods = optional(
        f,
        "evaluation_periods",
        lambda n: n.integer(*d.ALARM_EVALUATION_PERIODS_RANGE),
        d.ALARM_EVALUATION_PERIODS,
    )
    datapoints = optional(f, "datapoints", lambda n: n.integer(1, periods), min(d.ALARM_DATAPOINTS, periods))
    return Alarms(
        target_5xx=optional(f, "target_5xx", lambda n: n.integer(0, 10_000_000), d.ALARM_TARGET_5XX),
        unhealthy_hosts=optional(f, "unhealthy_hosts", lambda n: n.integer(1, 5000), d.ALARM_UNHEALTHY_HOSTS),
        p99_seconds=optional(f, "p99_seconds", lambda n: n.number(0.001, 3600), d.ALARM_P99_SECONDS),
        error_percent=optional(f, "error_percent", lambda n: n.number(0.0, 100.0), d.ALARM_ERROR_PERCENT),
        period=d.ALARM_PERIOD,
        datapoints=datapoints,
        evaluation_periods=periods,
    )


def read_cluster(node: Node) -> Cluster:
    f = node.mapping(("instance_type", "min_instances", "max_instances"))
    low = optional(f, "min_instances", lambda n: n.integer(*d.CLUSTER_INSTANCES_RANGE), d.ECS_MIN_INSTANCES)
    high = optional(
        f, "max_instances", lambda n: n.integer(*d.CLUSTER_MAX_INSTANCES_RANGE), d.ECS_MAX_INSTANCES
    )
    if low > high:
        raise (f.get("min_instances") or f.get("max_instances") or node).fail(
            f"min_instances ({low}) must not exceed max_instances ({high})"
        )
    return Cluster(
        instance_type=optional(
            f,
            "instance_type",
            lambda n: n.string(_INSTANCE_TYPE, "an EC2 instance type like t3.small"),
            d.ECS_INSTANCE_TYPE,
        ),
        min_instances=low,
        max_instances=high,
    )
