"""plan: desired vs an in-memory remote state (chalice's InMemoryRemoteState idea).

`InMemoryAws` applies a plan's steps to plain dicts the way the AWS APIs would, so each table
case can check both the steps and that planning again afterwards gives an empty plan. It first
checks every call against botocore's service model (aws_model.py), so no step can hold a
parameter AWS would refuse.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_model import refusal
from deploy_helpers import ROOT, SERVICES

from microforum.deploy.names import SETUP_DONE, SETUP_TAG
from microforum.deploy.plan import RemoteState, Step, known_refs, plan, plan_repositories, resolve, subset
from microforum.deploy.render import Desired, Target, render
from microforum.spec.load import parse_stack

OUTPUTS = {
    "VpcId": "vpc-1", "ClusterName": "c", "CapacityProviderName": "cp", "LoadBalancerArn": "arn:lb",
    "LoadBalancerDnsName": "lb.example", "ExecutionRoleArn": "arn:exec", "LogGroupName": "logs",
}  # fmt: skip


class InMemoryAws:
    """Remote state as dicts; `apply(steps)` mutates it like the real APIs, after checking each
    call as AWS's SDK would (names, types, required members)."""

    def __init__(self) -> None:
        self.repositories: dict[str, dict[str, Any]] = {}
        self.task_definitions: dict[str, dict[str, Any]] = {}
        self.target_groups: dict[str, dict[str, Any]] = {}
        self.listener: dict[str, Any] | None = None
        self.other_listeners: dict[str, dict[str, Any]] = {}  # ARN -> a listener on another port
        self.rules: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)
        self.calls: list[str] = []

    def state(self) -> RemoteState:
        return RemoteState(
            repositories=self.repositories, task_definitions=self.task_definitions,
            target_groups=self.target_groups, listener=self.listener,
            rules=tuple(self.rules.values()), other_listeners=tuple(self.other_listeners.values()),
            services=self.services,
        )  # fmt: skip

    def apply(self, desired: Desired, steps: list[Step]) -> None:
        refs = known_refs(desired, self.state())
        for step in steps:
            self.calls.append(step.operation)
            params = resolve(step.params, refs)
            problem = refusal(step.operation, params)
            assert not problem, f"{step.message}: {step.operation}: {problem}"
            produced = getattr(self, step.operation.replace(".", "_"))(**params)
            if step.produces:
                refs[step.produces] = produced

    def ecr_create_repository(self, **p: Any) -> None:
        self.repositories[p["repositoryName"]] = dict(p)

    def ecr_put_lifecycle_policy(self, repositoryName: str, lifecyclePolicyText: str) -> None:
        self.repositories[repositoryName]["lifecyclePolicyText"] = lifecyclePolicyText

    def ecr_put_image_tag_mutability(self, repositoryName: str, imageTagMutability: str) -> None:
        self.repositories[repositoryName]["imageTagMutability"] = imageTagMutability

    def ecr_put_image_scanning_configuration(
        self, repositoryName: str, imageScanningConfiguration: dict[str, bool]
    ) -> None:
        self.repositories[repositoryName]["imageScanningConfiguration"] = imageScanningConfiguration

    def ecs_register_task_definition(self, **p: Any) -> str:
        arn = f"arn:td/{p['family']}:{next(self.ids)}"
        self.task_definitions[p["family"]] = {**p, "taskDefinitionArn": arn, "revision": 1}
        return arn

    def elbv2_create_target_group(self, **p: Any) -> str:
        arn = f"arn:tg/{p['Name']}"
        self.target_groups[p["Name"]] = {
            **p,
            "TargetGroupArn": arn,
            "HealthCheckPort": "traffic-port",
            "Attributes": {},
        }
        return arn

    def _tg(self, arn: str) -> dict[str, Any]:
        return next(g for g in self.target_groups.values() if g["TargetGroupArn"] == arn)

    def elbv2_modify_target_group_attributes(
        self, TargetGroupArn: str, Attributes: list[dict[str, str]]
    ) -> None:
        self._tg(TargetGroupArn)["Attributes"].update({a["Key"]: a["Value"] for a in Attributes})

    def elbv2_modify_target_group(self, TargetGroupArn: str, **p: Any) -> None:
        self._tg(TargetGroupArn).update(p)

    def elbv2_delete_target_group(self, TargetGroupArn: str) -> None:
        self.target_groups = {
            k: v for k, v in self.target_groups.items() if v["TargetGroupArn"] != TargetGroupArn
        }

    def elbv2_create_listener(self, **p: Any) -> str:
        self.listener = {**p, "ListenerArn": "arn:listener"}
        return "arn:listener"

    def elbv2_modify_listener(self, ListenerArn: str, **p: Any) -> None:
        assert self.listener is not None
        self.listener.update(p)

    def elbv2_delete_listener(self, ListenerArn: str) -> None:
        del self.other_listeners[ListenerArn]

    def elbv2_create_rule(self, ListenerArn: str, Priority: int, **p: Any) -> str:
        assert ListenerArn == "arn:listener"
        assert all(int(r["Priority"]) != Priority for r in self.rules.values()), f"priority {Priority} in use"
        arn = f"arn:rule/{next(self.ids)}"
        self.rules[arn] = {**p, "RuleArn": arn, "Priority": str(Priority)}
        return arn

    def elbv2_modify_rule(self, RuleArn: str, **p: Any) -> None:
        self.rules[RuleArn].update(p)

    def elbv2_delete_rule(self, RuleArn: str) -> None:
        del self.rules[RuleArn]

    def elbv2_set_rule_priorities(self, RulePriorities: list[dict[str, Any]]) -> None:
        moving = {p["RuleArn"] for p in RulePriorities}
        for p in RulePriorities:  # ALB refuses a priority held by any rule, moving or not
            held = [r for r in self.rules.values() if int(r["Priority"]) == p["Priority"]]
            assert not held, f"priority {p['Priority']} in use"
            self.rules[p["RuleArn"]]["Priority"] = str(p["Priority"])
        assert moving <= set(self.rules)

    def ecs_run_task(self, taskDefinition: str, **p: Any) -> None:
        """A db-setup run that succeeds: its revision is tagged so (setup_task.py does it)."""
        task = next(t for t in self.task_definitions.values() if t["taskDefinitionArn"] == taskDefinition)
        task["tags"] = [*task.get("tags", []), {"key": SETUP_TAG, "value": SETUP_DONE}]

    def ecs_create_service(self, **p: Any) -> None:
        self.services[p["serviceName"]] = dict(p)

    def ecs_update_service(
        self, cluster: str, service: str, forceNewDeployment: bool = False, **p: Any
    ) -> None:
        self.services[service].update(p)

    def ecs_delete_service(self, cluster: str, service: str, force: bool) -> None:
        del self.services[service]


