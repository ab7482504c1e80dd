"""The parameters (not only the messages) of a threshold and a capacity-provider change, and the
check every call of test_plan.py's `InMemoryAws` passes (aws_model.py: botocore's service model,
its parameter validator): that it refuses what AWS would."""

from __future__ import annotations

from typing import Any

import pytest
from aws_model import refusal
from test_plan import InMemoryAws, _thresholds, converge, desired_for


def test_an_empty_account_gets_only_calls_aws_accepts() -> None:
    steps = converge(InMemoryAws(), desired_for())
    assert {s.operation.split(".")[0] for s in steps} == {"ecr", "ecs", "elbv2"}


def test_a_threshold_change_sends_the_whole_health_check() -> None:
    aws = InMemoryAws()
    converge(aws, desired_for())
    (step,) = converge(aws, desired_for(_thresholds))
    assert step.operation == "elbv2.modify_target_group"
    assert step.params["TargetGroupArn"] == "arn:tg/mf-posts"
    assert (step.params["HealthyThresholdCount"], step.params["UnhealthyThresholdCount"]) == (3, 4)
    assert step.params["HealthCheckPath"] == "/"


def test_a_capacity_provider_change_forces_a_new_deployment() -> None:
    aws = InMemoryAws()
    converge(aws, desired_for())
    steps = converge(aws, desired_for(CapacityProviderName="cp-2"))
    assert [(s.operation, s.params["service"]) for s in steps] == [
        ("ecs.update_service", name) for name in ("users", "threads", "posts", "monolith")
    ]
    for step in steps:
        assert dict(step.params) == {
            "cluster": "c",
            "service": step.params["service"],
            "capacityProviderStrategy": [{"capacityProvider": "cp-2", "weight": 1, "base": 0}],
            "forceNewDeployment": True,
        }


UPDATE = "ecs.update_service"


@pytest.mark.parametrize(
    ("operation_name", "params", "problem"),
    [
        (
            UPDATE,
            {"cluster": "c", "service": "s", "desiredCount": "1"},
            "Invalid type for parameter desiredCount",
        ),
        (UPDATE, {"cluster": "c"}, 'Missing required parameter in input: "service"'),
        (UPDATE, {"cluster": "c", "service": "s", "desired": 1}, 'Unknown parameter in input: "desired"'),
        (UPDATE, {"cluster": "c", "service": ""}, "required service is empty"),
        (
            "elbv2.create_rule",
            {"ListenerArn": "l", "Priority": 1, "Conditions": [], "Actions": [{}]},
            'Missing required parameter in Actions[0]: "Type"',
        ),
    ],
)
def test_the_check_refuses_what_aws_would(operation_name: str, params: dict[str, Any], problem: str) -> None:
    assert problem in refusal(operation_name, params)
