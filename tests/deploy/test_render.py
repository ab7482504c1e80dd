"""render: golden files for `microforum render`, and tables for the converters.

Regenerate the golden files after an intended change with
`MICROFORUM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/deploy/test_render.py`, then read the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import ROOT, cli

from microforum.deploy.names import target_group_name
from microforum.deploy.render import (
    Target,
    convert_action,
    convert_condition,
    convert_target_group,
    render,
    render_template,
    template_parameters,
)
from microforum.deploy.stack import default_template_path, load_template
from microforum.spec import defaults as d
from microforum.spec.load import load_stack, parse_stack
from microforum.spec.model import (
    Condition,
    Database,
    FixedResponse,
    Forward,
    QueryPair,
    Redirect,
    WeightedTargetGroup,
)

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("MICROFORUM_UPDATE_GOLDEN") == "1"
OUTPUTS = {
    "VpcId": "vpc-0123",
    "ClusterName": "mf-cluster",
    "CapacityProviderName": "mf-capacity",
    "LoadBalancerArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/mf/abc",
    "LoadBalancerDnsName": "mf-123.eu-west-1.elb.amazonaws.com",
    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/mf-exec",
    "LogGroupName": "mf-logs",
    "DatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mf-db-master",
    "DatabaseUsersSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mf-db-users",
    "DatabaseThreadsSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mf-db-threads",
    "DatabasePostsSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mf-db-posts",
    "TaskRoleUsersArn": "arn:aws:iam::123456789012:role/mf-users",
}


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with MICROFORUM_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} differs from the golden file (MICROFORUM_UPDATE_GOLDEN=1 regenerates)"
    )


@pytest.mark.parametrize(
    ("name", "extra"),
    [("render-placeholders.json", ["--no-database"]), ("render-outputs.json", ["--outputs", "OUTPUTS"])],
    ids=["no-stack-yet", "with-outputs-and-database"],
)
def test_render_matches_the_golden_file(
    name: str,
    extra: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(OUTPUTS))
    argv = ["render", "--stack", str(ROOT / "stack.yaml"), "--stack-name", "mf"]
    argv += [str(outputs) if a == "OUTPUTS" else a for a in extra]
    code, out, err = cli(*argv, capsys=capsys)
    assert code == 0, err
    check_golden(name, out)


def test_render_takes_every_number_from_the_model() -> None:
    stack = load_stack(ROOT / "stack.yaml")
    desired = render(stack, Target("mf", "eu-west-1", OUTPUTS))
    task = desired.task_definitions["users"]
    (container,) = task["containerDefinitions"]
    assert (container["cpu"], container["memory"]) == (d.CPU, d.MEMORY)
    assert container["portMappings"] == [
        {"containerPort": d.CONTAINER_PORT, "hostPort": d.HOST_PORT, "protocol": "tcp"}
    ]
    assert task["networkMode"] == d.NETWORK_MODE
    assert container["secrets"] == [
        {"name": "USERS_DATABASE_SECRET", "valueFrom": OUTPUTS["DatabaseUsersSecretArn"]}
    ]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == {
        "API_URL": "http://mf-123.eu-west-1.elb.amazonaws.com",
        "IDLE_TIMEOUT": str(d.IDLE_TIMEOUT + d.TARGET_KEEP_ALIVE_MARGIN),
        "PGSSLMODE": "require",
        "PORT": "3000",
    }
    assert task["taskRoleArn"] == OUTPUTS["TaskRoleUsersArn"]
    service = desired.services["users"]
    assert service["desiredCount"] == stack.service("users").desired_count
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] == d.MINIMUM_HEALTHY_PERCENT
    assert service["healthCheckGracePeriodSeconds"] == d.ECS_HEALTH_CHECK_GRACE_PERIOD
    params = template_parameters(stack, database=True)
    assert params["IdleTimeout"] == str(d.IDLE_TIMEOUT)
    assert params["DesyncMitigationMode"] == d.DESYNC_MITIGATION_MODE
    assert params["DropInvalidHeaderFields"] == "true"
    assert params["ListenerPort"] == str(d.LISTENER_PORT)


def test_target_groups_never_set_a_health_check_port() -> None:
    """ECS refuses an explicit HealthCheckPort with dynamic host ports (docs/ecs.md §F.2)."""
    stack = load_stack(ROOT / "stack.yaml")
    for service in stack.services:
        group = convert_target_group(service, Target("mf", "eu-west-1", OUTPUTS))
        assert "HealthCheckPort" not in group
        assert group["TargetType"] == "instance"


def test_the_rendered_template_has_one_task_role_per_service() -> None:
    stack = load_stack(ROOT / "stack.yaml")
    template = render_template(stack, load_template(default_template_path()))
    roles = {k for k, v in template["Resources"].items() if k.startswith("TaskRole")}
    assert roles == {"TaskRoleUsers", "TaskRoleThreads", "TaskRolePosts", "TaskRoleMonolith"}
    assert template["Outputs"]["TaskRolePostsArn"]["Value"] == {"Fn::GetAtt": ["TaskRolePosts", "Arn"]}
    assert "Policies" not in template["Resources"]["TaskRoleUsers"]["Properties"]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            Condition("path-pattern", ("/api/*",)),
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}},
        ),
        (
            Condition("host-header", ("*.example.com",)),
            {"Field": "host-header", "HostHeaderConfig": {"Values": ["*.example.com"]}},
        ),
        (
            Condition("http-header", ("a*",), header_name="X-Env"),
            {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["a*"]}},
        ),
        (
            Condition("http-request-method", ("GET", "HEAD")),
            {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET", "HEAD"]}},
        ),
        (
            Condition("query-string", query=(QueryPair("v", "2"), QueryPair(None, "debug"))),
            {
                "Field": "query-string",
                "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}, {"Value": "debug"}]},
            },
        ),
        (
            Condition("source-ip", ("10.0.0.0/8",)),
            {"Field": "source-ip", "SourceIpConfig": {"Values": ["10.0.0.0/8"]}},
        ),
    ],
    ids=["path-pattern", "host-header", "http-header", "http-request-method", "query-string", "source-ip"],
)
def test_convert_condition(condition: Condition, expected: dict[str, Any]) -> None:
    assert convert_condition(condition) == expected


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            Forward((WeightedTargetGroup("users", 1),)),
            {
                "Type": "forward",
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "<tg:users>", "Weight": 1}]},
            },
        ),
        (
            Forward(
                (WeightedTargetGroup("users", 9), WeightedTargetGroup("monolith", 1)), stickiness_duration=60
            ),
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": "<tg:users>", "Weight": 9},
                        {"TargetGroupArn": "<tg:monolith>", "Weight": 1},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 60},
                },
            },
        ),
        (
            FixedResponse(404, "application/json", '{"error": "gone"}'),
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "404",
                    "ContentType": "application/json",
                    "MessageBody": '{"error": "gone"}',
                },
            },
        ),
        (
            Redirect("HTTP_302", protocol="HTTPS", port="443"),
            {
                "Type": "redirect",
                "RedirectConfig": {
                    "Protocol": "HTTPS",
                    "Host": "#{host}",
                    "Port": "443",
                    "Path": "/#{path}",
                    "Query": "#{query}",
                    "StatusCode": "HTTP_302",
                },
            },
        ),
    ],
    ids=["forward", "weighted-sticky", "fixed-response", "redirect"],
)
def test_convert_action(action: Any, expected: dict[str, Any]) -> None:
    assert convert_action(action) == expected


@pytest.mark.parametrize(
    ("stack_name", "service", "expected"),
    [
        ("mf", "users", "mf-users"),
        ("a-very-long-stack-name-for-prod", "monolith", "a-very-long-stack-name-fo-"),
    ],
    ids=["short", "hashed"],
)
def test_target_group_names_fit_alb_limits(stack_name: str, service: str, expected: str) -> None:
    name = target_group_name(stack_name, service)
    assert len(name) <= 32
    assert name.startswith(expected)
    assert not name.endswith("-") and "--" not in name
    assert name != target_group_name(stack_name, "other")


def test_custom_command_services_get_their_command() -> None:
    stack = parse_stack(
        {"services": {"monolith": {}, "web": {"command": "python -m web"}}, "listener": {"rules": []}}
    )
    desired = render(stack, Target("mf", "eu-west-1", OUTPUTS, database=False))
    assert desired.task_definitions["web"]["containerDefinitions"][0]["command"] == ["python", "-m", "web"]
    assert "command" not in desired.task_definitions["monolith"]["containerDefinitions"][0]
    assert "secrets" not in desired.task_definitions["web"]["containerDefinitions"][0]


def test_the_template_creates_in_a_safe_order_and_a_secret_per_resource() -> None:
    resources = load_template(default_template_path())["Resources"]
    # The ALB and the instances need the internet gateway attached (and routed) first.
    assert resources["LoadBalancer"]["DependsOn"] == "GatewayAttachment"
    assert {"GatewayAttachment", "PublicDefaultRoute"} <= set(resources["AutoScalingGroup"]["DependsOn"])
    # The master's database; each resource's credentials generated, with the instance's address.
    assert resources["Database"]["Properties"]["DBName"] == "microforum"
    for resource in ("users", "threads", "posts"):
        secret = resources[f"Database{resource.capitalize()}Secret"]["Properties"]["GenerateSecretString"]
        assert json.loads(secret["SecretStringTemplate"]) == {"username": resource, "dbname": resource}
        assert secret["GenerateStringKey"] == "password"
        attachment = resources[f"Database{resource.capitalize()}SecretAttachment"]["Properties"]
        assert attachment["TargetId"] == {"Ref": "Database"}
    assert "DatabaseUrlSecret" not in resources  # no URL with the master's password in it
    # The data survives a deletion or a replacement of the instance.
    assert (
        resources["Database"]["DeletionPolicy"] == resources["Database"]["UpdateReplacePolicy"] == "Snapshot"
    )


def test_each_service_gets_its_own_database_secret_and_the_monolith_the_three() -> None:
    stack = load_stack(ROOT / "stack.yaml")
    desired = render(stack, Target("mf", "eu-west-1", OUTPUTS, database=True))
    secrets = {
        name: [
            (s["name"], s["valueFrom"].rsplit(":", 1)[-1]) for s in task["containerDefinitions"][0]["secrets"]
        ]
        for name, task in desired.task_definitions.items()
    }
    assert secrets == {
        "users": [("USERS_DATABASE_SECRET", "mf-db-users")],
        "threads": [("THREADS_DATABASE_SECRET", "mf-db-threads")],
        "posts": [("POSTS_DATABASE_SECRET", "mf-db-posts")],
        "monolith": [  # by name, as ECS returns them
            ("POSTS_DATABASE_SECRET", "mf-db-posts"),
            ("THREADS_DATABASE_SECRET", "mf-db-threads"),
            ("USERS_DATABASE_SECRET", "mf-db-users"),
        ],
        "db-setup": [
            ("DATABASE_SECRET", "mf-db-master"),
            ("POSTS_DATABASE_SECRET", "mf-db-posts"),
            ("THREADS_DATABASE_SECRET", "mf-db-threads"),
            ("USERS_DATABASE_SECRET", "mf-db-users"),
        ],
    }
    setup = desired.task_definitions["db-setup"]["containerDefinitions"][0]
    assert setup["command"] == ["microforum", "db-setup"] and "portMappings" not in setup
    assert desired.setup_run is not None and desired.setup_run["taskDefinition"] == "<td:db-setup>"
    for task in desired.task_definitions.values():
        (container,) = task["containerDefinitions"]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["PGSSLMODE"] == "require"  # every connection to RDS is encrypted
        assert "PGDATABASE" not in env
    without = render(stack, Target("mf", "eu-west-1", OUTPUTS, database=False))
    assert "db-setup" not in without.task_definitions and without.setup_run is None


def test_services_keep_connections_longer_than_the_alb() -> None:
    stack = load_stack(ROOT / "stack.yaml")
    desired = render(stack, Target("mf", "eu-west-1", OUTPUTS, database=True))
    for name in [s.name for s in stack.services]:
        (container,) = desired.task_definitions[name]["containerDefinitions"]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert float(env["IDLE_TIMEOUT"]) > stack.load_balancer.idle_timeout


def test_a_ca_bundle_makes_every_task_verify_the_servers_certificate() -> None:
    stack = replace(
        load_stack(ROOT / "stack.yaml"), database=Database("rds.pem", "-----BEGIN CERTIFICATE-----\n")
    )
    desired = render(stack, Target("mf", "eu-west-1", OUTPUTS, database=True))
    for task in desired.task_definitions.values():  # the services and db-setup
        env = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}
        assert env["PGSSLMODE"] == "verify-full"
        assert env["DATABASE_CA_BUNDLE"] == "-----BEGIN CERTIFICATE-----\n"