def desired_for(edit: Any = None, **outputs: str) -> Desired:
    """stack.yaml, edited, rendered with the cluster stack's outputs (some replaced)."""
    data = yaml.safe_load((ROOT / "stack.yaml").read_text())
    if edit:
        edit(data)
    target = Target("mf", "eu-west-1", {**OUTPUTS, **outputs}, {"users": "img:1"}, database=False)
    return render(parse_stack(data), target)


def converge(aws: InMemoryAws, desired: Desired) -> list[Step]:
    steps = plan_repositories(desired, aws.state()) + plan(desired, aws.state())
    aws.apply(desired, steps)
    assert plan_repositories(desired, aws.state()) + plan(desired, aws.state()) == [], (
        "a second plan must be empty"
    )
    return steps


def messages(steps: list[Step]) -> list[str]:
    return [s.message for s in steps]


def test_an_empty_account_gets_everything_in_a_safe_order() -> None:
    aws = InMemoryAws()
    steps = converge(aws, desired_for())
    order = [s.operation for s in steps]
    first = {op: order.index(op) for op in reversed(order)}
    assert (
        first["ecs.register_task_definition"]
        < first["elbv2.create_target_group"]
        < first["elbv2.create_listener"]
    )
    assert first["elbv2.create_listener"] < first["elbv2.create_rule"] < first["ecs.create_service"]
    assert "create listener rule priority 1: path-pattern /api/users* -> forward to users" in messages(steps)
    assert "create service users: 2 tasks" in messages(steps)
    assert sorted(int(r["Priority"]) for r in aws.rules.values()) == [1, 2, 3]


