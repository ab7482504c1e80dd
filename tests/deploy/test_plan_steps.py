"""plan's steps whole (verb, resource, name, operation, parameters, detail, changes), where
test_plan.py's table compares messages: the first deploy, an account changed by hand (a
listener left on an old port, actions in the shapes AWS returns, a revision not the latest),
secrets, and what AWS leaves out or reorders. Every call is checked by `InMemoryAws`."""

from __future__ import annotations

from typing import Any

import yaml
from deploy_helpers import ROOT, SERVICES
from test_plan import OUTPUTS, InMemoryAws, converge, desired_for

from microforum.deploy.plan import Step, normalize_task_definition, plan, plan_repositories
from microforum.deploy.render import Desired, Target, render
from microforum.spec.load import parse_stack

HEALTH = "health check / every 6s, timeout 5s, healthy 2, unhealthy 2, codes 200"
ATTRIBUTES = "deregistration_delay.timeout_seconds=30, load_balancing.algorithm.type=round_robin"


def with_database(edit: Any = None) -> Desired:
    """stack.yaml rendered for a stack with a database: each container gets a secret."""
    data = yaml.safe_load((ROOT / "stack.yaml").read_text())
    if edit:
        edit(data)
    outputs = {**OUTPUTS, "DatabaseUrlSecretArn": "arn:secret/db-1"}
    return render(parse_stack(data), Target("mf", "eu-west-1", outputs, {"users": "img:1"}, database=True))


def deployed(desired: Desired | None = None) -> InMemoryAws:
    aws = InMemoryAws()
    converge(aws, desired or desired_for())
    return aws


def test_the_first_deploy_says_what_it_creates() -> None:
    steps = converge(InMemoryAws(), desired_for())
    assert [(s.message, s.operation) for s in steps if s.resource != "listener rule"] == [
        *[
            step
            for name in SERVICES
            for step in (
                (f"create repository mf/{name}: scan on push, immutable tags", "ecr.create_repository"),
                (f"change repository mf/{name}: lifecycle policy", "ecr.put_lifecycle_policy"),
            )
        ],
        *[
            (f"create task definition mf-{name}: first revision", "ecs.register_task_definition")
            for name in SERVICES
        ],
        *[
            step
            for name in SERVICES
            for step in (
                (f"create target group mf-{name}: {HEALTH}", "elbv2.create_target_group"),
                (f"change target group mf-{name}: {ATTRIBUTES}", "elbv2.modify_target_group_attributes"),
            )
        ],
        ("create listener HTTP:80: forward to monolith", "elbv2.create_listener"),
        *[(f"create service {name}: 2 tasks", "ecs.create_service") for name in SERVICES[:3]],
        ("create service monolith: 1 tasks", "ecs.create_service"),
    ]


def test_repositories_created_by_hand_are_corrected_and_then_left_alone() -> None:
    aws = InMemoryAws()
    aws.repositories["mf/users"] = {
        "repositoryName": "mf/users",
        "imageTagMutability": "MUTABLE",
        "imageScanningConfiguration": {"scanOnPush": False},
    }
    steps = converge(aws, desired_for())
    fixes = [s for s in steps if s.name == "mf/users"]
    assert [(s.operation, dict(s.params)) for s in fixes[:2]] == [
        ("ecr.put_image_tag_mutability", {"repositoryName": "mf/users", "imageTagMutability": "IMMUTABLE"}),
        (
            "ecr.put_image_scanning_configuration",
            {"repositoryName": "mf/users", "imageScanningConfiguration": {"scanOnPush": True}},
        ),
    ]


def test_a_listener_left_on_another_port_is_deleted() -> None:
    aws = deployed()
    arn = "arn:listener/8080"
    aws.other_listeners[arn] = {"ListenerArn": arn, "Port": 8080, "Protocol": "HTTP"}
    assert converge(aws, desired_for()) == [
        Step(
            "delete", "listener", "HTTP:8080", "elbv2.delete_listener", {"ListenerArn": arn},
            detail="its port is no longer listener.port",
        )
    ]  # fmt: skip


def test_a_forward_action_in_aws_s_short_form_is_no_change() -> None:
    aws = deployed()
    assert aws.listener is not None
    aws.listener["DefaultActions"] = [{"Type": "forward", "TargetGroupArn": "arn:tg/mf-monolith"}]
    assert plan(desired_for(), aws.state()) == []


