"""Before -> after, field by field, for the plan's messages (pure).

Only the fields deploy sets are compared (as in `steps.subset`); each difference becomes one line
`field before -> after`, named as stack.yaml names it where there is such a name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# AWS request fields -> the stack.yaml keys they come from (the rest keep their AWS names).
FIELD_NAMES = {
    "HealthCheckPath": "health_check.path",
    "HealthCheckIntervalSeconds": "health_check.interval",
    "HealthCheckTimeoutSeconds": "health_check.timeout",
    "HealthyThresholdCount": "health_check.healthy_threshold",
    "UnhealthyThresholdCount": "health_check.unhealthy_threshold",
    "Matcher.HttpCode": "health_check.success_codes",
    "desiredCount": "desired_count",
    "healthCheckGracePeriodSeconds": "deployment.health_check_grace_period",
    "deploymentConfiguration.maximumPercent": "deployment.maximum_percent",
    "deploymentConfiguration.minimumHealthyPercent": "deployment.minimum_healthy_percent",
    "deploymentConfiguration.strategy": "deployment.strategy",
    "deploymentConfiguration.canaryConfiguration.canaryPercent": "deployment.canary_percent",
    "deploymentConfiguration.canaryConfiguration.canaryBakeTimeInMinutes": "deployment.bake_minutes",
    "deploymentConfiguration.linearConfiguration.stepPercent": "deployment.step_percent",
    "deploymentConfiguration.linearConfiguration.stepBakeTimeInMinutes": "deployment.bake_minutes",
    "deregistration_delay.timeout_seconds": "deregistration_delay",
    "load_balancing.algorithm.type": "algorithm",
}
_MAX_VALUE = 60  # characters of a value shown; longer ones are cut with an ellipsis


def changes(desired: Any, remote: Any, path: str = "") -> list[str]:
    """`name before -> after` for every field `desired` sets that differs in `remote`."""
    if isinstance(desired, Mapping) and isinstance(remote, Mapping):
        lines: list[str] = []
        for key, value in desired.items():
            lines += changes(value, remote.get(key), f"{path}.{key}" if path else str(key))
        return lines
    if isinstance(desired, list | tuple) and isinstance(remote, list | tuple) and len(desired) == len(remote):
        lines = []
        for index, (want, have) in enumerate(zip(desired, remote, strict=True)):
            lines += changes(want, have, f"{path}[{index}]" if len(desired) > 1 else path)
        return lines
    if desired == remote:
        return []
    return [f"{FIELD_NAMES.get(path, path)} {_show(remote)} → {_show(desired)}"]


def named(
    items: Sequence[Mapping[str, Any]] | None, key: str = "name", value: str = "value"
) -> dict[str, Any]:
    """A list of {name, value} pairs (environment, secrets, attributes) as one mapping."""
    return {item[key]: item.get(value) for item in items or []}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1] + "…"
    return text
