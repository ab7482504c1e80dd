"""`microforum deploy`: make the plan, show it, carry it out, wait until stable.

One code path: `make_plan` reads what exists and runs every pre-flight check, then returns the
whole plan (the cluster stack's change set, repositories, images to build, task definitions,
target groups, listener, rules, services). The plan is printed; `--dry-run` stops there, a real
run executes exactly those steps, replacing placeholders (`<tg:users>`, `<output:VpcId>`) with
what earlier steps produced. With nothing to change it makes no mutating call, and says
`no changes` only once every service is stable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from microforum.deploy import preflight
from microforum.deploy.aws import Aws
from microforum.deploy.images import BUILD_OPERATION, build_and_push, content_tag, plan_images
from microforum.deploy.names import SETUP_OPERATION, output_ref, task_role_output, tg_ref
from microforum.deploy.plan import RemoteState, Step, known_refs, plan, plan_repositories, resolve
from microforum.deploy.policy_apply import deploy_policies
from microforum.deploy.remote import StackState, ecs_role_exists, read_remote, read_repositories, read_stack
from microforum.deploy.render import (
    DATABASE_OUTPUTS,
    REQUIRED_OUTPUTS,
    Target,
    api_url,
    render,
    render_template,
    template_parameters,
)
from microforum.deploy.setup_task import run_setup
from microforum.deploy.stack import (
    apply_stack,
    check_usable,
    discard,
    load_template,
    make_change_set,
    stack_step,
)
from microforum.deploy.steps import PLACEHOLDER
from microforum.deploy.wait import wait_stable
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
# ECS needs its service-linked role before the first cluster of an account; a brand-new
# account may not have it yet (CreateServiceLinkedRole; ECS developer guide).
ECS_ROLE_STEP = Step(
    "create", "service-linked role", "AWSServiceRoleForECS", "iam.create_service_linked_role",
    {"AWSServiceName": "ecs.amazonaws.com"}, detail="ECS needs it to manage the cluster",
)  # fmt: skip


@dataclass(frozen=True)
class DeployOptions:
    stack_name: str
    template: Path
    image_tag: str | None = None
    dry_run: bool = False
    database: bool = True
    delete_database: bool = False
    repository_prefix: str | None = None
    engine: str | None = None
    timeout: float = d.DEPLOY_STABLE_TIMEOUT
    poll: float = 5.0


@dataclass
class Clock:
    """Time, injectable: tests and dry runs never wait."""

    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], float] = field(default=time.time)


@dataclass(frozen=True)
class Plan:
    """Everything one deploy does, in order, and what it was planned against."""

    stack_name: str
    steps: tuple[Step, ...]
    refs: Mapping[str, str]  # placeholders already known (existing ARNs, stack outputs)
    outputs: Mapping[str, str]  # the cluster stack's outputs when planned ({} before it exists)
    services: tuple[str, ...]
    url: str
    snapshot: tuple[JSON, ...] = ()  # the services as read while planning

    def show(self, say: Say) -> None:
        """Print the plan: one line per step, then its fields before → after."""
        if not self.steps:
            return
        say(f"plan for stack {self.stack_name} ({len(self.steps)} steps):")
        for step in self.steps:
            say(f"  {_SIGN[step.verb]} {step.message}")
            for line in step.changes:
                say(f"      {line}")


def make_plan(stack: Stack, options: DeployOptions, aws: Aws, clock: Clock) -> Plan:
    """Read, check, decide: the plan a run executes and a dry run prints. Changes nothing
    (an update of the cluster stack is made a change set, executed only by `execute`)."""
    name = options.stack_name
    state = _checked_stack(stack, options, aws)
    outputs = dict(state.outputs) if state else {}
    target = Target(name, aws.region, outputs, {}, options.database, options.repository_prefix)
    unimaged = render(stack, target)
    wanted = {s: r["repositoryName"] for s, r in unimaged.repositories.items()}
    repositories = read_repositories(aws, list(wanted.values()))
    remote = read_remote(aws, unimaged, outputs, repositories)
    preflight.check_own_databases(
        remote.task_definitions, database=options.database, delete_database=options.delete_database
    )
    tag = options.image_tag or content_tag()
    images, build = plan_images(
        aws, repositories, wanted, tag, given=options.image_tag is not None, running=_running_images(remote)
    )
    desired = render(stack, replace(target, images=images))
    first = _cluster_step(stack, options, aws, state, clock)
    role = [] if ecs_role_exists(aws) else [ECS_ROLE_STEP]
    steps = [*role, *([first] if first else []), *plan_repositories(desired, remote), *build]
    steps += plan(desired, remote)
    refs = {**known_refs(desired, remote), **{output_ref(k): v for k, v in outputs.items()}}
    services = tuple(remote.services[s] for s in desired.services if s in remote.services)
    return Plan(name, tuple(steps), refs, outputs, tuple(desired.services), api_url(stack, target), services)


def _checked_stack(stack: Stack, options: DeployOptions, aws: Aws) -> StackState | None:
    """The cluster stack as it is, after every check that needs no more than that."""
    name = options.stack_name
    preflight.check_stack_name(name)
    preflight.check_services(stack, database=options.database)
    state = read_stack(aws, name)
    check_usable(name, state)
    if state is not None:
        preflight.check_database_kept(
            name, state.parameters, database=options.database, delete_database=options.delete_database
        )
    return state


def _cluster_step(
    stack: Stack, options: DeployOptions, aws: Aws, state: StackState | None, clock: Clock
) -> Step | None:
    """Create the stack, or execute a change set that loses no data unless allowed."""
    name = options.stack_name
    template = render_template(stack, load_template(options.template))
    first = stack_step(name, state, template, template_parameters(stack, database=options.database))
    if first is None or first.verb == "create":
        return first
    executed, resources = make_change_set(aws, first, clock.sleep)
    try:
        preflight.check_stateful_changes(name, resources, delete_database=options.delete_database)
    except MicroforumError:
        discard(aws, executed)
        raise
    return executed


def _running_images(remote: RemoteState) -> set[str]:
    """The images the current task definitions run: they are in ECR (tags are immutable)."""
    return {c["image"] for t in remote.task_definitions.values() for c in t.get("containerDefinitions", [])}


def deploy(
    stack: Stack, options: DeployOptions, aws: Aws, say: Say, clock: Clock | None = None
) -> str | None:
    """Plan, show, apply, wait; return the URL (None for a dry run). Raises MicroforumError."""
    clock = clock or Clock()
    the_plan = make_plan(stack, options, aws, clock)
    the_plan.show(say)
    if options.dry_run:
        discard(aws, next((s for s in the_plan.steps if s.resource == "stack"), None))
        say("dry run: nothing changed" if the_plan.steps else "no changes to make (dry run)")
        return None
    refs = execute(aws, the_plan, stack, options, say, clock)
    deploy_policies(
        stack, the_plan.stack_name, aws, refs, say
    )  # autoscaling, alarms, dashboard (docs/policies.md)
    outputs = {key: refs[output_ref(key)] for key in ("ClusterName", "LoadBalancerDnsName")}
    groups = {s: refs[tg_ref(s)] for s in the_plan.services if tg_ref(s) in refs}
    # With nothing changed, the services read while planning are the first look (one call less).
    seen = list(the_plan.snapshot) if not the_plan.steps else None
    already = wait_stable(
        aws,
        outputs["ClusterName"],
        list(the_plan.services),
        say,
        clock,
        options.timeout,
        options.poll,
        groups,
        seen,
    )
    if not the_plan.steps and already:
        say("no changes")
    return the_plan.url.replace(output_ref("LoadBalancerDnsName"), outputs["LoadBalancerDnsName"])


def execute(
    aws: Aws, the_plan: Plan, stack: Stack, options: DeployOptions, say: Say, clock: Clock
) -> dict[str, str]:
    """Run the plan's steps in order; return every placeholder's value (ARNs, outputs)."""
    run = _Executor(aws, the_plan, stack, options, say, clock, dict(the_plan.refs))
    total = len(the_plan.steps)
    for index, step in enumerate(the_plan.steps, 1):
        say(f"[{index}/{total}] {step.message}")
        try:
            run.step(step)
        except BaseException:
            # A change set the run never reached is deleted rather than left behind.
            discard(aws, next((s for s in the_plan.steps[index:] if s.resource == "stack"), None))
            raise
    return run.refs


@dataclass
class _Executor:
    aws: Aws
    plan: Plan
    stack: Stack
    options: DeployOptions
    say: Say
    clock: Clock
    refs: dict[str, str]  # placeholder -> value, growing as steps produce ARNs and outputs

    def step(self, step: Step) -> None:
        """One step: the cluster stack, the images, or one API call."""
        if step.resource == "stack":
            result = apply_stack(self.aws, step, self.say, self.clock.sleep, self.options.poll)
            outputs = dict(result.outputs)
            _check_outputs(self.plan.stack_name, self.stack, outputs, self.options.database)
            _check_unchanged(self.plan, outputs)
            self.refs.update({output_ref(k): v for k, v in outputs.items()})
        elif step.operation == BUILD_OPERATION:
            build_and_push(self.aws, step, self.options.engine, self.say)
        elif step.operation == SETUP_OPERATION:
            params = _resolved(step, self.refs)
            wait = (self.clock.sleep, self.clock.monotonic, self.options.timeout, self.options.poll)
            run_setup(self.aws, params, self.refs[output_ref("LogGroupName")], self.say, wait)
        else:
            _call(self.aws, step, self.refs)


def _resolved(step: Step, refs: Mapping[str, str]) -> Any:
    params = resolve(step.params, refs)
    missing = _placeholders(params)
    if missing:
        raise MicroforumError(f"{step.message}: unknown {', '.join(sorted(missing))}")
    return params


def _call(aws: Aws, step: Step, refs: dict[str, str]) -> None:
    params = _resolved(step, refs)
    client, operation = step.operation.split(".")
    response = aws.call(client, operation, **params)
    if step.produces:
        refs[step.produces] = _PRODUCED[step.operation](response)


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    return set()


def _check_outputs(name: str, stack: Stack, outputs: Mapping[str, str], database: bool) -> None:
    wanted = [*REQUIRED_OUTPUTS, *(task_role_output(s.name) for s in stack.services)]
    wanted += list(DATABASE_OUTPUTS) if database else []
    missing = [k for k in wanted if k not in outputs]
    if missing:
        raise MicroforumError(
            f"deploy stack {name}: the stack has no output {', '.join(missing)}",
            hint="was it created from another template? pass --template FILE or destroy it and deploy again",
        )


def _check_unchanged(the_plan: Plan, outputs: Mapping[str, str]) -> None:
    """The rest of the plan was made with the stack's outputs as they were: if the update
    changed one (a replaced load balancer, cluster...), the plan no longer holds."""
    moved = sorted(k for k, v in the_plan.outputs.items() if k in outputs and outputs[k] != v)
    if moved:
        raise MicroforumError(
            f"deploy stack {the_plan.stack_name}: the update changed the outputs {', '.join(moved)}; "
            "the rest of the plan was made with the old values and was not run",
            hint="deploy again: it plans against the stack as it is now",
        )


__all__ = ["Clock", "DeployOptions", "Plan", "RemoteState", "deploy", "execute", "make_plan"]
