"""Read what exists on AWS into the planner's plain `RemoteState` and `StackState` (I/O only).

Only Describe/List/Get calls live here: reading never changes anything, so a run whose plan is
empty makes no mutating call at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from microforum.deploy.aws import Aws, error_code
from microforum.deploy.plan import RemoteState
from microforum.deploy.render import Desired
from microforum.errors import MicroforumError

JSON = dict[str, Any]


@dataclass(frozen=True)
class StackState:
    status: str
    outputs: dict[str, str]
    parameters: dict[str, str]
    template: JSON


def read_stack(aws: Aws, name: str) -> StackState | None:
    """The cluster stack, or None when it does not exist (or was deleted)."""
    try:
        stacks = aws.call("cloudformation", "describe_stacks", StackName=name)["Stacks"]
    except MicroforumError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    stack = stacks[0]
    body = aws.call("cloudformation", "get_template", StackName=name, TemplateStage="Original")[
        "TemplateBody"
    ]
    return StackState(
        status=stack["StackStatus"],
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        parameters={p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])},
        template=body if isinstance(body, dict) else json.loads(body),
    )


def read_repositories(aws: Aws, names: list[str]) -> dict[str, JSON]:
    """The named repositories that exist, each with its lifecycle policy text.

    One listing of the registry's repositories (a page holds 1000), rather than one call per
    name: DescribeRepositories with names fails as a whole when one of them is missing."""
    wanted = set(names)
    found = {}
    for repo in aws.paginate("ecr", "describe_repositories", "repositories"):
        if repo["repositoryName"] not in wanted:
            continue
        name = repo["repositoryName"]
        try:
            policy = aws.call("ecr", "get_lifecycle_policy", repositoryName=name)["lifecyclePolicyText"]
            repo["lifecyclePolicyText"] = json.dumps(json.loads(policy), sort_keys=True)
        except MicroforumError as exc:
            if error_code(exc) != "LifecyclePolicyNotFoundException":
                raise
        found[name] = repo
    return found


def read_remote(
    aws: Aws, desired: Desired, outputs: dict[str, str], repositories: dict[str, JSON]
) -> RemoteState:
    """Everything the plan compares against; only the repositories when there is no stack yet."""
    if "LoadBalancerArn" not in outputs:
        return RemoteState(repositories=repositories)
    listeners = list(
        aws.paginate("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=outputs["LoadBalancerArn"])
    )
    port = desired.listener["Port"]
    listener = next((item for item in listeners if item["Port"] == port), None)
    return RemoteState(
        repositories=repositories,
        task_definitions=_task_definitions(aws, [t["family"] for t in desired.task_definitions.values()]),
        target_groups=_target_groups(
            aws, outputs["LoadBalancerArn"], [t["Name"] for t in desired.target_groups.values()]
        ),
        listener=listener,
        rules=_rules(aws, listener["ListenerArn"]) if listener else (),
        other_listeners=tuple(item for item in listeners if item["Port"] != port),
        services=read_services(aws, outputs["ClusterName"]),
    )


def _task_definitions(aws: Aws, families: list[str]) -> dict[str, JSON]:
    found = {}
    for family in families:
        try:
            # With its tags: a db-setup revision's tell whether its run succeeded (plan.py).
            answer = aws.call("ecs", "describe_task_definition", taskDefinition=family, include=["TAGS"])
            task = {**answer["taskDefinition"], "tags": answer.get("tags", [])}
        except MicroforumError as exc:
            if error_code(exc) in (
                "ClientException",
                "InvalidParameterException",
                "ResourceNotFoundException",
            ):
                continue
            raise
        if task.get("status", "ACTIVE") == "ACTIVE":
            found[family] = task
    return found


def _target_groups(aws: Aws, load_balancer_arn: str, names: list[str]) -> dict[str, JSON]:
    """The desired target groups by name, plus any other on our load balancer (to delete)."""
    try:
        on_lb = list(
            aws.paginate("elbv2", "describe_target_groups", "TargetGroups", LoadBalancerArn=load_balancer_arn)
        )
    except MicroforumError as exc:
        if error_code(exc) not in _TG_NOT_FOUND:
            raise
        on_lb = []
    groups = {g["TargetGroupName"]: g for g in on_lb}
    for name in names:
        if name in groups:
            continue
        try:
            groups[name] = aws.call("elbv2", "describe_target_groups", Names=[name])["TargetGroups"][0]
        except MicroforumError as exc:
            if error_code(exc) not in _TG_NOT_FOUND:
                raise
    for group in groups.values():
        attrs = aws.call("elbv2", "describe_target_group_attributes", TargetGroupArn=group["TargetGroupArn"])[
            "Attributes"
        ]
        group["Attributes"] = {a["Key"]: a["Value"] for a in attrs}
    return groups


_TG_NOT_FOUND = ("TargetGroupNotFound", "TargetGroupNotFoundException")


def _rules(aws: Aws, listener_arn: str) -> tuple[JSON, ...]:
    rules = aws.call("elbv2", "describe_rules", ListenerArn=listener_arn)["Rules"]
    return tuple(r for r in rules if not r.get("IsDefault") and r.get("Priority") != "default")


def read_services(aws: Aws, cluster: str) -> dict[str, JSON]:
    """The cluster's ACTIVE services by name."""
    arns = list(aws.paginate("ecs", "list_services", "serviceArns", cluster=cluster))
    found = {}
    for start in range(0, len(arns), 10):  # DescribeServices takes at most 10 services
        batch = aws.call("ecs", "describe_services", cluster=cluster, services=arns[start : start + 10])
        for service in batch["services"]:
            if service.get("status") == "ACTIVE":
                found[service["serviceName"]] = service
    return found


def ecs_role_exists(aws: Aws) -> bool:
    """Whether the account has ECS's service-linked role (AWSServiceRoleForECS)."""
    try:
        aws.call("iam", "get_role", RoleName="AWSServiceRoleForECS")
    except MicroforumError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    return True
