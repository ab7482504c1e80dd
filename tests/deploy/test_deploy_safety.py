"""deploy and destroy on a real account's terms, against moto: refusals before any change,
no false success, the plan shown before → after and run as shown, tags, honest destroy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REGION, STACK_NAME, TAG, cli, client, deploy_args, put_images, write_stack

from microforum.spec import defaults as d

pytestmark = pytest.mark.aws


def plan_lines(out: str) -> list[str]:
    """The printed plan: from `plan for stack` up to the first executed step or the end."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("plan for stack"))
    end = next((i for i, line in enumerate(lines) if line.startswith(("[1/", "dry run"))), len(lines))
    return lines[start:end]


def stack_parameters() -> dict[str, str]:
    stack = client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def outputs() -> dict[str, str]:
    stack = client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def deploy_ok(stack: Path, template: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, out, err = cli(*deploy_args(stack, template, *extra), capsys=capsys)
    assert code == 0, err
    return out


# ------------------------------------------------------------------ data is never lost silently


def test_no_database_on_a_stack_with_a_database_is_refused_before_any_change(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    # A stack made with the database (moto's CloudFormation cannot make RDS + Secrets Manager,
    # so a stand-in with the same parameter; the refusal reads only the stack's parameters).
    template = {
        "Parameters": {"DatabaseEnabled": {"Type": "String"}},
        "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup"}},
    }
    client("cloudformation").create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "DatabaseEnabled", "ParameterValue": "true"}],
    )
    put_images()
    calls.made.clear()
    code, _, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)  # has --no-database
    assert code == 2
    assert err.splitlines() == [
        f"microforum: deploy stack {STACK_NAME}: --no-database would delete its database (only a final "
        "snapshot is kept) and the database secrets",
        "hint: pass --delete-database as well if that is what you want",
    ]
    assert calls.mutating == []
    assert stack_parameters() == {"DatabaseEnabled": "true"}


def test_a_template_change_that_removes_a_secret_is_refused_and_its_change_set_deleted(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    # A stack holding a secret that the template deploy sends does not have: the update's
    # change set removes it. (A stand-in: moto's CloudFormation skips Secrets Manager resources
    # but its change sets still list their removal, which is what the refusal reads.)
    template = {"Resources": {"KeptSecret": {"Type": "AWS::SecretsManager::Secret"}}}
    cloudformation = client("cloudformation")
    cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template))
    put_images()
    calls.made.clear()
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 2, out
    assert err.splitlines() == [
        f"microforum: deploy stack {STACK_NAME}: the update would delete or replace KeptSecret "
        "(removed), losing data",
        "hint: pass --delete-database if that is what you want",
    ]
    assert {op for _, op in calls.mutating} == {"CreateChangeSet", "DeleteChangeSet"}
    assert cloudformation.list_change_sets(StackName=STACK_NAME)["Summaries"] == []


