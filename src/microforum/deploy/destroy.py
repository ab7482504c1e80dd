"""`microforum destroy`: remove everything deploy created, in reverse order; idempotent.

Services are scaled to 0 and deleted, then the listener's rules and the listener, the target
groups, every revision of the task definitions, the repositories (their images only with
--delete-images), and last the cluster stack. Anything already gone is skipped, so running it
twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from microforum.deploy.aws import Aws, error_code
from microforum.deploy.remote import read_services, read_stack
from microforum.deploy.render import repository_name, target_group_name, task_family
from microforum.errors import MicroforumError
from microforum.spec.model import Stack

Say = Callable[[str], None]
_GONE = {
    "ServiceNotFoundException", "ClusterNotFoundException", "RuleNotFound", "ListenerNotFound",
    "TargetGroupNotFound", "LoadBalancerNotFound", "RepositoryNotFoundException", "ClientException",
}  # fmt: skip


@dataclass(frozen=True)
class DestroyOptions:
    stack_name: str
    delete_images: bool = False
    repository_prefix: str = ""
    poll: float = 5.0
    timeout: float = 1800.0


def destroy(
    stack: Stack, options: DestroyOptions, aws: Aws, say: Say, sleep: Callable[[float], None]
) -> None:
    """Remove the deployment of `stack` named `options.stack_name`."""
    name = options.stack_name
    state = read_stack(aws, name)
    outputs = state.outputs if state else {}
    if "ClusterName" in outputs:
        _services(aws, outputs["ClusterName"], say)
    if "LoadBalancerArn" in outputs:
        _listeners(aws, outputs["LoadBalancerArn"], say)
    _target_groups(aws, [target_group_name(name, s.name) for s in stack.services], say)
    _task_definitions(aws, [task_family(name, s.name) for s in stack.services], say)
    _repositories(
        aws,
        [repository_name(options.repository_prefix, s.name) for s in stack.services],
        options.delete_images,
        say,
    )
    if state is not None:
        _stack(aws, name, say, sleep, options)
    say(f"destroyed {name}")


def _quietly(aws: Aws, client: str, operation: str, /, **params: object) -> bool:
    """Call; False when the resource is already gone."""
    try:
        aws.call(client, operation, **params)
    except MicroforumError as exc:
        if error_code(exc) in _GONE:
            return False
        raise
    return True


def _services(aws: Aws, cluster: str, say: Say) -> None:
    for name in read_services(aws, cluster):
        say(f"- scale service {name} to 0 and delete it")
        _quietly(aws, "ecs", "update_service", cluster=cluster, service=name, desiredCount=0)
        _quietly(aws, "ecs", "delete_service", cluster=cluster, service=name, force=True)


def _listeners(aws: Aws, load_balancer_arn: str, say: Say) -> None:
    for listener in aws.paginate(
        "elbv2", "describe_listeners", "Listeners", LoadBalancerArn=load_balancer_arn
    ):
        for rule in aws.call("elbv2", "describe_rules", ListenerArn=listener["ListenerArn"])["Rules"]:
            if not rule.get("IsDefault"):
                say(f"- delete listener rule priority {rule['Priority']}")
                _quietly(aws, "elbv2", "delete_rule", RuleArn=rule["RuleArn"])
        say(f"- delete listener HTTP:{listener['Port']}")
        _quietly(aws, "elbv2", "delete_listener", ListenerArn=listener["ListenerArn"])


def _target_groups(aws: Aws, names: list[str], say: Say) -> None:
    for name in names:
        try:
            groups = aws.call("elbv2", "describe_target_groups", Names=[name])["TargetGroups"]
        except MicroforumError as exc:
            if error_code(exc) in _GONE or "TargetGroupNotFound" in error_code(exc):
                continue
            raise
        for group in groups:
            say(f"- delete target group {name}")
            _quietly(aws, "elbv2", "delete_target_group", TargetGroupArn=group["TargetGroupArn"])


def _task_definitions(aws: Aws, families: list[str], say: Say) -> None:
    for family in families:
        arns = list(
            aws.paginate(
                "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status="ACTIVE"
            )
        )
        # familyPrefix matches prefixes: keep only this exact family (`family:revision`).
        arns = [a for a in arns if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
        if arns:
            say(f"- deregister task definition {family} ({len(arns)} revisions)")
        for arn in arns:
            _quietly(aws, "ecs", "deregister_task_definition", taskDefinition=arn)


def _repositories(aws: Aws, names: list[str], delete_images: bool, say: Say) -> None:
    for name in names:
        try:
            aws.call("ecr", "delete_repository", repositoryName=name, force=delete_images)
            say(f"- delete repository {name}")
        except MicroforumError as exc:
            code = error_code(exc)
            if code == "RepositoryNotFoundException":
                continue
            if code == "RepositoryNotEmptyException":
                say(f"  kept repository {name}: it holds images (--delete-images removes them)")
                continue
            raise


def _stack(aws: Aws, name: str, say: Say, sleep: Callable[[float], None], options: DestroyOptions) -> None:
    say(f"- delete stack {name}")
    aws.call("cloudformation", "delete_stack", StackName=name)
    waited = 0.0
    while True:
        state = read_stack(aws, name)
        if state is None:
            return
        if state.status == "DELETE_FAILED":
            raise MicroforumError(
                f"destroy stack {name}: DELETE_FAILED",
                hint="see the stack's events; remove what blocks it and run destroy again",
            )
        if waited >= options.timeout:
            raise MicroforumError(
                f"destroy stack {name}: still {state.status} after {options.timeout:.0f}s",
                hint="run destroy again to keep waiting",
            )
        sleep(options.poll)
        waited += options.poll
