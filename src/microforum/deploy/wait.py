"""Wait for the ECS services to become stable, showing progress; a timeout is a failure.

Stable is the ECS `services_stable` waiter's condition (one deployment, running = desired) plus
a rollout that is not in progress. Each round prints, per service not yet stable, its running /
desired count and rollout state, the ECS service events not shown before, and its targets'
health with ALB's reason codes; a failed rollout (the circuit breaker) names the reasons its
stopped tasks give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from microforum.deploy.aws import Aws
from microforum.errors import MicroforumError

JSON = dict[str, Any]
Say = Callable[[str], None]


class Clock(Protocol):
    """Time, injected (tests never wait)."""

    def sleep(self, seconds: float, /) -> None: ...
    def monotonic(self) -> float: ...


@dataclass
class Progress:
    """What was already shown: event ids, so each event is printed once."""

    seen: set[str] = field(default_factory=set)


def is_stable(service: JSON) -> bool:
    deployments = service.get("deployments", [])
    return (
        len(deployments) == 1
        and service["runningCount"] == service["desiredCount"]
        and deployments[0].get("rolloutState", "COMPLETED") != "IN_PROGRESS"
    )


def failed_rollout(service: JSON) -> JSON | None:
    return next((d for d in service.get("deployments", []) if d.get("rolloutState") == "FAILED"), None)


def describe(aws: Aws, cluster: str, services: list[str]) -> list[JSON]:
    found: list[JSON] = []
    for start in range(0, len(services), 10):  # DescribeServices takes at most 10 services
        batch = aws.call("ecs", "describe_services", cluster=cluster, services=services[start : start + 10])
        found += batch["services"]
    return found


def wait_stable(
    aws: Aws,
    cluster: str,
    services: list[str],
    say: Say,
    clock: Clock,
    timeout: float,
    poll: float,
    groups: Mapping[str, str] | None = None,
    seen: list[JSON] | None = None,
) -> bool:
    """Poll until every service is stable; True when they already were at the first look
    (`seen`: the services as just read, used as that first look when given). Raises
    MicroforumError on a failed rollout or when `timeout` seconds pass first."""
    start = clock.monotonic()
    progress = Progress()
    first = True
    while True:
        if first and seen is not None and len(seen) == len(services):
            found = seen
        else:
            found = describe(aws, cluster, services)
        for service in found:
            failed = failed_rollout(service)
            if failed:
                raise _failed(aws, cluster, service, failed)
        pending = [s for s in found if not is_stable(s)]
        elapsed = clock.monotonic() - start
        if not pending:
            if not first:
                say(f"services stable after {elapsed:.0f}s: {', '.join(services)}")
            return first
        for service in pending:
            _report(aws, service, progress, say, (groups or {}).get(service["serviceName"]), first)
        if elapsed >= timeout:
            counts = ", ".join(f"{s['serviceName']} {s['runningCount']}/{s['desiredCount']}" for s in pending)
            raise MicroforumError(
                f"deploy: services not stable after {timeout:.0f}s: {counts}",
                hint="the deployment goes on in ECS; deploy again to keep waiting (it reports success "
                "only once every service is stable), or read the events above",
            )
        say(f"  waiting ({elapsed:.0f}s)")
        first = False
        clock.sleep(poll)


def _report(aws: Aws, service: JSON, progress: Progress, say: Say, group: str | None, first: bool) -> None:
    name = service["serviceName"]
    rollout = (service.get("deployments") or [{}])[0].get("rolloutState", "?")
    deployments = len(service.get("deployments", []))
    say(
        f"  {name}: {service['runningCount']}/{service['desiredCount']} running, "
        f"rollout {rollout}, {deployments} deployment{'s' if deployments != 1 else ''}"
    )
    events = [e for e in service.get("events", []) if e["id"] not in progress.seen]
    for event in reversed(events[:5] if first else events):  # newest first in the API
        say(f"    event: {event['message']}")
    progress.seen.update(e["id"] for e in service.get("events", []))
    # The group the service is on now (a completed canary leaves it on its alternate one).
    group = (service.get("loadBalancers") or [{}])[0].get("targetGroupArn") or group
    if group:
        health = aws.call("elbv2", "describe_target_health", TargetGroupArn=group)["TargetHealthDescriptions"]
        for target in health:
            state = target["TargetHealth"]
            reason = f" ({state['Reason']})" if state.get("Reason") else ""
            port = target["Target"].get("Port", "")
            say(f"    target {target['Target']['Id']}:{port} {state['State']}{reason}")


def _failed(aws: Aws, cluster: str, service: JSON, deployment: JSON) -> MicroforumError:
    name = service["serviceName"]
    reasons = stopped_reasons(aws, cluster, name)
    why = f"; stopped tasks: {'; '.join(reasons)}" if reasons else ""
    return MicroforumError(
        f"deploy service {name}: the deployment failed "
        f"({deployment.get('rolloutStateReason', 'circuit breaker')}){why}",
        hint="the circuit breaker rolled it back; see the task logs (awslogs) for why the tasks stopped",
    )


def stopped_reasons(aws: Aws, cluster: str, service: str) -> list[str]:
    """The distinct stoppedReason of the service's recently stopped tasks (ECS keeps them ~1 h)."""
    arns = aws.call("ecs", "list_tasks", cluster=cluster, serviceName=service, desiredStatus="STOPPED")[
        "taskArns"
    ][:100]
    if not arns:
        return []
    tasks = aws.call("ecs", "describe_tasks", cluster=cluster, tasks=arns)["tasks"]
    return list(dict.fromkeys(t.get("stoppedReason", "?") for t in tasks))
