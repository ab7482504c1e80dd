"""The cluster stack (infrastructure/ecs.yaml): decide, then create/update and stream events.

`stack_step` decides (pure) whether the stack needs creating or updating by comparing the
rendered template and the parameters deploy passes with what CloudFormation holds; nothing
changed means no change set at all. An update is planned as a change set, so the plan shows each
resource's action and whether it is replaced, and the run executes exactly that change set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from microforum.deploy.aws import Aws, error_code
from microforum.deploy.names import tags
from microforum.deploy.plan import Step
from microforum.deploy.remote import StackState, read_stack
from microforum.errors import MicroforumError

JSON = dict[str, Any]
CAPABILITIES = ["CAPABILITY_IAM"]
# Stack statuses that need a person (CloudFormation stack status codes).
_STUCK = {
    "ROLLBACK_COMPLETE": "its creation failed and was rolled back",
    "ROLLBACK_FAILED": "its creation failed and the rollback failed",
    "DELETE_FAILED": "a deletion failed",
    "UPDATE_ROLLBACK_FAILED": "an update failed and its rollback failed",
    "CREATE_FAILED": "its creation failed",
    "IMPORT_ROLLBACK_FAILED": "an import failed and its rollback failed",
}
_DONE = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}


def default_template_path() -> Path:
    """infrastructure/ecs.yaml of the project (src/microforum/deploy/ -> the repository root)."""
    return Path(__file__).resolve().parents[3] / "infrastructure" / "ecs.yaml"


def load_template(path: Path) -> JSON:
    """Read the cluster template (plain YAML in long form: `Ref:`, `Fn::GetAtt:`)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MicroforumError(
            f"read cluster template {path}: no such file", hint="pass --template FILE"
        ) from exc
    except yaml.YAMLError as exc:
        raise MicroforumError(f"read cluster template {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or "Resources" not in data:
        raise MicroforumError(f"read cluster template {path}: no Resources")
    return data


def check_usable(name: str, state: StackState | None) -> None:
    """Refuse a stack that CloudFormation cannot update until someone acts."""
    if state is None:
        return
    if state.status == "UPDATE_ROLLBACK_FAILED":
        # Never "destroy" here: that would delete the database. CloudFormation's way out is to
        # continue the rollback (skipping the resources that cannot roll back, if need be).
        raise MicroforumError(
            f"deploy stack {name}: it is in {state.status} ({_STUCK[state.status]})",
            hint=f"fix what its events name, then 'aws cloudformation continue-update-rollback "
            f"--stack-name {name}' and deploy again (do not destroy: that deletes the database)",
        )
    if state.status in _STUCK:
        raise MicroforumError(
            f"deploy stack {name}: it is in {state.status} ({_STUCK[state.status]})",
            hint=f"read its events in the CloudFormation console, then run "
            f"'microforum destroy --stack-name {name}' and deploy again",
        )
    if state.status.endswith("_IN_PROGRESS"):
        raise MicroforumError(
            f"deploy stack {name}: another operation is running ({state.status})",
            hint="wait until it finishes, then run deploy again",
        )


def stack_step(
    name: str, state: StackState | None, template: JSON, parameters: dict[str, str]
) -> Step | None:
    """create_stack / update_stack, or None when template and parameters are unchanged."""
    args = {
        "StackName": name,
        "TemplateBody": json.dumps(template, sort_keys=True),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
        "Capabilities": CAPABILITIES,
        "Tags": tags(name),  # CloudFormation passes the stack's tags on to its resources
    }
    if state is None:
        return Step(
            "create", "stack", name, "cloudformation.create_stack", args,
            detail=f"cluster (infrastructure/ecs.yaml), {len(template['Resources'])} resources",
        )  # fmt: skip
    same_template = json.dumps(state.template, sort_keys=True) == json.dumps(template, sort_keys=True)
    changed = sorted(k for k, v in parameters.items() if state.parameters.get(k) != v)
    if same_template and not changed:
        return None
    detail = ", ".join(
        (["template"] if not same_template else []) + [f"{k}={parameters[k]}" for k in changed]
    )
    return Step("change", "stack", name, "cloudformation.update_stack", args, detail=detail)


def make_change_set(aws: Aws, step: Step, sleep: Callable[[float], None]) -> tuple[Step | None, list[JSON]]:
    """Turn an update into a change set: (the step that executes it, its resource changes), or
    (None, []) when CloudFormation finds nothing to change."""
    change_set = f"microforum-{int(time.time())}"
    aws.call(
        "cloudformation", "create_change_set", ChangeSetName=change_set, ChangeSetType="UPDATE",
        **step.params,
    )  # fmt: skip
    while True:
        found = aws.call(
            "cloudformation", "describe_change_set", StackName=step.name, ChangeSetName=change_set
        )
        if found["Status"] not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
            break
        sleep(2.0)
    if found["Status"] == "FAILED":
        aws.call("cloudformation", "delete_change_set", StackName=step.name, ChangeSetName=change_set)
        if "didn't contain changes" in found.get("StatusReason", "") or "No updates" in found.get(
            "StatusReason", ""
        ):
            return None, []
        raise MicroforumError(f"plan stack {step.name}: change set failed: {found.get('StatusReason')}")
    resources = [c["ResourceChange"] for c in found.get("Changes", []) if "ResourceChange" in c]
    params = {"StackName": step.name, "ChangeSetName": change_set}
    lines = tuple(resource_change(c) for c in resources)
    executed = Step(
        "change", "stack", step.name, "cloudformation.execute_change_set", params,
        detail=step.detail, changes=lines,
    )  # fmt: skip
    return executed, resources


def resource_change(change: JSON) -> str:
    replaced = {"True": ", replaced", "Conditional": ", may be replaced"}.get(
        change.get("Replacement", ""), ""
    )
    return f"{change.get('Action', '?')} {change['LogicalResourceId']} ({change['ResourceType']}){replaced}"


def discard(aws: Aws, step: Step | None) -> None:
    """Delete a change set that will not be executed (a dry run, a refusal)."""
    if step is not None and step.operation == "cloudformation.execute_change_set":
        aws.call("cloudformation", "delete_change_set", **step.params)


def apply_stack(
    aws: Aws, step: Step, say: Callable[[str], None], sleep: Callable[[float], None], poll: float = 5.0
) -> StackState:
    """Run create/update, stream the stack's events until it settles, return the new state."""
    name = step.name
    seen = {e["EventId"] for e in _events(aws, name)} if step.verb == "change" else set()
    try:
        aws.call("cloudformation", step.operation.split(".")[1], **step.params)
    except MicroforumError as exc:
        if error_code(exc) == "ValidationError" and "No updates are to be performed" in str(exc):
            say(f"  stack {name}: no updates to perform")
            return _read(aws, name)
        raise
    while True:
        fresh = [e for e in reversed(_events(aws, name)) if e["EventId"] not in seen]
        for event in fresh:
            seen.add(event["EventId"])
            reason = f" ({event['ResourceStatusReason']})" if event.get("ResourceStatusReason") else ""
            say(f"  {event['LogicalResourceId']} {event['ResourceType']} {event['ResourceStatus']}{reason}")
        state = _read(aws, name)
        if state.status in _DONE:
            if "ROLLBACK" in state.status:
                raise MicroforumError(
                    f"{step.verb} stack {name}: rolled back ({state.status})",
                    hint="the events above name the resource that failed",
                )
            return state
        if state.status in _STUCK or state.status.endswith("FAILED"):
            raise MicroforumError(
                f"{step.verb} stack {name}: {state.status}",
                hint="the events above name the resource that failed",
            )
        sleep(poll)


def _events(aws: Aws, name: str) -> list[JSON]:
    return list(aws.call("cloudformation", "describe_stack_events", StackName=name).get("StackEvents", []))


def _read(aws: Aws, name: str) -> StackState:
    state = read_stack(aws, name)
    if state is None:
        raise MicroforumError(f"deploy stack {name}: it disappeared while being created")
    return state
