"""Every call a plan makes, checked against botocore's own service model (its parameter
validator: names, types, required members), so no step can hold a parameter AWS would refuse;
plus the parameters (not only the messages) of a threshold and a capacity-provider change.

The in-memory account is test_plan.py's `InMemoryAws`; this file only wraps it with the check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name
from botocore.model import OperationModel
from botocore.validate import ParamValidator
from deploy_helpers import ROOT
from test_plan import OUTPUTS, InMemoryAws

from microforum.deploy.plan import known_refs, plan, plan_repositories
from microforum.deploy.render import Desired, Target, render
from microforum.deploy.steps import Step, resolve
from microforum.spec.load import parse_stack

Edit = Callable[[dict[str, Any]], None] | None


@functools.cache
def operation(name: str) -> OperationModel:
    """botocore's model of "<client>.<method>", e.g. "elbv2.create_rule"."""
    client, method = name.split(".")
    model = botocore.session.get_session().get_service_model(client)
    by_method = {xform_name(op): op for op in model.operation_names}
    return model.operation_model(by_method[method])


def refusal(name: str, params: Mapping[str, Any]) -> str:
    """What AWS's SDK would refuse in this call ("" when nothing)."""
    shape = operation(name).input_shape
    report = ParamValidator().validate(dict(params), shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += [f"required {key} is empty" for key in shape.required_members if params.get(key) == ""]
    return "; ".join(problems)


class CheckedAws(InMemoryAws):
    """The in-memory account, refusing any call botocore's model would refuse."""

    def apply(self, desired: Desired, steps: list[Step]) -> None:
        refs = known_refs(desired, self.state())
        for step in steps:
            problem = refusal(step.operation, resolve(step.params, refs))
            assert not problem, f"{step.message}: {step.operation}: {problem}"
        super().apply(desired, steps)


def desired(edit: Edit = None, **outputs: str) -> Desired:
    data = yaml.safe_load((ROOT / "stack.yaml").read_text())
    if edit:
        edit(data)
    target = Target("mf", "eu-west-1", {**OUTPUTS, **outputs}, {"users": "img:1"}, database=False)
    return render(parse_stack(data), target)


def converge(aws: CheckedAws, want: Desired) -> list[Step]:
    steps = plan_repositories(want, aws.state()) + plan(want, aws.state())
    aws.apply(want, steps)
    assert plan_repositories(want, aws.state()) + plan(want, aws.state()) == []
    return steps


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        if isinstance(node, list):
            node.insert(int(last), value)
        else:
            node[last] = value

    return edit


def _swap_rules(data: dict[str, Any]) -> None:
    rules = data["listener"]["rules"]
    rules[0]["priority"], rules[1]["priority"] = rules[1]["priority"], rules[0]["priority"]


def _remove_posts(data: dict[str, Any]) -> None:
    del data["services"]["posts"]
    del data["listener"]["rules"][2]


EDITS = {
    "swap-rules": _swap_rules,
    "health-check": _set("services.posts.health_check.path", "/health"),
    "thresholds": _set("services.posts.health_check", {"healthy_threshold": 3, "unhealthy_threshold": 4}),
    "deregistration-delay": _set("services.posts.deregistration_delay", 5),
    "desired-count": _set("services.posts.desired_count", 4),
    "environment": _set("services.posts.environment", {"LOG_LEVEL": "debug"}),
    "deployment": _set("services.posts.deployment", {"minimum_healthy_percent": 50, "maximum_percent": 150}),
    "default-action": _set("listener.default_action", {"fixed_response": {"status_code": 404}}),
    "new-rule": _set(
        "listener.rules.3",
        {
            "priority": 4,
            "conditions": [{"source_ip": ["10.0.0.0/8"]}],
            "action": {"redirect": {"protocol": "HTTPS"}},
        },
    ),
    "retarget-rule": _set(
        "listener.rules.2.action", {"fixed_response": {"status_code": 503, "message_body": "x"}}
    ),
    "remove-service": _remove_posts,
}


def test_an_empty_account_gets_only_calls_aws_accepts() -> None:
    steps = converge(CheckedAws(), desired())
    assert {s.operation.split(".")[0] for s in steps} == {"ecr", "ecs", "elbv2"}


@pytest.mark.parametrize("edit", list(EDITS.values()), ids=list(EDITS))
def test_every_change_makes_only_calls_aws_accepts(edit: Edit) -> None:
    aws = CheckedAws()
    converge(aws, desired())
    assert converge(aws, desired(edit))


def test_a_threshold_change_sends_the_whole_health_check() -> None:
    aws = CheckedAws()
    converge(aws, desired())
    (step,) = converge(aws, desired(EDITS["thresholds"]))
    assert step.operation == "elbv2.modify_target_group"
    assert step.params["TargetGroupArn"] == "arn:tg/mf-posts"
    assert (step.params["HealthyThresholdCount"], step.params["UnhealthyThresholdCount"]) == (3, 4)
    assert step.params["HealthCheckPath"] == "/"


def test_a_capacity_provider_change_forces_a_new_deployment() -> None:
    aws = CheckedAws()
    converge(aws, desired())
    steps = converge(aws, desired(CapacityProviderName="cp-2"))
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
