"""The names and tags deploy gives what it creates, and the placeholders for ARNs (pure).

Every name derives from the stack name (`--stack-name`) and the service's name, so two stacks
in one account never collide; everything carries the tags below (docs/deploying.md#tags).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

JSON = dict[str, Any]

LISTENER_REF = "<listener>"
# Tags on everything deploy creates (docs/deploying.md#tags); destroy finds resources by them.
STACK_TAG = "microforum:stack"
SERVICE_TAG = "microforum:service"
# A db-setup task definition revision whose run succeeded carries this tag (value SETUP_DONE):
# deploy runs the set-up again until one has (docs/deploying.md#database).
SETUP_TAG = "microforum:db-setup"
SETUP_DONE = "succeeded"
SETUP_OPERATION = "ecs.run_task"  # the plan step that runs it (and waits for its exit code)
_NAME_LIMIT = 32  # target group names: at most 32 alphanumerics and hyphens (BOTO-ELBV2)


def output_ref(key: str) -> str:
    """Placeholder for a cluster stack output not known yet (the stack is still to be made)."""
    return f"<output:{key}>"


def tags(stack_name: str, service: str | None = None) -> list[JSON]:
    """The tags of one resource in the `Key`/`Value` shape (ELBv2, ECR, CloudFormation)."""
    found = [{"Key": STACK_TAG, "Value": stack_name}]
    return found + ([{"Key": SERVICE_TAG, "Value": service}] if service else [])


def ecs_tags(stack_name: str, service: str | None = None) -> list[JSON]:
    """The same tags in ECS's lower-case `key`/`value` shape."""
    return [{"key": t["Key"], "value": t["Value"]} for t in tags(stack_name, service)]


def tg_ref(service: str) -> str:
    """Placeholder for the ARN of `service`'s target group."""
    return f"<tg:{service}>"


def td_ref(service: str) -> str:
    """Placeholder for the ARN of `service`'s task definition revision to run."""
    return f"<td:{service}>"


def target_group_name(stack_name: str, service: str) -> str:
    """`<stack>-<service>`, shortened with a stable hash when over ALB's 32 characters."""
    name = f"{stack_name}-{service}"
    if len(name) <= _NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: _NAME_LIMIT - 7].rstrip('-')}-{digest}"


def task_family(stack_name: str, service: str) -> str:
    return f"{stack_name}-{service}"


def repository_prefix(stack_name: str, given: str | None) -> str:
    """The repositories' namespace: the stack's own name unless `--repository-prefix` shares
    one on purpose (an empty prefix means the bare service names)."""
    return stack_name if given is None else given


def repository_name(prefix: str, service: str) -> str:
    """`prefix/service` (a registry namespace, as `microforum.images.push` uses it), or
    `service` for an empty prefix."""
    return f"{prefix}/{service}" if prefix else service


def task_role_output(service: str) -> str:
    """The stack output holding `service`'s task role ARN (added by `render_template`)."""
    return f"TaskRole{logical_id(service)}Arn"


def logical_id(service: str) -> str:
    """`service` as a CloudFormation logical id part (letters and digits, capitalized)."""
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]", service) if part)
