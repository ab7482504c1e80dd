"""What `deploy` refuses before it changes anything (pure: the stack, the options, what exists).

Each check raises a `UsageError` (exit 2) naming the problem and the way out; none of them calls
AWS. docs/deploying.md lists every refusal and why it exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from microforum.errors import UsageError
from microforum.services.settings import OWNED
from microforum.spec import defaults as d
from microforum.spec.model import Action, Forward, Stack

# AWS refuses capacity provider names starting with these (CreateCapacityProvider, `name`), and
# CloudFormation names the capacity provider after the stack: refuse such a stack name at once
# rather than 10 minutes into creating the stack.
RESERVED_PREFIXES = ("aws", "ecs", "fargate")

# Resource types whose deletion or replacement loses data (the database and its credentials).
STATEFUL_TYPES = ("AWS::RDS::DBInstance", "AWS::SecretsManager::Secret")


def check_stack_name(name: str) -> None:
    if name.lower().startswith(RESERVED_PREFIXES):
        raise UsageError(
            f"--stack-name {name}: must not start with {', '.join(RESERVED_PREFIXES)} "
            "(AWS refuses such capacity provider names, and the stack names its capacity provider)",
            hint="choose another stack name",
        )


def check_services(stack: Stack, *, database: bool) -> None:
    """Every service can run on ECS: an image to run, a load balancer, data that agrees."""
    _check_images(stack)
    _check_keep_alive(stack)
    _check_reachable(stack)
    if not database:
        _check_single_tasks(stack)


def _check_images(stack: Stack) -> None:
    for service in stack.services:
        if not service.builtin:
            raise UsageError(
                f"deploy service {service.name}: a `command` service has no image to deploy "
                "(deploy builds images of the built-in services only)",
                hint=f"remove {service.name} from {stack.source} for deploy, or run it locally with 'up'",
            )


def _check_keep_alive(stack: Stack) -> None:
    """The services must keep connections open longer than the ALB; they accept at most the
    ALB's own maximum (IDLE_TIMEOUT in services/settings.py)."""
    idle, margin, top = stack.load_balancer.idle_timeout, d.TARGET_KEEP_ALIVE_MARGIN, d.IDLE_TIMEOUT_RANGE[1]
    if idle + margin > top:
        raise UsageError(
            f"deploy: load_balancer.idle_timeout {idle} leaves the services no longer keep-alive "
            f"(they must outlast the ALB by {margin}s, up to {top}s)",
            hint=f"set load_balancer.idle_timeout to at most {top - margin} in {stack.source}",
        )


def _check_reachable(stack: Stack) -> None:
    reached = _forwarded(stack)
    for service in stack.services:
        if service.name not in reached:
            raise UsageError(
                f"deploy service {service.name}: no listener rule or default action forwards to it "
                "(ECS refuses a service whose target group has no load balancer)",
                hint=f"add a rule forwarding to {service.name} in {stack.source}, or remove the service",
            )


def _check_single_tasks(stack: Stack) -> None:
    many = [f"{s.name} ({s.desired_count})" for s in stack.services if s.desired_count > 1]
    if many:
        raise UsageError(
            f"deploy --no-database: more than one task for {', '.join(many)}: without a database "
            "each task keeps its own SQLite file, so replicas would disagree",
            hint="deploy with the database (leave out --no-database) or set desired_count: 1",
        )


def _forwarded(stack: Stack) -> set[str]:
    actions: list[Action] = [stack.listener.default_action, *(r.action for r in stack.listener.rules)]
    return {g.name for a in actions if isinstance(a, Forward) for g in a.target_groups}


def check_database_kept(
    name: str, parameters: Mapping[str, str], *, database: bool, delete_database: bool
) -> None:
    """Refuse turning the database off on a stack that has one, unless asked by name."""
    if parameters.get("DatabaseEnabled") == "true" and not database and not delete_database:
        raise UsageError(
            f"deploy stack {name}: --no-database would delete its database (only a final snapshot "
            "is kept) and the database secrets",
            hint="pass --delete-database as well if that is what you want",
        )


# The one database every service used in the deploys before each got its own (issue 16).
SHARED_DATABASE = "microforum"


def check_own_databases(
    task_definitions: Mapping[str, Mapping[str, Any]], *, database: bool, delete_database: bool
) -> None:
    """Refuse to move a service off a database an earlier deploy gave it (the shared
    `microforum`, its DATABASE_URL secret; or PGDATABASE=monolith) onto its own: it would
    start empty. Services of a deploy with PGDATABASE=users (threads, posts) keep their data."""
    if not database or delete_database:
        return
    for task in task_definitions.values():
        for container in task.get("containerDefinitions", []):
            env = {e["name"]: e["value"] for e in container.get("environment", [])}
            shared = any(s["name"] == "DATABASE_URL" for s in container.get("secrets", []))
            old = SHARED_DATABASE if shared else env.get("PGDATABASE")
            if old and old not in OWNED.get(container["name"], ()):
                raise UsageError(
                    f"deploy service {container['name']}: its data is in the database {old} (an earlier "
                    "deploy); each resource now has a database of its own (users, threads, posts)",
                    hint=f"copy each resource's tables from {old} into its database (pg_dump -t, psql), "
                    "then pass --delete-database to confirm the old database is no longer used",
                )


def check_stateful_changes(name: str, changes: Iterable[Mapping[str, str]], *, delete_database: bool) -> None:
    """Refuse a change set that removes or replaces the database or a secret, unless asked.

    `changes` are the change set's ResourceChange entries (Action, LogicalResourceId,
    ResourceType, Replacement)."""
    if delete_database:
        return
    lost = [
        f"{c['LogicalResourceId']} ({'removed' if c.get('Action') == 'Remove' else 'replaced'})"
        for c in changes
        if c.get("ResourceType") in STATEFUL_TYPES
        and (c.get("Action") == "Remove" or c.get("Replacement") in ("True", "Conditional"))
    ]
    if lost:
        raise UsageError(
            f"deploy stack {name}: the update would delete or replace {', '.join(lost)}, losing data",
            hint="pass --delete-database if that is what you want",
        )