def test_a_default_action_changed_by_hand_is_named_before_and_after() -> None:
    aws = deployed()
    assert aws.listener is not None
    foreign = {
        "TargetGroups": [{"TargetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/legacy/0"}]
    }
    for action, before in [
        ({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}, "fixed response 404"),
        ({"Type": "forward", "ForwardConfig": foreign}, "forward to legacy"),  # a group stack.yaml never made
    ]:  # fmt: skip
        aws.listener["DefaultActions"] = [action]
        (step,) = converge(aws, desired_for())
        assert (step.message, step.changes) == (
            "change listener HTTP:80: forward to monolith",
            (f"default action {before} → forward to monolith",),
        )


def test_a_removed_service_is_scaled_to_zero_then_deleted_in_its_cluster() -> None:
    aws = deployed()

    def remove_posts(data: dict[str, Any]) -> None:
        del data["services"]["posts"]
        del data["listener"]["rules"][2]

    steps = converge(aws, desired_for(remove_posts))
    assert [(s.operation, dict(s.params)) for s in steps if s.resource == "service"] == [
        ("ecs.update_service", {"cluster": "c", "service": "posts", "desiredCount": 0}),
        ("ecs.delete_service", {"cluster": "c", "service": "posts", "force": True}),
    ]


def test_a_service_on_an_older_revision_is_moved_to_the_current_one() -> None:
    aws = deployed()
    users, threads = (aws.task_definitions[f"mf-{n}"]["taskDefinitionArn"] for n in ("users", "threads"))
    assert (users, threads) == ("arn:td/mf-users:1", "arn:td/mf-threads:2")
    aws.services["users"]["taskDefinition"] = "arn:td/mf-users:0"
    del aws.services["threads"]["taskDefinition"]  # (a service read without one)
    steps = converge(aws, desired_for())
    assert [(s.message, s.changes) for s in steps] == [
        ("change service users: taskDefinition", ("taskDefinition mf-users:0 → mf-users:1",)),
        ("change service threads: taskDefinition", ("taskDefinition (none) → mf-threads:2",)),
    ]


def test_two_changed_fields_of_a_service_are_both_named() -> None:
    aws = deployed()

    def edit(data: dict[str, Any]) -> None:
        data["services"]["users"]["desired_count"] = 3
        data["services"]["users"]["cpu"] = 512

    steps = converge(aws, desired_for(edit))
    assert steps[-1].message == "change service users: taskDefinition, desiredCount"


def test_target_group_attributes_changed_are_shown_before_and_after() -> None:
    aws = deployed()

    def edit(data: dict[str, Any]) -> None:
        data["services"]["posts"]["deregistration_delay"] = 5

    steps = converge(aws, desired_for(edit))
    (step,) = [s for s in steps if s.operation == "elbv2.modify_target_group_attributes"]
    assert step.changes == ("deregistration_delay 30 → 5",)


def test_a_secret_the_new_revision_drops_is_shown_by_name() -> None:
    aws = deployed(with_database())
    (container,) = aws.task_definitions["mf-users"]["containerDefinitions"]
    container["secrets"] = [{"name": "OLD", "valueFrom": "arn:secret/old"}, *container["secrets"]]
    (task, service) = converge(aws, with_database())
    assert (task.message, task.changes) == (
        "change task definition mf-users: new revision",
        ("secrets.OLD arn:secret/old → (none)",),
    )
    assert service.message == "change service users: taskDefinition"


def test_what_aws_reorders_or_leaves_out_of_a_revision_is_no_change() -> None:
    aws = deployed(with_database())
    for task in (aws.task_definitions[f"mf-{name}"] for name in SERVICES):
        task["containerDefinitions"][0]["environment"].reverse()  # returned in any order
        assert task.pop("tags")  # the family's, not the revision's: described without them
    assert plan(with_database(), aws.state()) == []


def test_a_task_definition_without_containers_normalizes_to_none() -> None:
    assert normalize_task_definition({"family": "x"}) == {"family": "x", "containerDefinitions": []}


def test_repositories_as_wanted_need_no_step() -> None:
    aws = deployed()
    assert plan_repositories(desired_for(), aws.state()) == []


def test_db_setup_is_run_once_with_what_render_asks() -> None:
    desired = with_database()
    aws = InMemoryAws()
    (run,) = [s for s in converge(aws, desired) if s.operation == "ecs.run_task"]
    assert run == Step(
        "change", "databases", "users, threads, posts", "ecs.run_task", desired.setup_run,
        detail="run microforum db-setup (each its own role; only it may connect)",
    )  # fmt: skip
    assert converge(aws, desired) == []
