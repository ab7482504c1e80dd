"""The local ALB and the AWS deployment are built from the same stack.yaml and cannot drift.

Two checks, for the repository's stack.yaml and for a stack using every condition and action:
- the rules deploy would create on AWS (`deploy.render`), read back into listener rules, route
  a table of requests exactly as the local load balancer's own router does, rule for rule;
- each target group's health check on AWS (`CreateTargetGroup` arguments) has the settings the
  local load balancer checks its targets with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from microforum.deploy.names import tg_ref
from microforum.deploy.render import Target, render
from microforum.lb.balancer import LoadBalancer
from microforum.lb.rules import RequestView, Router
from microforum.spec import load_stack, parse_stack
from microforum.spec.model import (
    Action,
    Condition,
    FixedResponse,
    Forward,
    Listener,
    QueryPair,
    Redirect,
    Rule,
    Stack,
    WeightedTargetGroup,
)

ROOT = Path(__file__).resolve().parents[1]

RICH: dict[str, Any] = {
    "services": {"users": None, "threads": None, "posts": None, "monolith": None},
    "listener": {
        "default_action": {"forward": "monolith"},
        "rules": [
            {
                "priority": 1,
                "conditions": [{"path_pattern": ["/api/users*"]}],
                "action": {"forward": "users"},
            },
            {
                "priority": 2,
                "conditions": [{"path_pattern": ["/api/threads*"]}],
                "action": {"forward": "threads"},
            },
            {
                "priority": 3,
                "conditions": [{"path_pattern": ["/api/posts*"]}],
                "action": {"forward": "posts"},
            },
            {
                "priority": 4,
                "conditions": [
                    {"host_header": ["beta.*.example.com"]},
                    {"http_request_method": ["GET", "HEAD"]},
                ],
                "action": {
                    "forward": {
                        "target_groups": [{"name": "users", "weight": 1}, {"name": "monolith", "weight": 3}],
                        "stickiness": {"duration": 300},
                    }
                },
            },
            {
                "priority": 5,
                "conditions": [{"http_header": {"name": "X-Canary", "values": ["yes"]}}],
                "action": {"forward": "posts"},
            },
            {
                "priority": 6,
                "conditions": [{"query_string": [{"key": "legacy", "value": "1"}, {"value": "old*"}]}],
                "action": {"redirect": {"path": "/v2/#{path}", "status_code": "HTTP_302"}},
            },
            {
                "priority": 7,
                "conditions": [{"source_ip": ["10.0.0.0/8"]}, {"path_pattern": ["/admin*"]}],
                "action": {"fixed_response": {"status_code": 403, "message_body": "no"}},
            },
        ],
    },
}

REQUESTS = [
    RequestView("GET", "/api/users", "", "app.example.com"),
    RequestView("GET", "/api/users/1", "", None),
    RequestView("POST", "/api/threads", "", None),
    RequestView("GET", "/api/posts/in-thread/1", "", None),
    RequestView("GET", "/API/users", "", None),
    RequestView("GET", "/", "", None),
    RequestView("GET", "/api/", "", None),
    RequestView("GET", "/home", "", "beta.eu.example.com"),
    RequestView("POST", "/home", "", "beta.eu.example.com"),
    RequestView("GET", "/home", "", "example.com", headers=[(b"x-canary", b"YES")]),
    RequestView("GET", "/x", "legacy=1", None),
    RequestView("GET", "/x", "a=older", None),
    RequestView("GET", "/x", "a=new", None),
    RequestView("GET", "/admin/panel", "", None, source_ip="10.1.2.3"),
    RequestView("GET", "/admin/panel", "", None, source_ip="192.0.2.7"),
]


def _stacks() -> list[Stack]:
    return [load_stack(ROOT / "stack.yaml"), parse_stack(RICH)]


def _aws_condition(doc: dict[str, Any]) -> Condition:
    field = doc["Field"]
    if field == "http-header":
        config = doc["HttpHeaderConfig"]
        return Condition(field, tuple(config["Values"]), header_name=config["HttpHeaderName"])
    if field == "query-string":
        pairs = doc["QueryStringConfig"]["Values"]
        return Condition(field, query=tuple(QueryPair(p.get("Key"), p["Value"]) for p in pairs))
    config_key = {
        "path-pattern": "PathPatternConfig",
        "host-header": "HostHeaderConfig",
        "http-request-method": "HttpRequestMethodConfig",
        "source-ip": "SourceIpConfig",
    }[field]
    return Condition(field, tuple(doc[config_key]["Values"]))


def _aws_action(doc: dict[str, Any], names: dict[str, str]) -> Action:
    if doc["Type"] == "forward":
        config = doc["ForwardConfig"]
        groups = tuple(
            WeightedTargetGroup(names[g["TargetGroupArn"]], g["Weight"]) for g in config["TargetGroups"]
        )
        sticky = config.get("TargetGroupStickinessConfig")
        return Forward(groups, sticky["DurationSeconds"] if sticky and sticky["Enabled"] else None)
    if doc["Type"] == "fixed-response":
        fixed = doc["FixedResponseConfig"]
        return FixedResponse(int(fixed["StatusCode"]), fixed["ContentType"], fixed.get("MessageBody", ""))
    r = doc["RedirectConfig"]
    return Redirect(r["StatusCode"], r["Protocol"], r["Host"], r["Port"], r["Path"], r["Query"])


def _listener_as_deployed(stack: Stack) -> Listener:
    """The listener deploy would create, read back from its API arguments."""
    desired = render(stack, Target(stack_name="parity", region="us-east-1"))
    # Target group ARNs are placeholders until deploy creates them; map each back to its name.
    names = {tg_ref(s.name): s.name for s in stack.services}
    rules = tuple(
        Rule(
            doc["Priority"],
            tuple(_aws_condition(c) for c in doc["Conditions"]),
            _aws_action(doc["Actions"][-1], names),
        )
        for doc in desired.rules
    )
    return Listener(
        port=desired.listener["Port"],
        default_action=_aws_action(desired.listener["DefaultActions"][-1], names),
        rules=rules,
    )


@pytest.mark.parametrize("stack", _stacks(), ids=["stack.yaml", "every-condition-and-action"])
def test_aws_rules_route_every_request_as_the_local_balancer_does(stack: Stack) -> None:
    local = LoadBalancer(stack).ctx.router
    deployed = Router(_listener_as_deployed(stack))
    assert [p for p, _, _ in deployed.rules] == [p for p, _, _ in local.rules]
    for request in REQUESTS:
        assert deployed.match(request) == local.match(request), (request.method, request.path)
    # the table exercises every rule and the default action, so a dropped rule would show
    hit = {local.match(request)[0] for request in REQUESTS}
    assert hit == {0} | {rule.priority for rule in stack.listener.rules}


@pytest.mark.parametrize("stack", _stacks(), ids=["stack.yaml", "every-condition-and-action"])
def test_aws_health_checks_are_the_local_ones(stack: Stack) -> None:
    desired = render(stack, Target(stack_name="parity", region="us-east-1"))
    for name, group in LoadBalancer(stack).groups.items():
        hc, aws = group.spec.health_check, desired.target_groups[name]
        assert (aws["HealthCheckPath"], aws["Matcher"]["HttpCode"]) == (hc.path, hc.success_codes)
        assert (aws["HealthCheckIntervalSeconds"], aws["HealthCheckTimeoutSeconds"]) == (
            hc.interval,
            hc.timeout,
        )
        assert (aws["HealthyThresholdCount"], aws["UnhealthyThresholdCount"]) == (
            hc.healthy_threshold,
            hc.unhealthy_threshold,
        )
        attributes = {a["Key"]: a["Value"] for a in desired.target_group_attributes[name]}
        assert attributes["deregistration_delay.timeout_seconds"] == str(group.spec.deregistration_delay)
        assert attributes["load_balancing.algorithm.type"] == group.spec.algorithm
