"""stack.yaml's production policies: autoscaling, deployment strategy, alarms, cluster, HTTPS.

Defaults first, then every refusal as a table of (key path, value, the error line's problem).
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from microforum.spec import SpecError, parse_stack
from microforum.spec import defaults as d
from microforum.spec.model import Alarms, Autoscaling, Cluster

MINIMAL: dict[str, Any] = {"services": {name: None for name in d.BUILTIN_SERVICES}}
ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def _doc(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    node = doc
    keys = path.split(".")
    for key in keys[:-1]:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    return doc


def test_defaults_without_any_policy_key() -> None:
    stack = parse_stack(copy.deepcopy(MINIMAL))
    users = stack.service("users")
    assert users.autoscaling is None
    deployment = users.deployment
    assert (deployment.strategy, deployment.canary_percent, deployment.step_percent) == ("rolling", 5.0, 10.0)
    assert deployment.bake_minutes == d.CANARY_BAKE_MINUTES
    assert users.alarms == Alarms(10, 1, 2.0, 1.0, 60, 2, 3)
    assert stack.cluster == Cluster("t3.small", 1, 4)
    assert stack.listener.certificate_arn is None
    assert stack.local.time_scale == d.LOCAL_TIME_SCALE


@pytest.mark.parametrize(
    ("path", "value", "check"),
    [
        (
            "services.users.autoscaling",
            {"min": 1, "max": 4},
            lambda s: s.service("users").autoscaling == Autoscaling(1, 4, None, None),
        ),
        (
            "services.users.autoscaling",
            {"min": 2, "max": 2, "requests_per_target": 500, "cpu_percent": 60},
            lambda s: s.service("users").autoscaling == Autoscaling(2, 2, 500.0, 60.0),
        ),
        (
            "services.users.deployment",
            {"strategy": "linear"},
            lambda s: s.service("users").deployment.bake_minutes == 6,
        ),
        (
            "services.users.deployment",
            {"strategy": "canary", "canary_percent": 12.5, "bake_minutes": 0},
            lambda s: (
                (s.service("users").deployment.canary_percent, s.service("users").deployment.bake_minutes)
                == (12.5, 0)
            ),
        ),
        (
            "services.users.alarms",
            {"error_percent": 5, "datapoints": 1, "evaluation_periods": 1},
            lambda s: (
                (s.service("users").alarms.error_percent, s.service("users").alarms.datapoints) == (5.0, 1)
            ),
        ),
        (
            "cluster",
            {"instance_type": "m7g.large", "min_instances": 0, "max_instances": 10},
            lambda s: s.cluster == Cluster("m7g.large", 0, 10),
        ),
        ("listener.certificate_arn", ARN, lambda s: s.listener.certificate_arn == ARN),
        (
            "listener.certificate_arn",
            ARN.replace("arn:aws:", "arn:aws-us-gov:").replace("eu-west-1", "us-gov-west-1"),
            lambda s: s.listener.certificate_arn.startswith("arn:aws-us-gov:acm:"),
        ),
        ("local.time_scale", 600, lambda s: s.local.time_scale == 600.0),
    ],
)
def test_accepted(path: str, value: Any, check: Any) -> None:
    assert check(parse_stack(_doc(path, value)))


REFUSED = [
    (
        "services.users.autoscaling",
        {"max": 3},
        "services.users.autoscaling.min",
        "required when autoscaling is given",
    ),
    (
        "services.users.autoscaling",
        {"min": 1},
        "services.users.autoscaling.max",
        "required when autoscaling is given",
    ),
    (
        "services.users.autoscaling",
        {"min": 5, "max": 2},
        "services.users.autoscaling.min",
        "must not exceed max (2), got 5",
    ),
    (
        "services.users.autoscaling",
        {"min": 0, "max": 5001},
        "services.users.autoscaling.max",
        "must be 0..5000, got 5001",
    ),
    (
        "services.users.autoscaling",
        {"min": 1, "max": 2, "requests_per_target": 0},
        "services.users.autoscaling.requests_per_target",
        "must be 1..1000000, got 0",
    ),
    (
        "services.users.autoscaling",
        {"min": 1, "max": 2, "cpu_percent": 101},
        "services.users.autoscaling.cpu_percent",
        "must be 1..100, got 101",
    ),
    (
        "services.users.autoscaling",
        {"min": 1, "max": 2, "memory_percent": 50},
        "services.users.autoscaling.memory_percent",
        "unknown key, expected one of: min, max, requests_per_target, cpu_percent",
    ),
    (
        "services.users.deployment",
        {"strategy": "blue_green"},
        "services.users.deployment.strategy",
        "must be one of rolling, canary, linear, got 'blue_green'",
    ),
    (
        "services.users.deployment",
        {"canary_percent": 0},
        "services.users.deployment.canary_percent",
        "must be 0.1..100.0, got 0",
    ),
    (
        "services.users.deployment",
        {"canary_percent": 5.05},
        "services.users.deployment.canary_percent",
        "must be a multiple of 0.1, got 5.05",
    ),
    (
        "services.users.deployment",
        {"step_percent": 2},
        "services.users.deployment.step_percent",
        "must be 3.0..100.0, got 2",
    ),
    (
        "services.users.deployment",
        {"bake_minutes": 1441},
        "services.users.deployment.bake_minutes",
        "must be 0..1440, got 1441",
    ),
    ("services.users.alarms", {"datapoints": 4}, "services.users.alarms.datapoints", "must be 1..3, got 4"),
    (
        "services.users.alarms",
        {"error_percent": 101},
        "services.users.alarms.error_percent",
        "must be 0.0..100.0, got 101",
    ),
    (
        "cluster",
        {"min_instances": 5, "max_instances": 2},
        "cluster.min_instances",
        "min_instances (5) must not exceed max_instances (2)",
    ),
    ("cluster", {"min_instances": 0, "max_instances": 0}, "cluster.max_instances", "must be 1..1000, got 0"),
    (
        "cluster",
        {"instance_type": "big"},
        "cluster.instance_type",
        "must be an EC2 instance type like t3.small, got 'big'",
    ),
    (
        "listener.certificate_arn",
        "arn:aws:iam::123456789012:server-certificate/x",
        "listener.certificate_arn",
        "must be an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID),"
        " got 'arn:aws:iam::123456789012:server-certificate/x'",
    ),
    (
        "listener",
        {"certificate_arn": ARN, "port": 8080},
        "listener.port",
        "with certificate_arn, HTTPS takes 443 and the services' HTTP listener 8080; "
        "choose another port for the redirect, got 8080",
    ),
    ("local.time_scale", 0.5, "local.time_scale", "must be 1.0..10000.0, got 0.5"),
]


@pytest.mark.parametrize(("path", "value", "where", "problem"), REFUSED)
def test_refused(path: str, value: Any, where: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_stack(_doc(path, value))
    assert (caught.value.path, caught.value.problem) == (where, problem)


def test_cli_refuses_a_certificate_that_is_not_acm_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(_doc("listener.certificate_arn", "not-an-arn")))
    result = subprocess.run(
        [sys.executable, "-m", "microforum", "render"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[0]
        .startswith("microforum: stack.yaml: listener.certificate_arn: must be an ACM")
    )
    assert "Traceback" not in result.stderr