def _swap_users_threads(data: dict[str, Any]) -> None:
    rules = data["listener"]["rules"]
    rules[0]["priority"], rules[1]["priority"] = 2, 1


def _drop_posts_rule(data: dict[str, Any]) -> None:
    del data["listener"]["rules"][2]


def _move_posts_rule(data: dict[str, Any]) -> None:
    data["listener"]["rules"][2]["priority"] = 7


def _retarget_rule(data: dict[str, Any]) -> None:
    data["listener"]["rules"][2]["action"] = {"fixed_response": {"status_code": 503, "message_body": "later"}}


def _new_rule(data: dict[str, Any]) -> None:
    data["listener"]["rules"].append(
        {
            "priority": 4,
            "conditions": [{"source_ip": ["10.0.0.0/8"]}],
            "action": {"redirect": {"protocol": "HTTPS"}},
        }
    )


def _health_check(data: dict[str, Any]) -> None:
    data["services"]["posts"]["health_check"]["path"] = "/health"


def _thresholds(data: dict[str, Any]) -> None:
    data["services"]["posts"]["health_check"].update(healthy_threshold=3, unhealthy_threshold=4)


def _deregistration(data: dict[str, Any]) -> None:
    data["services"]["posts"]["deregistration_delay"] = 5


def _count(data: dict[str, Any]) -> None:
    data["services"]["posts"]["desired_count"] = 4


def _environment(data: dict[str, Any]) -> None:
    data["services"]["posts"]["environment"] = {"LOG_LEVEL": "debug"}


def _default_action(data: dict[str, Any]) -> None:
    data["listener"]["default_action"] = {"fixed_response": {"status_code": 404}}


def _remove_service(data: dict[str, Any]) -> None:
    del data["services"]["posts"]
    del data["listener"]["rules"][2]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (None, []),
        (_swap_users_threads, [
            "change listener rule priorities: 1->2, 2->1 (step 1 of 2: park)",
            "change listener rule priorities: 1->2, 2->1 (step 2 of 2)",
        ]),
        (_drop_posts_rule, ["delete listener rule priority 3: no longer in stack.yaml"]),
        (_move_posts_rule, ["change listener rule priorities: 3->7"]),
        (_retarget_rule, ["change listener rule priority 3: path-pattern /api/posts* -> fixed response 503"]),
        (_new_rule, ["create listener rule priority 4: source-ip 10.0.0.0/8 -> redirect HTTP_301"]),
        (_health_check, [
            "change target group mf-posts: health check /health every 6s, timeout 5s, healthy 2, unhealthy 2, codes 200",  # noqa: E501
        ]),
        (_thresholds, [
            "change target group mf-posts: health check / every 6s, timeout 5s, healthy 3, unhealthy 4, codes 200",  # noqa: E501
        ]),
        ({"CapacityProviderName": "cp-2"}, [  # the cluster stack's outputs changed, not stack.yaml
            f"change service {name}: capacityProviderStrategy" for name in SERVICES
        ]),
        (_deregistration, [
            "change task definition mf-posts: new revision",
            "change target group mf-posts: deregistration_delay.timeout_seconds=5, load_balancing.algorithm.type=round_robin",  # noqa: E501
            "change service posts: taskDefinition",
        ]),
        (_count, ["change service posts: desiredCount"]),
        (_environment, ["change task definition mf-posts: new revision", "change service posts: taskDefinition"]),  # noqa: E501
        (_default_action, ["change listener HTTP:80: fixed response 404"]),
        (_remove_service, [
            "delete listener rule priority 3: no longer in stack.yaml",
            "change service posts: scale to 0 (no longer in stack.yaml)",
            "delete service posts",
            "delete target group mf-posts: no longer in stack.yaml",
        ]),
    ],
    ids=["nothing", "swap", "drop-rule", "move-rule", "retarget-rule", "new-rule", "health-check",
         "thresholds", "capacity-provider", "deregistration-delay", "desired-count", "environment",
         "default-action", "remove-service"],
)  # fmt: skip
def test_a_change_to_stack_yaml_plans_exactly_its_steps(edit: Any, expected: list[str]) -> None:
    """`edit` changes stack.yaml, or (a dict) the cluster stack's outputs."""
    aws = InMemoryAws()
    converge(aws, desired_for())
    steps = converge(aws, desired_for(**edit) if isinstance(edit, dict) else desired_for(edit))
    assert messages(steps) == expected