def test_replicas_without_a_database_are_refused(
    aws: str, tmp_path: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    put_images()
    two = write_stack(tmp_path / "two.yaml", lambda data: data["services"]["posts"].update(desired_count=2))
    code, _, err = cli(*deploy_args(two, moto_template), capsys=capsys)
    assert code == 2
    assert err.splitlines()[0].startswith(
        "microforum: deploy --no-database: more than one task for posts (2)"
    )
    assert calls.mutating == []


def test_a_command_service_is_refused_with_one_line(
    aws: str, tmp_path: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["services"]["echo"] = {"command": ["python3", "-m", "http.server", "$PORT"], "desired_count": 1}
        data["listener"]["rules"].append(
            {"priority": 9, "conditions": [{"path_pattern": ["/echo*"]}], "action": {"forward": "echo"}}
        )

    put_images()
    code, out, err = cli(
        *deploy_args(write_stack(tmp_path / "s.yaml", edit), moto_template, "--dry-run"), capsys=capsys
    )
    assert code == 2
    assert err.splitlines()[0].startswith("microforum: deploy service echo: a `command` service has no image")
    assert out == ""  # no plan promising images it cannot build
    assert calls.mutating == []


@pytest.mark.parametrize("name", ["ecs-forum", "fargate-prod"])
def test_a_stack_name_aws_would_refuse_later_is_refused_at_once(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any, name: str
) -> None:
    argv = deploy_args(stack_file, moto_template)
    argv[argv.index(STACK_NAME)] = name
    code, _, err = cli(*argv, capsys=capsys)
    assert code == 2
    assert err.startswith(f"microforum: --stack-name {name}: must not start with aws, ecs, fargate")
    assert calls.made == []


# ------------------------------------------------------------------ no false success


def test_a_timed_out_wait_fails_and_a_rerun_keeps_waiting_never_saying_no_changes(
    idle_aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    put_images()
    argv = deploy_args(stack_file, moto_template, "--timeout", "0")
    code, out, err = cli(*argv, capsys=capsys)
    assert code == 1
    assert err.splitlines()[0].startswith("microforum: deploy: services not stable after 0s: ")
    assert "users 0/1" in err.splitlines()[0]
    assert "  users: 0/1 running, rollout IN_PROGRESS, 1 deployment" in out  # progress
    calls.made.clear()
    code, out, err = cli(*argv, capsys=capsys)  # nothing left to change, still not stable
    assert code == 1, out
    assert "no changes" not in out
    assert "not stable" in err
    assert calls.mutating == []


def test_a_no_op_deploy_says_no_changes_with_few_read_calls(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    put_images()
    deploy_ok(stack_file, moto_template, capsys)
    calls.made.clear()
    out = deploy_ok(stack_file, moto_template, capsys)
    assert "no changes" in out.splitlines()
    assert calls.mutating == []
    counts = {op: sum(1 for c in calls.made if c[1] == op) for _, op in calls.made}
    assert counts["DescribeRepositories"] == 1
    # 39 before: each repository read 3 times, each image twice (docs/deploying.md#read-calls);
    # + 5 reading the policies: scalable targets, scaling policies, alarms, the dashboard (2)
    assert len(calls.made) <= 26, calls.made


# ------------------------------------------------------------------ the plan


def test_dry_run_prints_the_very_plan_the_run_executes(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    put_images()
    dry = deploy_ok(stack_file, moto_template, capsys, "--dry-run")
    assert calls.mutating == []
    real = deploy_ok(stack_file, moto_template, capsys)
    assert plan_lines(dry) == plan_lines(real)
    executed = [line.split("] ", 1)[1] for line in real.splitlines() if line.startswith("[")]
    assert executed == [
        line.strip()[2:] for line in plan_lines(real) if line.startswith("  ") and line[2] in "+~-"
    ]
    assert "  + create service-linked role AWSServiceRoleForECS: ECS needs it to manage the cluster" in dry
    assert client("iam").get_role(RoleName="AWSServiceRoleForECS")["Role"]["Arn"]


def test_the_plan_shows_before_and_after_and_the_change_set(
    aws: str,
    tmp_path: Path,
    stack_file: Path,
    moto_template: Path,
    capsys: pytest.CaptureFixture[str],
    calls: Any,
) -> None:
    put_images()
    deploy_ok(stack_file, moto_template, capsys)

    def edit(data: dict[str, Any]) -> None:
        data["services"]["users"]["health_check"]["interval"] = 10
        data["services"]["users"]["deregistration_delay"] = 5
        data["load_balancer"]["idle_timeout"] = 120

    changed = write_stack(tmp_path / "changed.yaml", edit)
    calls.made.clear()
    dry = deploy_ok(changed, moto_template, capsys, "--dry-run")
    lines = plan_lines(dry)
    assert f"  ~ change stack {STACK_NAME}: IdleTimeout=120" in lines
    # The change set's resources follow the stack's line (which ones: moto's diff is rougher
    # than CloudFormation's, so only the shape is checked here; test_errors has the format).
    after = lines[lines.index(f"  ~ change stack {STACK_NAME}: IdleTimeout=120") + 1]
    assert after.startswith("      Modify ") and "(AWS::" in after
    assert "      health_check.interval 6 → 10" in lines
    assert "      deregistration_delay 30 → 5" in lines
    margin = d.TARGET_KEEP_ALIVE_MARGIN
    assert f"      environment.IDLE_TIMEOUT {60 + margin} → {120 + margin}" in lines
    assert "      stopTimeout 30 → 5" in lines
    assert f"      taskDefinition {STACK_NAME}-users:1 → a new revision" in lines
    # The dry run made a change set to show it, and deleted it; the stack is unchanged.
    assert {op for _, op in calls.mutating} == {"CreateChangeSet", "DeleteChangeSet"}
    assert stack_parameters()["IdleTimeout"] == "60"

    real = deploy_ok(changed, moto_template, capsys)
    assert plan_lines(real) == lines
    assert stack_parameters()["IdleTimeout"] == "120"


def test_a_new_listener_port_reaches_the_services_and_the_old_listener_goes(
    aws: str, tmp_path: Path, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put_images()
    deploy_ok(stack_file, moto_template, capsys)
    changed = write_stack(tmp_path / "port.yaml", lambda data: data["listener"].update(port=8080))
    out = deploy_ok(changed, moto_template, capsys)
    assert "  - delete listener HTTP:80: its port is no longer listener.port" in out
    dns = outputs()["LoadBalancerDnsName"]
    assert out.splitlines()[-1] == f"http://{dns}:8080"
    listeners = client("elbv2").describe_listeners(LoadBalancerArn=outputs()["LoadBalancerArn"])["Listeners"]
    assert [listener["Port"] for listener in listeners] == [8080]
    task = client("ecs").describe_task_definition(taskDefinition=f"{STACK_NAME}-users")["taskDefinition"]
    env = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}
    assert env["API_URL"] == f"http://{dns}:8080"
    groups = client("ec2").describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [outputs()["VpcId"]]}]
    )
    alb = next(g for g in groups["SecurityGroups"] if g["Description"].startswith("microforum ALB"))
    assert [(p["FromPort"], p["ToPort"]) for p in alb["IpPermissions"]] == [(8080, 8080)]


# ------------------------------------------------------------------ tags and destroy


def tags_of(arn: str) -> dict[str, str]:
    found = client("resourcegroupstaggingapi").get_resources(ResourceARNList=[arn])["ResourceTagMappingList"]
    return {t["Key"]: t["Value"] for t in found[0]["Tags"]} if found else {}


def test_everything_deploy_creates_carries_its_tags(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put_images()  # repositories made by hand
    deploy_ok(stack_file, moto_template, capsys)
    stack = client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    assert {"Key": "microforum:stack", "Value": STACK_NAME} in stack["Tags"]
    elbv2, ecs = client("elbv2"), client("ecs")
    group = elbv2.describe_target_groups(Names=[f"{STACK_NAME}-users"])["TargetGroups"][0]
    assert tags_of(group["TargetGroupArn"]) == {"microforum:stack": STACK_NAME, "microforum:service": "users"}
    task = ecs.describe_task_definition(taskDefinition=f"{STACK_NAME}-users", include=["TAGS"])
    assert {t["key"]: t["value"] for t in task["tags"]} == {
        "microforum:stack": STACK_NAME,
        "microforum:service": "users",
    }
    service = ecs.describe_services(cluster=outputs()["ClusterName"], services=["users"], include=["TAGS"])
    assert {t["key"]: t["value"] for t in service["services"][0]["tags"]}["microforum:service"] == "users"
    listener = elbv2.describe_listeners(LoadBalancerArn=outputs()["LoadBalancerArn"])["Listeners"][0]
    listener_tags = elbv2.describe_tags(ResourceArns=[listener["ListenerArn"]])["TagDescriptions"][0]["Tags"]
    assert {"Key": "microforum:stack", "Value": STACK_NAME} in listener_tags


def test_deploy_creates_its_own_tagged_repositories_and_a_shared_prefix_is_left_alone(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put_images(prefix="team")  # shared on purpose, made by hand
    argv = deploy_args(stack_file, moto_template, "--repository-prefix", "team")
    code, _, err = cli(*argv, capsys=capsys)
    assert code == 0, err
    ecr = client("ecr")
    repo = ecr.describe_repositories(repositoryNames=["team/users"])["repositories"][0]
    assert ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"] == []
    destroy = ["destroy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file)]
    _, out, _ = cli(*destroy, "--yes", "--delete-images", "--repository-prefix", "team", capsys=capsys)
    assert "kept the shared repositories " in out and "team/users" in out
    assert len(ecr.describe_repositories()["repositories"]) == 4


def test_destroy_finds_what_a_service_removed_from_stack_yaml_left(
    aws: str, tmp_path: Path, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put_images(tagged=True)
    deploy_ok(stack_file, moto_template, capsys)

    def without_posts(data: dict[str, Any]) -> None:
        del data["services"]["posts"]
        del data["listener"]["rules"][2]

    smaller = write_stack(tmp_path / "smaller.yaml", without_posts)
    argv = ["destroy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(smaller), "--yes"]
    _, out, _ = cli(*argv, "--delete-images", capsys=capsys)
    assert f"- delete target group {STACK_NAME}-posts" in out
    assert f"- deregister task definition {STACK_NAME}-posts (1 revisions)" in out
    assert f"- delete repository {STACK_NAME}/posts" in out
    assert client("elbv2").describe_target_groups()["TargetGroups"] == []
    assert client("ecs").list_task_definitions(status="ACTIVE")["taskDefinitionArns"] == []


def test_destroy_says_what_remains() -> None:
    from microforum.deploy.destroy import what_remains

    kept = what_remains(True, {"ClusterName": "c"})
    assert kept[0].startswith("the database's final snapshot")
    assert "/aws/rds/instance/<id>/postgresql (never expire)" in kept[1]
    assert (
        kept[2] == "Container Insights' log group /aws/ecs/containerinsights/c/performance (1-day retention)"
    )
    assert what_remains(False, {}) == []


def test_without_image_tag_unchanged_code_means_no_new_revision(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    from microforum.deploy.images import content_tag

    tag = content_tag()  # as an earlier deploy of this very code pushed them
    put_images(tag=tag)
    argv = [a for a in deploy_args(stack_file, moto_template) if a not in ("--image-tag", TAG)]
    code, out, err = cli(*argv, capsys=capsys)
    assert code == 0, err
    assert "build and push" not in out  # the images of this code are in ECR already
    task = client("ecs").describe_task_definition(taskDefinition=f"{STACK_NAME}-users")["taskDefinition"]
    assert task["containerDefinitions"][0]["image"].endswith(f"/{STACK_NAME}/users:{tag}")
    calls.made.clear()
    code, out, _ = cli(*argv, capsys=capsys)
    assert (code, calls.mutating) == (0, [])
    assert "no changes" in out.splitlines()
