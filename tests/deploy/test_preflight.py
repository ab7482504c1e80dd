"""What deploy refuses before it changes anything: tables over the pure checks (preflight.py).

The end-to-end refusals against moto are in test_deploy_aws.py / test_deploy_safety.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from deploy_helpers import ROOT

from microforum.deploy.preflight import (
    check_database_kept,
    check_own_databases,
    check_services,
    check_stack_name,
    check_stateful_changes,
)
from microforum.errors import UsageError
from microforum.spec.load import parse_stack
from microforum.spec.model import Stack


def stack(edit: Any = None) -> Stack:
    data = yaml.safe_load((ROOT / "stack.yaml").read_text())
    if edit:
        edit(data)
    return parse_stack(data)


@pytest.mark.parametrize("name", ["ecs-prod", "AWS-forum", "fargate1", "Ecsy"])
def test_stack_names_aws_would_refuse_later_are_refused_at_once(name: str) -> None:
    with pytest.raises(UsageError) as info:
        check_stack_name(name)
    assert info.value.message.startswith(f"--stack-name {name}: must not start with aws, ecs, fargate")


@pytest.mark.parametrize("name", ["microforum", "my-ecs", "forum-aws"])
def test_other_stack_names_pass(name: str) -> None:
    check_stack_name(name)


def _command_service(data: dict[str, Any]) -> None:
    data["services"]["echo"] = {"command": ["python3", "-m", "http.server", "$PORT"]}
    data["listener"]["rules"].append(
        {"priority": 9, "conditions": [{"path_pattern": ["/echo*"]}], "action": {"forward": "echo"}}
    )


def _unreachable(data: dict[str, Any]) -> None:
    del data["listener"]["rules"][2]  # nothing forwards to posts any more


def _idle_timeout_at_the_maximum(data: dict[str, Any]) -> None:
    data["load_balancer"]["idle_timeout"] = 4000


def _two_tasks(data: dict[str, Any]) -> None:
    data["services"]["users"]["desired_count"] = 2  # as stack.yaml says for three services


def _one_task_each(data: dict[str, Any]) -> None:
    for service in data["services"].values():
        service["desired_count"] = 1


@pytest.mark.parametrize(
    ("edit", "database", "message"),
    [
        (
            _command_service,
            True,
            "deploy service echo: a `command` service has no image to deploy "
            "(deploy builds images of the built-in services only)",
        ),
        (
            _unreachable,
            True,
            "deploy service posts: no listener rule or default action forwards to it "
            "(ECS refuses a service whose target group has no load balancer)",
        ),
        (
            _two_tasks,
            False,
            "deploy --no-database: more than one task for users (2), threads (2), posts (2): "
            "without a database each task keeps its own SQLite file, so replicas would disagree",
        ),
        (
            _idle_timeout_at_the_maximum,
            True,
            "deploy: load_balancer.idle_timeout 4000 leaves the services no longer keep-alive "
            "(they must outlast the ALB by 15s, up to 4000s)",
        ),
    ],
    ids=["command-service", "unreachable-service", "replicas-without-database", "idle-timeout-too-long"],
)
def test_services_ecs_cannot_run_as_asked_are_refused(edit: Any, database: bool, message: str) -> None:
    with pytest.raises(UsageError) as info:
        check_services(stack(edit), database=database)
    assert info.value.message == message
    assert info.value.hint


@pytest.mark.parametrize(("edit", "database"), [(None, True), (_two_tasks, True), (_one_task_each, False)])
def test_services_ecs_can_run_pass(edit: Any, database: bool) -> None:
    check_services(stack(edit), database=database)


@pytest.mark.parametrize(
    ("enabled", "database", "delete", "refused"),
    [
        ("true", False, False, True),
        ("true", False, True, False),
        ("true", True, False, False),
        ("false", False, False, False),
        (None, False, False, False),
    ],
    ids=["turn-off", "turn-off-with-flag", "keep", "never-had-one", "old-stack"],
)
def test_turning_the_database_off_needs_the_flag(
    enabled: str | None, database: bool, delete: bool, refused: bool
) -> None:
    parameters = {"DatabaseEnabled": enabled} if enabled else {}
    if not refused:
        check_database_kept("mf", parameters, database=database, delete_database=delete)
        return
    with pytest.raises(UsageError) as info:
        check_database_kept("mf", parameters, database=database, delete_database=delete)
    assert info.value.message == (
        "deploy stack mf: --no-database would delete its database (only a final snapshot is kept) "
        "and the database secrets"
    )
    assert info.value.hint == "pass --delete-database as well if that is what you want"


def change(logical: str, kind: str, action: str, replacement: str = "") -> dict[str, str]:
    found = {"LogicalResourceId": logical, "ResourceType": kind, "Action": action}
    return found | ({"Replacement": replacement} if replacement else {})


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ([change("Database", "AWS::RDS::DBInstance", "Remove")], "Database (removed)"),
        ([change("Database", "AWS::RDS::DBInstance", "Modify", "True")], "Database (replaced)"),
        (
            [change("DatabaseSecret", "AWS::SecretsManager::Secret", "Modify", "Conditional")],
            "DatabaseSecret (replaced)",
        ),
        ([change("Database", "AWS::RDS::DBInstance", "Modify", "False")], None),
        ([change("LoadBalancer", "AWS::ElasticLoadBalancingV2::LoadBalancer", "Modify", "True")], None),
        ([change("Database", "AWS::RDS::DBInstance", "Add")], None),
    ],
    ids=["db-removed", "db-replaced", "secret-maybe-replaced", "db-modified", "lb-replaced", "db-added"],
)
def test_change_sets_that_lose_data_are_refused(changes: list[dict[str, str]], refused: str | None) -> None:
    if refused is None:
        check_stateful_changes("mf", changes, delete_database=False)
        return
    with pytest.raises(UsageError) as info:
        check_stateful_changes("mf", changes, delete_database=False)
    assert info.value.message == f"deploy stack mf: the update would delete or replace {refused}, losing data"
    check_stateful_changes("mf", changes, delete_database=True)  # the flag allows it


def task_with(env: dict[str, str], name: str = "users", secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    container = {
        "name": name,
        "environment": [{"name": k, "value": v} for k, v in env.items()],
        "secrets": [{"name": s, "valueFrom": f"arn:{s}"} for s in secrets],
    }
    return {"containerDefinitions": [container]}


@pytest.mark.parametrize(
    ("task", "old"),
    [
        (task_with({"PORT": "3000"}, secrets=("DATABASE_URL",)), "microforum"),
        (task_with({"PGDATABASE": "monolith"}, "monolith", ("DATABASE_URL",)), "microforum"),
        (task_with({"PGDATABASE": "monolith"}, "monolith"), "monolith"),
    ],
    ids=["the shared database", "the shared database (monolith)", "the monolith's own"],
)
def test_services_of_an_earlier_deploy_are_not_moved_to_an_empty_database(
    task: dict[str, Any], old: str
) -> None:
    earlier = {"mf-x": task}
    name = task["containerDefinitions"][0]["name"]
    with pytest.raises(UsageError) as info:
        check_own_databases(earlier, database=True, delete_database=False)
    assert info.value.message == (
        f"deploy service {name}: its data is in the database {old} (an earlier deploy); each "
        "resource now has a database of its own (users, threads, posts)"
    )
    check_own_databases(earlier, database=True, delete_database=True)  # copied over, confirmed


def test_services_already_on_their_own_database_pass() -> None:
    for task in (
        task_with({"PORT": "3000"}, secrets=("USERS_DATABASE_SECRET",)),
        task_with({"PGDATABASE": "users"}),  # the first deploys: users' own database, kept
        task_with({"PGDATABASE": "posts"}, "posts"),
    ):
        check_own_databases({"mf-x": task}, database=True, delete_database=False)