def test_repositories_created_by_hand_are_corrected() -> None:
    aws = InMemoryAws()
    aws.repositories["mf/users"] = {
        "repositoryName": "mf/users",
        "imageTagMutability": "MUTABLE",
        "imageScanningConfiguration": {"scanOnPush": False},
    }
    steps = plan_repositories(desired_for(), aws.state())
    assert [s.message for s in steps if s.name == "mf/users"] == [
        "change repository mf/users: immutable tags",
        "change repository mf/users: scan on push",
        "change repository mf/users: lifecycle policy",
    ]
    assert steps[0].changes == ("imageTagMutability MUTABLE → IMMUTABLE",)


@pytest.mark.parametrize(
    ("desired", "remote", "expected"),
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),
        ({"a": 1}, {"a": 2}, False),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, False),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 0}]}, True),
        ({"a": 1}, None, False),
    ],
    ids=["extra-remote-keys", "different", "list-length", "nested", "missing"],
)
def test_subset(desired: Any, remote: Any, expected: bool) -> None:
    assert subset(desired, remote) is expected


def test_steps_are_frozen_and_say_what_they_do(tmp_path: Path) -> None:
    step = Step("create", "target group", "mf-users", "elbv2.create_target_group", {}, detail="x")
    assert step.message == "create target group mf-users: x"
    with pytest.raises(AttributeError):
        step.verb = "delete"  # type: ignore[misc]


def test_each_changed_field_is_shown_before_and_after() -> None:
    aws = InMemoryAws()
    converge(aws, desired_for())

    def edit(data: dict[str, Any]) -> None:
        data["services"]["users"]["desired_count"] = 3
        data["services"]["users"]["health_check"]["interval"] = 10
        data["services"]["users"]["health_check"]["success_codes"] = "200-299"
        data["services"]["users"]["cpu"] = 512
        data["listener"]["default_action"] = {"forward": "users"}

    steps = converge(aws, desired_for(edit))
    shown = {s.message.partition(": ")[0]: s.changes for s in steps}
    assert shown["change target group mf-users"] == (
        "health_check.interval 6 → 10",
        "health_check.success_codes 200 → 200-299",
    )
    assert shown["change task definition mf-users"] == ("cpu 256 → 512",)
    assert shown["change listener HTTP:80"] == ("default action forward to monolith → forward to users",)
    assert shown["change service users"] == (
        "taskDefinition mf-users:1 → a new revision",
        "desired_count 2 → 3",
    )


def test_a_variable_the_new_revision_drops_is_shown() -> None:
    aws = InMemoryAws()
    converge(aws, desired_for())
    old = aws.task_definitions["mf-users"]["containerDefinitions"][0]
    old["environment"] = [*old["environment"], {"name": "PGDATABASE", "value": "users"}]
    steps = plan(desired_for(), aws.state())
    (step,) = [s for s in steps if s.name == "mf-users"]
    assert step.changes == ("environment.PGDATABASE users → (none)",)


CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def _with_certificate(arn: str) -> Any:
    return lambda data: data["listener"].update(certificate_arn=arn)


