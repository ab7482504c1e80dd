"""Carry out `microforum deploy`: stack, repositories, images, then the planned steps.

The executor runs the planner's steps in order (or, for `--dry-run`, only prints them: the same
plan, displayed), replacing placeholders with the ARNs that earlier steps produced. With nothing
to change it makes no mutating call and says `no changes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microforum.deploy import images as deploy_images
from microforum.deploy.aws import Aws
from microforum.deploy.plan import RemoteState, Step, known_refs, plan, plan_repositories, resolve
from microforum.deploy.remote import read_remote, read_repositories, read_stack
from microforum.deploy.render import (
    DATABASE_OUTPUT,
    REQUIRED_OUTPUTS,
    Target,
    render,
    render_template,
    task_role_output,
    template_parameters,
)
from microforum.deploy.stack import apply_stack, check_usable, load_template, stack_step
from microforum.errors import MicroforumError
from microforum.spec import defaults as d
from microforum.spec.model import Stack

JSON = dict[str, Any]
Say = Callable[[str], None]

# Which field of each creating call's response holds the ARN a placeholder stands for.
_PRODUCED: dict[str, Callable[[JSON], str]] = {
    "elbv2.create_target_group": lambda r: r["TargetGroups"][0]["TargetGroupArn"],
    "elbv2.create_listener": lambda r: r["Listeners"][0]["ListenerArn"],
    "ecs.register_task_definition": lambda r: r["taskDefinition"]["taskDefinitionArn"],
}
_SIGN = {"create": "+", "change": "~", "delete": "-"}


@dataclass(frozen=True)
class DeployOptions:
    stack_name: str
    template: Path
    image_tag: str | None = None
    dry_run: bool = False
    database: bool = True
    repository_prefix: str = ""
    engine: str | None = None
    timeout: float = d.DEPLOY_STABLE_TIMEOUT
    poll: float = 5.0


@dataclass
class Clock:
    """Time, injectable: tests and dry runs never wait."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], float] = field(default=time.time)


def show(steps: list[Step], say: Say) -> None:
    """Print a plan the way --dry-run shows it."""
    for step in steps:
        say(f"  {_SIGN[step.verb]} {step.message}")


def run_steps(aws: Aws, steps: list[Step], refs: dict[str, str], say: Say) -> None:
    """Execute steps in order; each creating step adds the ARN it produced to `refs`."""
    for index, step in enumerate(steps, 1):
        say(f"[{index}/{len(steps)}] {step.message}")
        params = resolve(step.params, refs)
        missing = _placeholders(params)
        if missing:
            raise MicroforumError(f"{step.message}: unknown {', '.join(sorted(missing))}")
        client, operation = step.operation.split(".")
        response = aws.call(client, operation, **params)
        if step.produces:
            refs[step.produces] = _PRODUCED[step.operation](response)


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if value.startswith("<") and value.endswith(">") else set()
    if isinstance(value, Mapping):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    return set()


def deploy(
    stack: Stack, options: DeployOptions, aws: Aws, say: Say, clock: Clock | None = None
) -> str | None:
    """Plan and apply; return the URL (None for a dry run). Raises MicroforumError."""
    clock = clock or Clock()
    name = options.stack_name
    template = render_template(stack, load_template(options.template))
    parameters = template_parameters(stack, database=options.database)
    state = read_stack(aws, name)
    check_usable(name, state)
    first = stack_step(name, state, template, parameters)
    outputs = dict(state.outputs) if state else {}
    changed = first is not None
    if options.dry_run:
        _dry_run(stack, options, aws, say, first, outputs)
        return None
    if first is not None:
        say(f"{first.message}")
        outputs = dict(apply_stack(aws, first, say, clock.sleep, options.poll).outputs)
    _check_outputs(name, stack, outputs, options.database)
    target = Target(
        name, aws.region, outputs, database=options.database, repository_prefix=options.repository_prefix
    )
    repo_steps = plan_repositories(
        render(stack, target), RemoteState(repositories=read_repositories(aws, _repo_names(stack, target)))
    )
    run_steps(aws, repo_steps, {}, say)
    changed |= bool(repo_steps)
    images = _images(stack, options, aws, target, say, clock)
    target = Target(name, aws.region, outputs, images, options.database, options.repository_prefix)
    desired = render(stack, target)
    remote = read_remote(aws, desired, outputs)
    steps = plan(desired, remote)
    run_steps(aws, steps, known_refs(desired, remote), say)
    changed |= bool(steps)
    if not changed:
        say("no changes")
    if any(s.resource == "service" for s in steps) or first is not None:
        wait_stable(
            aws, outputs["ClusterName"], list(desired.services), say, clock, options.timeout, options.poll
        )
    url = f"http://{outputs['LoadBalancerDnsName']}"
    if stack.listener.port != 80:
        url += f":{stack.listener.port}"
    return url


