"""The planner's vocabulary (pure): steps, the remote snapshot, comparison, placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]
Verb = Literal["create", "change", "delete"]


@dataclass(frozen=True)
class Step:
    """One API call with its human message; `produces` names the ARN placeholder it fills."""

    verb: Verb
    resource: str  # "target group", "listener rule", ...
    name: str
    operation: str  # "<client>.<method>", e.g. "elbv2.create_target_group"
    params: Mapping[str, Any]
    produces: str | None = None
    detail: str = ""
    changes: tuple[str, ...] = ()  # `field before → after`, one per changed field

    @property
    def message(self) -> str:
        text = f"{self.verb} {self.resource} {self.name}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass(frozen=True)
class RemoteState:
    """What exists on AWS, as the describe calls return it (plain data, no clients)."""

    repositories: Mapping[str, JSON] = field(default_factory=dict)  # name -> repo + "lifecyclePolicyText"
    task_definitions: Mapping[str, JSON] = field(default_factory=dict)  # family -> latest ACTIVE
    target_groups: Mapping[str, JSON] = field(default_factory=dict)  # name -> TG + "Attributes"
    listener: JSON | None = None
    rules: tuple[JSON, ...] = ()  # the listener's non-default rules
    internal: JSON | None = None  # with HTTPS: the services' plain-HTTP listener
    internal_rules: tuple[JSON, ...] = ()
    redirect: JSON | None = None  # the listener on the port HTTP:port redirects from, as it is
    other_listeners: tuple[JSON, ...] = ()  # listeners on no port stack.yaml asks for
    services: Mapping[str, JSON] = field(default_factory=dict)  # name -> ACTIVE service


# ------------------------------------------------------------------------- comparison


def subset(desired: Any, remote: Any) -> bool:
    """Whether every key `desired` sets has the same value in `remote` (recursively)."""
    if isinstance(desired, Mapping):
        return isinstance(remote, Mapping) and all(subset(v, remote.get(k)) for k, v in desired.items())
    if isinstance(desired, list | tuple):
        return (
            isinstance(remote, list | tuple)
            and len(desired) == len(remote)
            and all(subset(a, b) for a, b in zip(desired, remote, strict=True))
        )
    return bool(desired == remote)


# A placeholder, alone or inside a string (`http://<output:LoadBalancerDnsName>:8080`).
PLACEHOLDER = re.compile(r"<(?:tg|td|output|image|listener|tg-label|rule):[^<>]+>|<listener>|<lb-label>")


def resolve(value: Any, refs: Mapping[str, str]) -> Any:
    """Replace placeholders (`<tg:users>`, ...) whose value is known; leave the others."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda m: refs.get(m.group(0), m.group(0)), value) if "<" in value else value
    if isinstance(value, Mapping):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, refs) for v in value]
    return value


def normalize_action(action: JSON) -> JSON:
    """A remote action in the shape render writes (ForwardConfig even for one target group)."""
    if action.get("Type") != "forward":
        return action
    config = action.get("ForwardConfig") or {
        "TargetGroups": [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}]
    }
    groups = [
        {"TargetGroupArn": g["TargetGroupArn"], "Weight": g.get("Weight", 1)} for g in config["TargetGroups"]
    ]
    result: JSON = {"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}
    sticky = config.get("TargetGroupStickinessConfig") or {}
    if sticky.get("Enabled"):
        result["ForwardConfig"]["TargetGroupStickinessConfig"] = {
            "Enabled": True,
            "DurationSeconds": sticky.get("DurationSeconds"),
        }
    return result


def actions_detail(actions: list[JSON]) -> str:
    action = actions[0]
    if action["Type"] == "forward":
        groups = action["ForwardConfig"]["TargetGroups"]
        return "forward to " + ", ".join(ref_name(g["TargetGroupArn"]) for g in groups)
    if action["Type"] == "fixed-response":
        return f"fixed response {action['FixedResponseConfig']['StatusCode']}"
    return f"redirect {action['RedirectConfig']['StatusCode']}"


def ref_name(value: str) -> str:
    if value.startswith("<tg:"):
        return value[4:-1]
    return value.rsplit("/", 2)[-2] if value.count("/") >= 2 else value