def _listeners_as_made(desired: Desired) -> dict[str, Any]:
    """The remote listeners as a finished HTTPS deploy leaves them (no rules, for brevity)."""
    assert desired.internal is not None and desired.redirect is not None
    made = {name: {**want, "ListenerArn": f"arn:listener/{name}"}
            for name, want in (("main", desired.listener), ("internal", desired.internal),
                               ("redirect", desired.redirect))}  # fmt: skip
    return made


def test_https_listeners_changed_in_place_say_before_and_after() -> None:
    desired = desired_for(_with_certificate(CERT))
    made = _listeners_as_made(desired)
    old = CERT.replace("0a1b2c3d", "ffffffff")
    made["main"] = {
        **made["main"],
        "Certificates": [{"CertificateArn": old}],
        "SslPolicy": "ELBSecurityPolicy-2016-08",
    }
    made["redirect"]["DefaultActions"] = [{"Type": "redirect", "RedirectConfig": {
        **desired.redirect["DefaultActions"][0]["RedirectConfig"], "StatusCode": "HTTP_302"}}]  # fmt: skip
    remote = RemoteState(listener=made["main"], internal=made["internal"], redirect=made["redirect"])
    steps = [s for s in plan(desired, remote) if s.resource == "listener"]
    assert [(s.operation, s.name) for s in steps] == [
        ("elbv2.modify_listener", "HTTPS:443"), ("elbv2.modify_listener", "HTTP:80")]  # fmt: skip
    certificate, policy = steps[0].changes  # (long values are cut at 60 characters)
    assert certificate.startswith(
        "Certificates.CertificateArn arn:aws:acm:eu-west-1:123456789012:certificate/ffffffff"
    )
    assert " → arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d" in certificate
    assert policy == "SslPolicy ELBSecurityPolicy-2016-08 → ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert steps[0].params["Certificates"] == [{"CertificateArn": CERT}]
    assert steps[1].params["DefaultActions"] == desired.redirect["DefaultActions"]
    assert steps[1].changes == ("DefaultActions.RedirectConfig.StatusCode HTTP_302 → HTTP_301",)
    fresh = _listeners_as_made(desired)
    in_place = RemoteState(listener=fresh["main"], internal=fresh["internal"], redirect=fresh["redirect"])
    assert [s for s in plan(desired, in_place) if s.resource == "listener"] == []


def _with_database() -> Desired:
    data = yaml.safe_load((ROOT / "stack.yaml").read_text())
    return render(parse_stack(data), Target("mf", "eu-west-1", OUTPUTS, {"users": "img:1"}, database=True))


def _setup_steps(remote: RemoteState, desired: Desired) -> list[str]:
    return [
        f"{s.operation} {s.name}"
        for s in plan(desired, remote)
        if "db-setup" in s.name or s.resource == "databases"
    ]


def test_db_setup_runs_before_the_services_until_a_run_of_its_revision_succeeded() -> None:
    desired = _with_database()
    register, run = "ecs.register_task_definition mf-db-setup", "ecs.run_task users, threads, posts"
    assert _setup_steps(RemoteState(), desired) == [register, run]
    steps = [s.operation for s in plan(desired, RemoteState())]
    assert steps.index("ecs.run_task") < steps.index("ecs.create_service")  # before any service

    task = {**desired.task_definitions["db-setup"], "taskDefinitionArn": "arn:td/mf-db-setup:1", "tags": []}
    registered = RemoteState(task_definitions={"mf-db-setup": task})
    assert _setup_steps(registered, desired) == [run]  # registered, never succeeded: run it again
    done = {**task, "tags": [{"key": "microforum:db-setup", "value": "succeeded"}]}
    assert _setup_steps(RemoteState(task_definitions={"mf-db-setup": done}), desired) == []
    changed = {**done, "containerDefinitions": [{**done["containerDefinitions"][0], "image": "img:0"}]}
    assert _setup_steps(RemoteState(task_definitions={"mf-db-setup": changed}), desired) == [register, run]