def _repo_names(stack: Stack, target: Target) -> list[str]:
    return [r["repositoryName"] for r in render(stack, target).repositories.values()]


def _check_outputs(name: str, stack: Stack, outputs: Mapping[str, str], database: bool) -> None:
    wanted = [*REQUIRED_OUTPUTS, *(task_role_output(s.name) for s in stack.services)]
    wanted += [DATABASE_OUTPUT] if database else []
    missing = [k for k in wanted if k not in outputs]
    if missing:
        raise MicroforumError(
            f"deploy stack {name}: the stack has no output {', '.join(missing)}",
            hint="was it created from another template? pass --template FILE or destroy it and deploy again",
        )


def _images(
    stack: Stack, options: DeployOptions, aws: Aws, target: Target, say: Say, clock: Clock
) -> dict[str, str]:
    services = [s.name for s in stack.services]
    if options.image_tag:
        return deploy_images.existing(aws, services, options.image_tag, options.repository_prefix, say)
    tag = time.strftime("%Y%m%d-%H%M%S", time.gmtime(clock.now()))
    return deploy_images.build_and_push(aws, services, tag, options.repository_prefix, options.engine, say)


def _dry_run(
    stack: Stack, options: DeployOptions, aws: Aws, say: Say, first: Step | None, outputs: dict[str, str]
) -> None:
    name = options.stack_name
    images: dict[str, str] = {}
    target = Target(
        name, aws.region, outputs, database=options.database, repository_prefix=options.repository_prefix
    )
    desired = render(stack, target)
    remote = read_remote(aws, desired, outputs if first is None or first.verb == "change" else {})
    steps: list[Step] = [first] if first else []
    steps += plan_repositories(desired, remote)
    if options.image_tag and all(
        r["repositoryName"] in remote.repositories for r in desired.repositories.values()
    ):
        images = deploy_images.existing(
            aws,
            [s.name for s in stack.services],
            options.image_tag,
            options.repository_prefix,
            lambda _: None,
        )
    elif not options.image_tag:
        say(f"would build and push {len(stack.services)} images")
    if outputs:
        desired = render(
            stack, Target(name, aws.region, outputs, images, options.database, options.repository_prefix)
        )
        steps += plan(desired, remote)
    else:
        steps += plan(desired, RemoteState())
    if not steps:
        say("no changes")
        return None
    say(f"plan for stack {name} ({len(steps)} steps; dry run, nothing changed):")
    show(steps, say)
    return None


def wait_stable(
    aws: Aws, cluster: str, services: list[str], say: Say, clock: Clock, timeout: float, poll: float
) -> None:
    """Poll until every service runs its desired count on one deployment (the ECS
    `services_stable` waiter's condition), or fail on a rolled-back deployment or the timeout."""
    deadline = clock.monotonic() + timeout
    while True:
        pending = []
        for start in range(0, len(services), 10):
            batch = aws.call(
                "ecs", "describe_services", cluster=cluster, services=services[start : start + 10]
            )["services"]
            for service in batch:
                failed = [
                    dep for dep in service.get("deployments", []) if dep.get("rolloutState") == "FAILED"
                ]
                if failed:
                    raise MicroforumError(
                        f"deploy service {service['serviceName']}: the deployment failed "
                        f"({failed[0].get('rolloutStateReason', 'circuit breaker')})",
                        hint="the circuit breaker rolled it back; see the service's events and the task logs",
                    )
                if (
                    len(service.get("deployments", [])) != 1
                    or service["runningCount"] != service["desiredCount"]
                ):
                    pending.append(
                        f"{service['serviceName']} {service['runningCount']}/{service['desiredCount']}"
                    )
        if not pending:
            say(f"services stable: {', '.join(services)}")
            return
        if clock.monotonic() >= deadline:
            raise MicroforumError(
                f"deploy: services not stable after {timeout:.0f}s: {', '.join(pending)}",
                hint="see the services' events in the ECS console; deploy again to keep waiting",
            )
        say(f"waiting for services: {', '.join(pending)}")
        clock.sleep(poll)
