"""`microforum destroy`: remove everything deploy created, in reverse order; idempotent.

What to remove is found by the tag `microforum:stack=<name>` that deploy puts on everything
(plus, for deployments made before the tags, the names stack.yaml gives), so a service that left
stack.yaml is removed too. Services are scaled to 0 and deleted, and destroy waits until their
tasks have stopped (else the capacity provider is "in use" and the stack cannot be deleted);
then the listeners and their rules, the target groups, every revision of the task definitions,
the stack's own repositories (their images only with --delete-images), and last the cluster
stack. At the end it says what remains (docs/deploying.md#destroy). Running it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from microforum.deploy.aws import Aws, error_code
from microforum.deploy.names import STACK_TAG, repository_name, target_group_name, task_family
from microforum.deploy.policy_apply import destroy_policies
from microforum.deploy.remote import read_services, read_stack
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
    repository_prefix: str | None = None  # given: shared repositories, never deleted
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
        destroy_policies(stack, name, aws, outputs["ClusterName"], say)
        stop_services(aws, outputs["ClusterName"], say, sleep, options)
    if "LoadBalancerArn" in outputs:
        _listeners(aws, outputs["LoadBalancerArn"], say)
    tagged = _tagged(aws, name)
    groups = {a for a in tagged if ":targetgroup/" in a}
    _target_groups(aws, groups, [target_group_name(name, s.name) for s in stack.services], say)
    families = {a.rsplit("/", 1)[-1].rsplit(":", 1)[0] for a in tagged if ":task-definition/" in a}
    _task_definitions(aws, sorted(families | {task_family(name, s.name) for s in stack.services}), say)
    if options.repository_prefix is None:
        _repositories(aws, name, options.delete_images, say)
    else:
        shared = ", ".join(repository_name(options.repository_prefix, s.name) for s in stack.services)
        say(f"  kept the shared repositories {shared} (--repository-prefix: other stacks may use them)")
    if state is not None:
        _stack(aws, name, say, sleep, options)
        for line in what_remains(state.parameters.get("DatabaseEnabled") == "true", outputs):
            say(f"  kept: {line}")
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


def _tagged(aws: Aws, name: str) -> list[str]:
    """ARNs of the target groups and task definitions tagged as this stack's."""
    found = aws.paginate(
        "resourcegroupstaggingapi", "get_resources", "ResourceTagMappingList",
        TagFilters=[{"Key": STACK_TAG, "Values": [name]}],
        ResourceTypeFilters=["elasticloadbalancing:targetgroup", "ecs:task-definition"],
    )  # fmt: skip
    return [r["ResourceARN"] for r in found]


def stop_services(
    aws: Aws, cluster: str, say: Say, sleep: Callable[[float], None], options: DestroyOptions
) -> None:
    services = read_services(aws, cluster)
    for name in services:
        say(f"- scale service {name} to 0 and delete it")
        _quietly(aws, "ecs", "update_service", cluster=cluster, service=name, desiredCount=0)
        _quietly(aws, "ecs", "delete_service", cluster=cluster, service=name, force=True)
    waited = 0.0
    while services:
        running = list(aws.paginate("ecs", "list_tasks", "taskArns", cluster=cluster))
        if not running:
            return
        if waited >= options.timeout:
            raise MicroforumError(
                f"destroy cluster {cluster}: {len(running)} tasks still running after {options.timeout:.0f}s",
                hint="run destroy again to keep waiting",
            )
        say(f"  waiting for {len(running)} tasks to stop ({waited:.0f}s)")
        sleep(options.poll)
        waited += options.poll


def _listeners(aws: Aws, load_balancer_arn: str, say: Say) -> None:
    try:
        listeners = list(
            aws.paginate("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=load_balancer_arn)
        )
    except MicroforumError as exc:
        if "LoadBalancerNotFound" in error_code(exc):
            return
        raise
    for listener in listeners:
        for rule in aws.call("elbv2", "describe_rules", ListenerArn=listener["ListenerArn"])["Rules"]:
            if not rule.get("IsDefault"):
                say(f"- delete listener rule priority {rule['Priority']}")
                _quietly(aws, "elbv2", "delete_rule", RuleArn=rule["RuleArn"])
        say(f"- delete listener {listener['Protocol']}:{listener['Port']}")
        _quietly(aws, "elbv2", "delete_listener", ListenerArn=listener["ListenerArn"])


def _target_groups(aws: Aws, arns: set[str], names: list[str], say: Say) -> None:
    for name in names:  # deployments made before the tags
        try:
            arns.update(
                g["TargetGroupArn"]
                for g in aws.call("elbv2", "describe_target_groups", Names=[name])["TargetGroups"]
            )
        except MicroforumError as exc:
            if error_code(exc) in _GONE or "TargetGroupNotFound" in error_code(exc):
                continue
            raise
    for arn in sorted(arns):
        say(f"- delete target group {arn.rsplit('/', 2)[-2]}")
        _quietly(aws, "elbv2", "delete_target_group", TargetGroupArn=arn)


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


def _repositories(aws: Aws, name: str, delete_images: bool, say: Say) -> None:
    """The stack's own repositories: under `<name>/` and tagged as this stack's."""
    for repo in list(aws.paginate("ecr", "describe_repositories", "repositories")):
        if not repo["repositoryName"].startswith(f"{name}/"):
            continue
        found = aws.call("ecr", "list_tags_for_resource", resourceArn=repo["repositoryArn"])["tags"]
        if {"Key": STACK_TAG, "Value": name} not in found:
            say(f"  kept repository {repo['repositoryName']}: not tagged {STACK_TAG}={name}")
            continue
        _repository(aws, repo["repositoryName"], delete_images, say)


def _repository(aws: Aws, name: str, delete_images: bool, say: Say) -> None:
    try:
        aws.call("ecr", "delete_repository", repositoryName=name, force=delete_images)
        say(f"- delete repository {name}")
    except MicroforumError as exc:
        code = error_code(exc)
        if code == "RepositoryNotEmptyException":
            say(f"  kept repository {name}: it holds images (--delete-images removes them)")
        elif code != "RepositoryNotFoundException":
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


def what_remains(database: bool, outputs: dict[str, str]) -> list[str]:
    """What deleting the stack leaves behind, on purpose (the data) or because AWS made it
    outside the stack (log groups), with how long it is kept (docs/deploying.md#destroy)."""
    kept = []
    if database:
        kept += [
            "the database's final snapshot (RDS > Snapshots, named after the stack's Database "
            "resource); delete it when you no longer need the data",
            "the database's exported logs, /aws/rds/instance/<id>/postgresql (never expire)",
        ]
    if "ClusterName" in outputs:
        kept.append(
            f"Container Insights' log group /aws/ecs/containerinsights/{outputs['ClusterName']}"
            "/performance (1-day retention)"
        )
    return kept
