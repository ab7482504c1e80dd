"""deploy / destroy against moto's server mode, asserting on what the AWS APIs return."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import (
    CAPACITY_PROVIDER,
    REGION,
    SERVICES,
    STACK_NAME,
    TAG,
    cli,
    client,
    deploy_args,
    put_images,
    run_cli_subprocess,
    write_stack,
)

from microforum.spec import defaults as d

pytestmark = pytest.mark.aws


def outputs() -> dict[str, str]:
    stack = client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def target_groups() -> dict[str, dict[str, Any]]:
    groups = client("elbv2").describe_target_groups()["TargetGroups"]
    return {g["TargetGroupName"]: g for g in groups}


def listener_rules(lb_arn: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    elbv2 = client("elbv2")
    listener = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"][0]
    rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    return listener, sorted((r for r in rules if not r["IsDefault"]), key=lambda r: int(r["Priority"]))


def deployed(
    aws: str,
    stack_file: Path,
    moto_template: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    tagged: bool = False,
) -> str:
    put_images(tagged=tagged)
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    return out


def test_deploy_creates_the_stack_and_everything_on_it(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = deployed(aws, stack_file, moto_template, capsys)
    out_ = outputs()
    for key in (
        "VpcId",
        "ClusterName",
        "LoadBalancerArn",
        "LoadBalancerDnsName",
        "ExecutionRoleArn",
        "LogGroupName",
    ):
        assert out_[key], key
    assert out_["CapacityProviderName"] == CAPACITY_PROVIDER
    assert out.strip().splitlines()[-1] == f"http://{out_['LoadBalancerDnsName']}"

    # Target groups: HTTP, instance targets, the seed's health check, traffic-port (docs/ecs.md §F.2).
    groups = target_groups()
    assert sorted(groups) == sorted(f"{STACK_NAME}-{s}" for s in SERVICES)
    elbv2 = client("elbv2")
    for group in groups.values():
        assert (group["Protocol"], group["Port"], group["TargetType"]) == (
            "HTTP",
            d.CONTAINER_PORT,
            "instance",
        )
        assert group["VpcId"] == out_["VpcId"]
        assert group["HealthCheckPath"] == "/"
        assert group["HealthCheckPort"] == "traffic-port"
        assert group["HealthCheckIntervalSeconds"] == 6
        assert group["HealthCheckTimeoutSeconds"] == 5
        assert (group["HealthyThresholdCount"], group["UnhealthyThresholdCount"]) == (2, 2)
        assert group["Matcher"]["HttpCode"] == "200"
        attrs = elbv2.describe_target_group_attributes(TargetGroupArn=group["TargetGroupArn"])["Attributes"]
        attrs = {a["Key"]: a["Value"] for a in attrs}
        assert attrs["deregistration_delay.timeout_seconds"] == str(d.DEREGISTRATION_DELAY)

    # Listener: HTTP:80, default forward to the monolith; rules 1..3 by path.
    listener, rules = listener_rules(out_["LoadBalancerArn"])
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 80)
    default = listener["DefaultActions"][0]
    assert default["Type"] == "forward"
    monolith_arn = groups[f"{STACK_NAME}-monolith"]["TargetGroupArn"]
    assert monolith_arn in json.dumps(default)
    seen = [
        (int(r["Priority"]), r["Conditions"][0]["Field"], r["Conditions"][0]["PathPatternConfig"]["Values"])
        for r in rules
    ]
    assert seen == [
        (1, "path-pattern", ["/api/users*"]),
        (2, "path-pattern", ["/api/threads*"]),
        (3, "path-pattern", ["/api/posts*"]),
    ]
    for rule, service in zip(rules, ("users", "threads", "posts"), strict=True):
        assert groups[f"{STACK_NAME}-{service}"]["TargetGroupArn"] in json.dumps(rule["Actions"])

    # Task definitions: bridge, dynamic host port, awslogs, role, API_URL through the ALB.
    ecs = client("ecs")
    repo_uri = client("ecr").describe_repositories(repositoryNames=[f"{STACK_NAME}/users"])["repositories"][
        0
    ]["repositoryUri"]
    task = ecs.describe_task_definition(taskDefinition=f"{STACK_NAME}-users")["taskDefinition"]
    assert task["networkMode"] == "bridge"
    assert task["taskRoleArn"] == out_["TaskRoleUsersArn"]
    assert task["executionRoleArn"] == out_["ExecutionRoleArn"]
    (container,) = task["containerDefinitions"]
    assert container["image"] == f"{repo_uri}:{TAG}"
    assert (container["cpu"], container["memory"]) == (d.CPU, d.MEMORY)
    assert container["portMappings"][0]["containerPort"] == 3000
    assert container["portMappings"][0]["hostPort"] == 0
    assert container["stopTimeout"] == d.DEREGISTRATION_DELAY
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"]["awslogs-group"] == out_["LogGroupName"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env["API_URL"] == f"http://{out_['LoadBalancerDnsName']}"
    assert "secrets" not in container or not container["secrets"]  # --no-database

    # Services: the load balancer, the deployment configuration, placement, capacity provider.
    services = ecs.describe_services(cluster=out_["ClusterName"], services=list(SERVICES))["services"]
    assert {s["serviceName"] for s in services} == set(SERVICES)
    for service in services:
        name = service["serviceName"]
        assert service["loadBalancers"] == [
            {
                "targetGroupArn": groups[f"{STACK_NAME}-{name}"]["TargetGroupArn"],
                "containerName": name,
                "containerPort": 3000,
            }
        ]
        assert service["taskDefinition"].split("/")[-1] == f"{STACK_NAME}-{name}:1"
        config = service["deploymentConfiguration"]
        assert config["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert (config["minimumHealthyPercent"], config["maximumPercent"]) == (100, 200)
        assert service["placementStrategy"][0] == {
            "type": "spread",
            "field": "attribute:ecs.availability-zone",
        }
        assert service["capacityProviderStrategy"][0]["capacityProvider"] == CAPACITY_PROVIDER

    # Repositories: the ones put_images made by hand were corrected.
    ecr = client("ecr")
    names = [f"{STACK_NAME}/{s}" for s in SERVICES]
    for repo in ecr.describe_repositories(repositoryNames=names)["repositories"]:
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True
        policy = json.loads(
            ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"])["lifecyclePolicyText"]
        )
        assert policy["rules"][0]["selection"]["countNumber"] == d.ECR_KEEP_IMAGES


def test_a_second_deploy_changes_nothing(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    deployed(aws, stack_file, moto_template, capsys)
    calls.made.clear()
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    assert calls.mutating == []
    assert len(calls.made) > 10  # it did look
    assert "no changes" in out.splitlines()


def test_dry_run_on_an_empty_account_prints_the_plan_and_mutates_nothing(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    put_images()
    code, out, err = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert code == 0, err
    assert calls.mutating == []
    assert f"+ create stack {STACK_NAME}" in out
    assert f"+ create target group {STACK_NAME}-users" in out
    assert "+ create listener rule priority 3: path-pattern /api/posts* -> forward to posts" in out
    assert "+ create service monolith: 1 tasks" in out
    assert f"~ change repository {STACK_NAME}/users: immutable tags" in out
    assert client("cloudformation").list_stacks()["StackSummaries"] == []


def test_changes_to_stack_yaml_are_planned_then_applied(
    aws: str,
    tmp_path: Path,
    stack_file: Path,
    moto_template: Path,
    capsys: pytest.CaptureFixture[str],
    calls: Any,
) -> None:
    deployed(aws, stack_file, moto_template, capsys)

    def edit(data: dict[str, Any]) -> None:
        rules = data["listener"]["rules"]
        rules[0]["priority"], rules[1]["priority"] = 2, 1  # swap users and threads
        del rules[2]  # posts' rule leaves stack.yaml; another reaches posts
        rules.append({"priority": 4, "conditions": [{"path_pattern": ["/api/p*"]}],
                      "action": {"forward": "posts"}})  # fmt: skip
        rules.append({"priority": 10, "conditions": [{"http_header": {"name": "X-Canary", "values": ["1"]}}],
                      "action": {"fixed_response": {"status_code": 418, "message_body": "canary"}}})  # fmt: skip  # noqa: E501
        data["services"]["users"]["health_check"]["interval"] = 10

    changed = write_stack(tmp_path / "changed.yaml", edit)
    calls.made.clear()
    code, out, err = cli(*deploy_args(changed, moto_template, "--dry-run"), capsys=capsys)
    assert code == 0, err
    assert calls.mutating == []
    assert f"~ change target group {STACK_NAME}-users: health check / every 10s" in out
    assert "- delete listener rule priority 3: no longer in stack.yaml" in out
    assert "~ change listener rule priorities: 1->2, 2->1 (step 1 of 2: park)" in out
    assert "+ create listener rule priority 10: http-header X-Canary 1 -> fixed response 418" in out

    code, out, err = cli(*deploy_args(changed, moto_template), capsys=capsys)
    assert code == 0, err
    _, rules = listener_rules(outputs()["LoadBalancerArn"])
    groups = target_groups()
    summary = [(int(r["Priority"]), r["Conditions"][0]["Field"]) for r in rules]
    assert summary == [(1, "path-pattern"), (2, "path-pattern"), (4, "path-pattern"), (10, "http-header")]
    assert groups[f"{STACK_NAME}-threads"]["TargetGroupArn"] in json.dumps(rules[0]["Actions"])
    assert groups[f"{STACK_NAME}-users"]["TargetGroupArn"] in json.dumps(rules[1]["Actions"])
    assert rules[3]["Actions"][0]["FixedResponseConfig"]["StatusCode"] == "418"
    assert groups[f"{STACK_NAME}-users"]["HealthCheckIntervalSeconds"] == 10

    calls.made.clear()
    code, out, _ = cli(*deploy_args(changed, moto_template), capsys=capsys)
    assert (code, calls.mutating) == (0, [])
    assert "no changes" in out


def test_a_missing_image_is_one_clear_error(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put_images(services=("users", "threads", "posts"))
    client("ecr").create_repository(repositoryName=f"{STACK_NAME}/monolith")
    code, _, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 2
    assert err.splitlines()[0] == (
        f"microforum: deploy service monolith: image {STACK_NAME}/monolith:{TAG} is not in ECR"
    )
    assert "Traceback" not in err
    # Refused before anything changed: no stack was started (it takes 15-25 minutes with RDS).
    assert client("cloudformation").list_stacks()["StackSummaries"] == []


def test_destroy_removes_everything_and_is_idempotent(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed(aws, stack_file, moto_template, capsys, tagged=True)
    out_ = outputs()
    cluster = out_["ClusterName"]
    argv = [
        "destroy",
        "--region",
        REGION,
        "--stack-name",
        STACK_NAME,
        "--stack",
        str(stack_file),
        "--yes",
        "--delete-images",
    ]
    code, out, err = cli(*argv, capsys=capsys)
    # moto fails the stack's own deletion ("The vpc ... has dependencies"): its gap, expected
    # here only; everything destroy deletes before the stack must be gone.
    assert code == 1 and "DeleteStack" in err and "has dependencies" in err, err
    assert "- delete listener rule priority 1" in out and "- delete listener HTTP:80" in out
    ecs, elbv2 = client("ecs"), client("elbv2")
    active = [
        s
        for s in ecs.describe_services(cluster=cluster, services=list(SERVICES))["services"]
        if s["status"] == "ACTIVE"
    ]
    assert active == []
    try:  # moto deletes the load balancer during its partial stack deletion
        listeners = elbv2.describe_listeners(LoadBalancerArn=out_["LoadBalancerArn"])["Listeners"]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        listeners = []
    assert listeners == []
    assert target_groups() == {}
    assert ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"] == []
    assert client("ecr").describe_repositories()["repositories"] == []

    # moto drops the stack from its list even though the deletion failed.
    assert client("cloudformation").list_stacks()["StackSummaries"] == []
    code, out, err = cli(*argv, capsys=capsys)  # again: nothing left to delete
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"destroyed {STACK_NAME}"]


def test_destroy_without_images_flag_keeps_repositories_that_hold_images(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed(aws, stack_file, moto_template, capsys, tagged=True)
    argv = ["destroy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file), "--yes"]
    _, out, _ = cli(*argv, capsys=capsys)
    assert f"kept repository {STACK_NAME}/users: it holds images (--delete-images removes them)" in out
    assert len(client("ecr").describe_repositories()["repositories"]) == len(SERVICES)


def test_destroy_asks_for_confirmation(aws: str, stack_file: Path) -> None:
    env = {**os.environ}
    result = run_cli_subprocess(
        "destroy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file), env=env
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        f"microforum: destroy {STACK_NAME}: refusing without confirmation (standard input is not a terminal)"
    )
    assert result.stderr.splitlines()[1] == "hint: pass --yes to destroy without asking"


@pytest.mark.parametrize(
    ("drop", "expected"),
    [
        (
            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
            "microforum: cloudformation:DescribeStacks: no AWS credentials found",
        ),
        (("--region",), "microforum: no AWS region configured"),
    ],
    ids=["no-credentials", "no-region"],
)
def test_aws_configuration_errors_are_one_line_with_a_hint(
    aws: str, stack_file: Path, moto_template: Path, drop: tuple[str, ...], expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    argv = deploy_args(stack_file, moto_template)
    if "--region" in drop:
        argv = [a for a in argv if a not in ("--region", REGION)]
    result = run_cli_subprocess(*argv, env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == expected
    assert lines[1].startswith("hint: ")
    assert len(lines) == 2


def test_ecr_login_comes_from_get_authorization_token(aws: str) -> None:
    from microforum.deploy.aws import Aws
    from microforum.deploy.images import registry_login

    host, username, password = registry_login(Aws(REGION))
    data = client("ecr").get_authorization_token()["authorizationData"][0]
    assert host == data["proxyEndpoint"].removeprefix("https://")
    assert username == "AWS"
    assert password and ":" not in password


def test_a_stack_without_the_database_output_is_refused_when_the_database_is_on(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed(aws, stack_file, moto_template, capsys)  # created with --no-database
    argv = [a for a in deploy_args(stack_file, moto_template) if a != "--no-database"]
    # The stack update (DatabaseEnabled=true) needs Secrets Manager in CloudFormation, which
    # moto lacks; the tool must still refuse to register task definitions without the secret.
    code, _, err = cli(*argv, capsys=capsys)
    assert code == 1
    assert (
        "no output DatabaseSecretArn, DatabaseUsersSecretArn, DatabaseThreadsSecretArn" in err.splitlines()[0]
    )


def test_an_unknown_profile_is_one_line_with_a_hint(aws: str, stack_file: Path, moto_template: Path) -> None:
    env = {**os.environ, "AWS_PROFILE": "nope"}
    result = run_cli_subprocess(*deploy_args(stack_file, moto_template), env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "microforum: use AWS profile 'nope': no such profile",
        "hint: check AWS_PROFILE and the profiles in ~/.aws/config",
    ]
