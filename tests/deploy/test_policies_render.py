"""The production policies rendered for AWS (deploy/policies.py): a golden file, every request
validated against botocore's own model of the API it is for, and tables for the choices.

Regenerate the golden file after an intended change with
`MICROFORUM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/deploy/test_policies_render.py`.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from microforum.deploy.policies import (
    convert_deployment_configuration,
    render_policies,
)
from microforum.deploy.render import Target, template_parameters
from microforum.spec import defaults as d
from microforum.spec.load import parse_stack

GOLDEN = Path(__file__).with_name("golden") / "policies.json"
UPDATE = os.environ.get("MICROFORUM_UPDATE_GOLDEN") == "1"
ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
OUTPUTS = {
    "ClusterName": "mf-cluster",
    "LoadBalancerArn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/mf/abc",
    "EcsInfrastructureRoleArn": "arn:aws:iam::123456789012:role/mf-ecs-infrastructure",
}
DOC: dict[str, Any] = {
    "name": "mf",
    "services": {
        "users": {"autoscaling": {"min": 2, "max": 10, "requests_per_target": 1000, "cpu_percent": 60},
                  "deployment": {"strategy": "canary"}},
        "threads": {"deployment": {"strategy": "linear", "step_percent": 25, "bake_minutes": 2},
                    "alarms": {"error_percent": 2.5, "p99_seconds": 0.5}},
        "posts": {"autoscaling": {"min": 1, "max": 3, "cpu_percent": 70}},
        "monolith": None,
    },
    "listener": {"certificate_arn": ARN},
    "cluster": {"instance_type": "t3.medium", "min_instances": 2, "max_instances": 8},
}  # fmt: skip


def _rendered(doc: dict[str, Any] = DOC) -> dict[str, Any]:
    return render_policies(parse_stack(copy.deepcopy(doc)), Target("mf", "eu-west-1", OUTPUTS))


def test_policies_match_the_golden_file() -> None:
    text = json.dumps(_rendered(), indent=2, sort_keys=True) + "\n"
    if UPDATE:
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "policies differ from the golden file (MICROFORUM_UPDATE_GOLDEN=1)"


def _validate(service: str, operation: str, params: dict[str, Any]) -> None:
    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    assert not report.has_errors(), f"{service} {operation}: {report.generate_report()}"


def test_every_request_is_valid_for_its_api() -> None:
    rendered = _rendered()
    for listener in rendered["listeners"]:
        _validate("elbv2", "CreateListener", listener)
    _validate("cloudwatch", "PutDashboard", rendered["dashboard"])
    for name, service in rendered["services"].items():
        if service["scalable_target"] is not None:
            _validate("application-autoscaling", "RegisterScalableTarget", service["scalable_target"])
        for policy in service["scaling_policies"]:
            _validate("application-autoscaling", "PutScalingPolicy", policy)
        for alarm in service["alarms"]:
            _validate("cloudwatch", "PutMetricAlarm", alarm)
        _validate("ecs", "UpdateService", {
            "cluster": "mf-cluster", "service": name,
            "deploymentConfiguration": service["deploymentConfiguration"],
            "loadBalancers": service["loadBalancers"],
        })  # fmt: skip


def test_https_listener_and_the_redirect() -> None:
    https, services, http = _rendered()["listeners"]
    assert (https["Protocol"], https["Port"], https["SslPolicy"]) == ("HTTPS", 443, d.TLS_POLICY)
    assert https["Certificates"] == [{"CertificateArn": ARN}]
    assert https["DefaultActions"][0]["Type"] == "forward"
    # the services' own calls (their client has no TLS) keep a plain-HTTP listener
    assert (services["Protocol"], services["Port"]) == ("HTTP", d.INTERNAL_LISTENER_PORT)
    assert services["DefaultActions"] == https["DefaultActions"] and "Certificates" not in services
    assert (http["Protocol"], http["Port"]) == ("HTTP", 80)
    assert http["DefaultActions"] == [{"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}",
        "StatusCode": "HTTP_301"}}]  # fmt: skip
    plain = {**DOC, "listener": {}}
    (only,) = _rendered(plain)["listeners"]
    assert (only["Protocol"], only["Port"]) == ("HTTP", 80)


def test_strategies_and_alarm_names_in_the_deployment_configuration() -> None:
    stack = parse_stack(copy.deepcopy(DOC))
    users = convert_deployment_configuration("mf", stack.service("users"))
    assert (users["strategy"], users["canaryConfiguration"]) == (
        "CANARY",
        {"canaryPercent": d.CANARY_PERCENT, "canaryBakeTimeInMinutes": d.CANARY_BAKE_MINUTES},
    )
    assert users["alarms"] == {
        "alarmNames": [
            "mf-users-target-5xx",
            "mf-users-unhealthy-hosts",
            "mf-users-p99-latency",
            "mf-users-error-rate",
        ],
        "enable": True,
        "rollback": True,
    }
    threads = convert_deployment_configuration("mf", stack.service("threads"))
    assert threads["linearConfiguration"] == {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2}
    monolith = convert_deployment_configuration("mf", stack.service("monolith"))
    assert monolith["strategy"] == "ROLLING" and "canaryConfiguration" not in monolith
    services = _rendered()["services"]
    assert services["monolith"]["scalable_target"] is None and services["monolith"]["scaling_policies"] == []
    assert "advancedConfiguration" in services["users"]["loadBalancers"][0]
    assert "advancedConfiguration" not in services["monolith"]["loadBalancers"][0]
    configs = [p["TargetTrackingScalingPolicyConfiguration"] for p in services["users"]["scaling_policies"]]
    kinds = [c["PredefinedMetricSpecification"]["PredefinedMetricType"] for c in configs]
    assert kinds == ["ALBRequestCountPerTarget", "ECSServiceAverageCPUUtilization"]


def test_the_cluster_key_drives_the_template_parameters() -> None:
    params = template_parameters(parse_stack(copy.deepcopy(DOC)), database=True)
    assert (params["InstanceType"], params["MinSize"], params["MaxSize"]) == ("t3.medium", "2", "8")
