"""A service's deployment on ECS (pure): `deploymentConfiguration` with the strategy, its
canary or linear settings and the rollback alarms, and `loadBalancers` with what canary and
linear shift traffic through. render.py puts them in create_service / update_service; the
facts and their sources are in docs/policies.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from microforum.deploy.names import output_ref, tg_ref
from microforum.spec.model import Forward, Rule, Service, Stack

JSON = dict[str, Any]
STRATEGIES = {"rolling": "ROLLING", "canary": "CANARY", "linear": "LINEAR"}
# The alarms every service has (deploy/policies.py renders them), by the suffix of their name.
ALARM_KINDS = ("target-5xx", "unhealthy-hosts", "p99-latency", "error-rate")
ALTERNATE = "alternate"  # the alternate target group's key: `<tg:users-alternate>`
ROLE_OUTPUT = "EcsInfrastructureRoleArn"  # the cluster stack's role ECS shifts traffic with


def alarm_name(name: str, service: Service, kind: str) -> str:
    """`name` is the deployment's (deploy --stack-name), as every name below."""
    return f"{name}-{service.name}-{kind}"


def shifts_traffic(service: Service) -> bool:
    """Canary and linear move traffic between two target groups; rolling replaces tasks."""
    return service.deployment.strategy != "rolling"


def alternate_key(service: str) -> str:
    return f"{service}-{ALTERNATE}"


def alternate_tg_ref(service: str) -> str:
    return tg_ref(alternate_key(service))


def rule_ref(priority: int) -> str:
    """The ARN of the listener rule at `priority` (a production listener rule)."""
    return f"<rule:{priority}>"


def production_rule(stack: Stack, service: Service) -> Rule | None:
    """The listener rule ECS shifts a canary or linear service's traffic through: the first
    (by priority) that forwards to that service alone."""
    for rule in stack.listener.rules:
        action = rule.action
        if isinstance(action, Forward) and [g.name for g in action.target_groups] == [service.name]:
            return rule
    return None


def production_priorities(stack: Stack) -> frozenset[int]:
    """The priorities of the rules whose weights ECS owns (it shifts them during deployments)."""
    rules = (production_rule(stack, s) for s in stack.services if shifts_traffic(s))
    return frozenset(r.priority for r in rules if r is not None)


def convert_deployment_configuration(name: str, service: Service) -> JSON:
    """The service's `deploymentConfiguration` (create_service / update_service)."""
    dep = service.deployment
    out: JSON = {
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "maximumPercent": dep.maximum_percent,
        "minimumHealthyPercent": dep.minimum_healthy_percent,
        "strategy": STRATEGIES[dep.strategy],
        "alarms": {
            "alarmNames": [alarm_name(name, service, kind) for kind in ALARM_KINDS],
            "enable": True,
            "rollback": True,
        },
    }
    if dep.strategy == "canary":
        out["canaryConfiguration"] = {"canaryPercent": dep.canary_percent,
                                      "canaryBakeTimeInMinutes": dep.bake_minutes}  # fmt: skip
    elif dep.strategy == "linear":
        out["linearConfiguration"] = {"stepPercent": dep.step_percent,
                                      "stepBakeTimeInMinutes": dep.bake_minutes}  # fmt: skip
    return out


def convert_load_balancers(stack: Stack, service: Service, outputs: Mapping[str, str]) -> list[JSON]:
    """The service's `loadBalancers`; canary and linear shift traffic between two target
    groups through the production listener rule, which ECS changes with its role."""
    entry: JSON = {"targetGroupArn": tg_ref(service.name), "containerName": service.name,
                   "containerPort": service.container_port}  # fmt: skip
    rule = production_rule(stack, service)
    if shifts_traffic(service):
        entry["advancedConfiguration"] = {
            "alternateTargetGroupArn": alternate_tg_ref(service.name),
            "productionListenerRule": rule_ref(rule.priority) if rule else "<rule:none>",
            "roleArn": outputs.get(ROLE_OUTPUT, output_ref(ROLE_OUTPUT)),
        }
    return [entry]
