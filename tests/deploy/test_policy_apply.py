"""The policies AWS keeps by name, applied on moto's server: created, a second run plans
nothing, a removed key removes what it made, and an empty desired state (destroy) leaves nothing.

The ECS services the scalable targets belong to are created here directly (moto checks they
exist); everything else goes through `plan_policies` and `apply`.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REGION, SERVICES, STACK_NAME, cli, client, deploy_args, put_images, write_stack

from microforum.deploy.aws import Aws
from microforum.deploy.policies import render_policies
from microforum.deploy.policy_apply import PolicyState, apply, plan_policies, read_policies, resolve
from microforum.deploy.render import Target
from microforum.spec import defaults as d
from microforum.spec.load import parse_stack

CLUSTER = "mf-cluster"
TG_ARN_PREFIX = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup"
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/mf/50dc6c495c0c9188"
DOC: dict[str, Any] = {
    "name": "mf",
    "services": {
        "users": {"autoscaling": {"min": 1, "max": 4, "requests_per_target": 500, "cpu_percent": 60}},
        "posts": {"autoscaling": {"min": 2, "max": 3, "cpu_percent": 70}},
        "monolith": None,
    },
    "listener": {"rules": []},
}


def _ecs_services() -> None:
    ecs = client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family="mf", containerDefinitions=[{"name": "c", "image": "x", "memory": 64}]
    )
    for name in DOC["services"]:
        ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition="mf", desiredCount=1)


def _desired(doc: dict[str, Any]) -> PolicyState:
    stack = parse_stack(copy.deepcopy(doc))
    rendered = render_policies(stack, Target("mf", REGION, {"ClusterName": CLUSTER}))
    refs = {f"<tg:{s.name}>": f"{TG_ARN_PREFIX}/mf-{s.name}/0123456789abcdef" for s in stack.services}
    return resolve(rendered, {**refs, "<output:LoadBalancerArn>": LB_ARN})


def _run(aws: Aws, want: PolicyState) -> list[str]:
    steps = plan_policies(want, read_policies(aws, "mf", CLUSTER, list(DOC["services"])))
    apply(aws, steps)
    return [step.message for step in steps]


def test_policies_are_created_then_unchanged_then_removed_with_their_key_then_destroyed(aws: str) -> None:
    _ecs_services()
    tool = Aws(REGION)
    first = _run(tool, _desired(DOC))
    assert "create scalable target service/mf-cluster/users: 1..4 tasks" in first
    assert (
        "create scaling policy mf-users-requests" in first and "create scaling policy mf-posts-cpu" in first
    )
    assert "create alarm mf-monolith-error-rate" in first and "create dashboard mf" in first
    assert len(first) == 2 + 3 + 4 * 3 + 1
    alarm = client("cloudwatch").describe_alarms(AlarmNames=["mf-users-target-5xx"])["MetricAlarms"][0]
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    assert dimensions == {"LoadBalancer": "app/mf/50dc6c495c0c9188",
                          "TargetGroup": "targetgroup/mf-users/0123456789abcdef"}  # fmt: skip
    policy = client("application-autoscaling").describe_scaling_policies(
        ServiceNamespace="ecs", PolicyNames=["mf-users-requests"])["ScalingPolicies"][0]  # fmt: skip
    label = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
        "ResourceLabel"
    ]
    assert label == "app/mf/50dc6c495c0c9188/targetgroup/mf-users/0123456789abcdef"

    assert _run(tool, _desired(DOC)) == []  # a second deploy changes nothing

    smaller = copy.deepcopy(DOC)
    del smaller["services"]["users"]["autoscaling"]
    smaller["services"]["posts"]["alarms"] = {"error_percent": 5}
    third = _run(tool, _desired(smaller))
    assert sorted(third) == sorted([
        "change alarm mf-posts-error-rate",
        "delete scaling policy mf-users-requests", "delete scaling policy mf-users-cpu",
        "delete scalable target service/mf-cluster/users",
    ])  # fmt: skip
    assert _run(tool, _desired(smaller)) == []

    last = _run(tool, PolicyState())  # destroy
    assert last and all(message.startswith("delete ") for message in last)
    assert read_policies(tool, "mf", CLUSTER, list(DOC["services"])) == PolicyState()


def test_deploy_and_destroy_make_and_remove_the_policies(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def with_scaling(data: dict[str, Any]) -> None:
        data["services"]["users"]["autoscaling"] = {"min": 1, "max": 3, "requests_per_target": 800}

    write_stack(stack_file, with_scaling)
    put_images()
    code, dry, err = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert code == 0, err
    plan = [line for line in dry.splitlines() if line.startswith("  ")]
    # the policies are in the plan, their CloudWatch labels still placeholders (no group yet)
    assert "  + create scaling policy mf-test-users-requests" in plan
    assert "  + create alarm mf-test-monolith-error-rate" in plan and "  + create dashboard mf-test" in plan
    assert "  + create scalable target service/<output:ClusterName>/users: 1..3 tasks" in plan
    assert plan.index("  + create alarm mf-test-users-target-5xx") < plan.index(
        "  + create service users: 1 tasks"
    )
    assert client("cloudwatch").describe_alarms()["MetricAlarms"] == []  # the dry run changed nothing
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("  ")][: len(plan)] == plan  # the same plan
    alarms = client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{STACK_NAME}-")["MetricAlarms"]
    assert len(alarms) == 4 * len(SERVICES)
    dimensions = {d["Name"]: d["Value"] for d in alarms[0]["Dimensions"]}
    assert dimensions["TargetGroup"].startswith("targetgroup/mf-test-") and "<" not in str(dimensions)
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0 and "create alarm" not in out and "no changes" in out.splitlines(), out

    def tighter(data: dict[str, Any]) -> None:
        with_scaling(data)
        data["services"]["users"]["autoscaling"]["max"] = 5
        data["services"]["users"]["alarms"] = {"p99_seconds": 1}

    write_stack(stack_file, tighter)
    code, out, err = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert code == 0, err
    lines = out.splitlines()
    at = lines.index("  ~ change alarm mf-test-users-p99-latency")
    assert lines[at + 1] == "      Threshold 2.0 → 1.0"
    at = next(i for i, x in enumerate(lines) if x.startswith("  ~ change scalable target service/")
              and x.endswith("/users: 1..5 tasks"))  # fmt: skip
    assert lines[at + 1] == "      MaxCapacity 3 → 5"
    argv = ["destroy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file), "--yes"]
    _, out, _ = cli(*argv, capsys=capsys)  # (moto fails the stack's own deletion: its gap)
    assert "  delete scalable target service/" in out
    assert client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{STACK_NAME}-")["MetricAlarms"] == []
    assert client("cloudwatch").list_dashboards()["DashboardEntries"] == []
    scaling = client("application-autoscaling")
    assert scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []


def test_logs_of_a_deployed_stack_from_cloudwatch_logs(
    aws: str, stack_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = {
        "Resources": {
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "mf-test-logs"}}
        },
        "Outputs": {"LogGroupName": {"Value": {"Ref": "Logs"}}},
    }
    client("cloudformation").create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(template))
    logs = client("logs")
    now = int(time.time() * 1000)
    streams = {
        "users/users/0a1b2c3d4e5f60718293a4b5c6d7e8f9": [(now - 3000, "users up"), (now - 1000, "GET / 200")],
        "posts/posts/ffeeddccbbaa99887766554433221100": [(now - 2000, "posts up")],
        "users/users/11112222333344445555666677778888": [(now - 7_200_000, "an old line")],
    }
    for stream, events in streams.items():
        logs.create_log_stream(logGroupName="mf-test-logs", logStreamName=stream)
        logs.put_log_events(logGroupName="mf-test-logs", logStreamName=stream,
                            logEvents=[{"timestamp": t, "message": m} for t, m in events])  # fmt: skip
    base = ["logs", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file)]
    code, out, err = cli(*base, "--since", "10m", capsys=capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "users-0a1b2c3d | users up", "posts-ffeeddcc | posts up", "users-0a1b2c3d | GET / 200"]  # fmt: skip
    code, out, _ = cli(*base, "users", capsys=capsys)
    assert out.splitlines() == [  # (the users service only)
        "users-11112222 | an old line",
        "users-0a1b2c3d | users up",
        "users-0a1b2c3d | GET / 200",
    ]
    code, _, err = cli(
        "logs", "--region", REGION, "--stack-name", "nope", "--stack", str(stack_file), capsys=capsys
    )
    assert code == 1 and "logs of stack nope: no such deployed stack in us-east-1" in err


def test_status_of_a_deployed_stack_reads_targets_tasks_alarms_and_figures_from_aws(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = client("acm").request_certificate(DomainName="forum.example.com")["CertificateArn"]

    def policies(data: dict[str, Any]) -> None:
        data["listener"]["certificate_arn"] = arn
        data["services"]["users"]["autoscaling"] = {"min": 1, "max": 4, "cpu_percent": 60}

    write_stack(stack_file, policies)
    put_images()
    code, _, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    argv = ["status", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file)]
    code, out, err = cli(*argv, capsys=capsys)
    assert code == 0, err
    with capsys.disabled():
        print("\n" + out)
    for service in SERVICES:
        assert f"target group {service}" in out
    assert "  desired 1: 1 running, 0 pending" in out
    assert "  desired 1 (autoscaling 1..4): 1 running, 0 pending" in out  # users
    lines = out.splitlines()
    assert lines[0].startswith(f"stack {STACK_NAME} at https://")
    https = f"HTTPS:443 ({d.TLS_POLICY}, {arn})"
    assert (
        lines[2] == f"listener: HTTP:80 redirect 301 to HTTPS:443, {https}, HTTP:{d.INTERNAL_LISTENER_PORT}"
    )
    assert "  alarm error-rate: " in out and "requests 0  target 4xx 0" in out
    code, out, _ = cli(*argv, "--json", capsys=capsys)
    body = json.loads(out)
    assert body["stack"] == STACK_NAME and set(body["services"]) == set(SERVICES)
    assert {a["name"] for a in body["services"]["users"]["alarms"]} == {
        "target-5xx", "unhealthy-hosts", "p99-latency", "error-rate"}  # fmt: skip
    code, _, err = cli(
        "status", "--region", REGION, "--stack-name", "nope", "--stack", str(stack_file), capsys=capsys
    )
    assert code == 1 and "status of stack nope: no such deployed stack" in err
