"""plan's steps whole for the HTTPS listeners (the internal HTTP listener, the redirect created,
replaced or corrected) and for canary/linear services (what ECS leaves behind after a deploy
is no change; going back to rolling is). Socket-free: remote state as dicts."""

from __future__ import annotations

from typing import Any

from test_plan import CERT, InMemoryAws, converge, desired_for

from microforum.deploy.plan import Step, known_refs, plan
from microforum.deploy.render import Desired
from microforum.deploy.steps import RemoteState

POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ROLE = "arn:role/ecs"


def _https() -> Desired:
    return desired_for(lambda data: data["listener"].update(certificate_arn=CERT))


def _canary(data: dict[str, Any]) -> None:
    data["services"]["users"]["deployment"] = {"strategy": "canary", "canary_percent": 10, "bake_minutes": 3}


def _listener_steps(steps: list[Step]) -> list[Step]:
    return [s for s in steps if s.resource == "listener"]


def test_the_first_https_deploy_creates_three_listeners_and_the_rules_on_both() -> None:
    desired = _https()
    assert desired.internal is not None and desired.redirect is not None
    steps = plan(desired, RemoteState())
    assert _listener_steps(steps) == [
        Step("create", "listener", "HTTPS:443", "elbv2.create_listener", desired.listener, "<listener>",
             f"forward to monolith, {POLICY}"),
        Step("create", "listener", "HTTP:8080", "elbv2.create_listener", desired.internal,
             "<listener:services>", "forward to monolith"),
        Step("create", "listener", "HTTP:80", "elbv2.create_listener", desired.redirect,
             detail="301 to HTTPS:443"),
    ]  # fmt: skip
    rules = [(s.message, s.params["ListenerArn"]) for s in steps if s.resource == "listener rule"]
    assert rules[3:] == [
        ("create listener rule priority 1 on HTTP:8080: path-pattern /api/users* -> forward to users",
         "<listener:services>"),
        ("create listener rule priority 2 on HTTP:8080: path-pattern /api/threads* -> forward to threads",
         "<listener:services>"),
        ("create listener rule priority 3 on HTTP:8080: path-pattern /api/posts* -> forward to posts",
         "<listener:services>"),
    ]  # fmt: skip
    assert [arn for _, arn in rules[:3]] == ["<listener>"] * 3


def _made(want: dict[str, Any], arn: str) -> dict[str, Any]:
    return {**want, "ListenerArn": arn}


def test_an_http_deploy_moved_to_https_replaces_its_forwarding_listener_by_the_redirect() -> None:
    http = desired_for()
    desired = _https()
    assert desired.redirect is not None and desired.internal is not None
    old = _made(http.listener, "arn:listener/old")
    internal = _made(desired.internal, "arn:listener/internal")
    steps = _listener_steps(plan(desired, RemoteState(redirect=old, internal=internal)))
    assert steps[1:] == [
        Step("delete", "listener", "HTTP:80", "elbv2.delete_listener", {"ListenerArn": "arn:listener/old"},
             detail="HTTPS:443 carries the rules now"),
        Step("create", "listener", "HTTP:80", "elbv2.create_listener", desired.redirect,
             detail="301 to HTTPS:443"),
    ]  # fmt: skip
    assert steps[0].name == "HTTPS:443"  # created; the internal listener exists as wanted


def test_a_redirect_changed_by_hand_is_corrected_in_place() -> None:
    desired = _https()
    assert desired.redirect is not None
    want = desired.redirect["DefaultActions"]
    found = [{"Type": "redirect", "RedirectConfig": {**want[0]["RedirectConfig"], "Port": "8443"}}]
    have = {**_made(desired.redirect, "arn:listener/redirect"), "DefaultActions": found}
    (step,) = [s for s in _listener_steps(plan(desired, RemoteState(redirect=have))) if s.name == "HTTP:80"]
    assert step == Step(
        "change", "listener", "HTTP:80", "elbv2.modify_listener",
        {"ListenerArn": "arn:listener/redirect", "Protocol": "HTTP", "DefaultActions": want},
        detail="301 to HTTPS:443", changes=("DefaultActions.RedirectConfig.Port 8443 → 443",),
    )  # fmt: skip


def test_the_internal_listener_and_its_rules_are_known_once_they_exist() -> None:
    desired = _https()
    assert desired.internal is not None
    internal = _made(desired.internal, "arn:listener/internal")
    steps = plan(desired, RemoteState(internal=internal))
    assert "HTTP:8080" not in [s.name for s in _listener_steps(steps)]
    on_internal = [s for s in steps if s.resource == "listener rule" and "HTTP:8080" in s.message]
    assert {s.params["ListenerArn"] for s in on_internal} == {"<listener:services>"}
    assert (
        known_refs(desired, RemoteState(internal=internal))["<listener:services>"] == "arn:listener/internal"
    )
    assert "<listener:services>" not in known_refs(desired_for(), RemoteState(internal=internal))


def _canary_deployed() -> tuple[Desired, InMemoryAws]:
    desired = desired_for(_canary, EcsInfrastructureRoleArn=ROLE)
    aws = InMemoryAws()
    converge(aws, desired)
    return desired, aws


def test_a_completed_canary_with_its_groups_swapped_is_no_change() -> None:
    desired, aws = _canary_deployed()
    (balancer,) = aws.services["users"]["loadBalancers"]
    config = balancer["advancedConfiguration"]
    assert config["productionListenerRule"] == next(
        r["RuleArn"] for r in aws.rules.values() if r["Priority"] == "1"
    )
    # ECS ends a canary with the service on the other group and all traffic there.
    balancer["targetGroupArn"], config["alternateTargetGroupArn"] = (
        config["alternateTargetGroupArn"], balancer["targetGroupArn"])  # fmt: skip
    rule = next(r for r in aws.rules.values() if r["Priority"] == "1")
    for group in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]:
        group["Weight"] = 1 - group["Weight"]
    assert plan(desired, aws.state()) == []


def test_a_canary_whose_alternate_group_was_changed_by_hand_is_set_back() -> None:
    desired, aws = _canary_deployed()
    (balancer,) = aws.services["users"]["loadBalancers"]
    balancer["advancedConfiguration"]["alternateTargetGroupArn"] = "arn:tg/elsewhere"
    (step,) = plan(desired, aws.state())
    assert (step.operation, step.name, step.detail) == ("ecs.update_service", "users", "loadBalancers")
    assert step.changes == (
        "loadBalancers.advancedConfiguration.alternateTargetGroupArn"
        " arn:tg/elsewhere → arn:tg/mf-users-alternate",
    )


def test_a_canary_back_to_rolling_drops_the_advanced_configuration() -> None:
    _, aws = _canary_deployed()
    rolling = desired_for(EcsInfrastructureRoleArn=ROLE)
    steps = [s for s in plan(rolling, aws.state()) if s.resource == "service"]
    assert [(s.name, s.detail) for s in steps] == [("users", "loadBalancers, deploymentConfiguration")]
    assert "advancedConfiguration" not in steps[0].params["loadBalancers"][0]


def test_a_service_without_load_balancers_gets_them() -> None:
    desired, aws = _canary_deployed()
    del aws.services["users"]["loadBalancers"]
    aws.services["threads"]["loadBalancers"] = []
    steps = plan(desired, aws.state())
    assert [(s.name, s.detail) for s in steps] == [("users", "loadBalancers"), ("threads", "loadBalancers")]
