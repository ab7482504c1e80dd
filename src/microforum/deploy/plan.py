"""Desired (render.py) vs remote (a snapshot read by aws.py) -> a list of steps (pure).

Like chalice's deployer, the plan is a list of frozen instructions, each carrying the message
shown as progress; the executor runs them or, for `--dry-run`, only prints them. An empty plan
means "no changes" and the executor then makes no mutating call at all.

Comparison is "desired is a subset of remote": AWS adds fields of its own (defaults, ARNs,
timestamps) that stack.yaml never mentions, so only the keys deploy sets are compared; lists must
have the same length, so an extra condition or container on the remote side is a difference.

Listener rules are matched first by content (so a rule that only moved gets a new priority in one
SetRulePriorities call), then by priority (modified in place); rules that left stack.yaml are
deleted first, so no priority is ever taken twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from microforum.deploy.render import LISTENER_REF, Desired, td_ref, tg_ref
from microforum.spec import defaults as d

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


def resolve(value: Any, refs: Mapping[str, str]) -> Any:
    """Replace placeholders (`<tg:users>`, ...) whose ARN is known; leave the others."""
    if isinstance(value, str):
        return refs.get(value, value)
    if isinstance(value, Mapping):
        return {k: resolve(v, refs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, refs) for v in value]
    return value


def known_refs(desired: Desired, remote: RemoteState) -> dict[str, str]:
    """Placeholders whose ARN already exists remotely: target groups, the listener, and task
    definition revisions identical to the desired ones (reused, never re-registered)."""
    refs = {}
    for service, tg in desired.target_groups.items():
        found = remote.target_groups.get(tg["Name"])
        if found:
            refs[tg_ref(service)] = found["TargetGroupArn"]
    if remote.listener:
        refs[LISTENER_REF] = remote.listener["ListenerArn"]
    for service, want in desired.task_definitions.items():
        have = remote.task_definitions.get(want["family"])
        if have is not None and subset(want, normalize_task_definition(have)):
            refs[td_ref(service)] = have["taskDefinitionArn"]
    return refs


# ------------------------------------------------------------------------- the plan


def plan_repositories(desired: Desired, remote: RemoteState) -> list[Step]:
    """ECR repositories: create missing ones; correct tag mutability, scanning, lifecycle."""
    steps: list[Step] = []
    for want in desired.repositories.values():
        name = want["repositoryName"]
        have = remote.repositories.get(name)
        policy = {"repositoryName": name, "lifecyclePolicyText": want["lifecyclePolicyText"]}
        if have is None:
            create = {k: v for k, v in want.items() if k != "lifecyclePolicyText"}
            steps.append(
                Step(
                    "create",
                    "repository",
                    name,
                    "ecr.create_repository",
                    create,
                    detail="scan on push, immutable tags",
                )
            )
            steps.append(
                Step(
                    "change",
                    "repository",
                    name,
                    "ecr.put_lifecycle_policy",
                    policy,
                    detail="lifecycle policy",
                )
            )
            continue
        if have.get("imageTagMutability") != want["imageTagMutability"]:
            args = {"repositoryName": name, "imageTagMutability": want["imageTagMutability"]}
            steps.append(
                Step(
                    "change",
                    "repository",
                    name,
                    "ecr.put_image_tag_mutability",
                    args,
                    detail="immutable tags",
                )
            )
        if not subset(want["imageScanningConfiguration"], have.get("imageScanningConfiguration")):
            args = {"repositoryName": name, "imageScanningConfiguration": want["imageScanningConfiguration"]}
            steps.append(
                Step(
                    "change",
                    "repository",
                    name,
                    "ecr.put_image_scanning_configuration",
                    args,
                    detail="scan on push",
                )
            )
        if have.get("lifecyclePolicyText") != want["lifecyclePolicyText"]:
            steps.append(
                Step(
                    "change",
                    "repository",
                    name,
                    "ecr.put_lifecycle_policy",
                    policy,
                    detail="lifecycle policy",
                )
            )
    return steps


def plan(desired: Desired, remote: RemoteState) -> list[Step]:
    """Every step that brings `remote` to `desired` (after the cluster stack), in a safe order:
    task definitions, target groups, listener, rules (delete, reorder, modify, create), services."""
    refs = known_refs(desired, remote)
    steps = list(_task_definitions(desired, remote, refs))
    steps += _target_groups(desired, remote)
    steps += _listener(desired, remote, refs)
    steps += plan_rules(desired.rules, remote.rules, refs)
    steps += _services(desired, remote, refs)
    steps += _leftovers(desired, remote)
    return steps


def _leftovers(desired: Desired, remote: RemoteState) -> Iterator[Step]:
    """Services and target groups that left stack.yaml: drain the service, then delete."""
    cluster = next(iter(desired.services.values()))["cluster"] if desired.services else ""
    for name in sorted(set(remote.services) - set(desired.services)):
        args = {"cluster": cluster, "service": name, "desiredCount": 0}
        yield Step(
            "change",
            "service",
            name,
            "ecs.update_service",
            args,
            detail="scale to 0 (no longer in stack.yaml)",
        )
        yield Step(
            "delete",
            "service",
            name,
            "ecs.delete_service",
            {"cluster": cluster, "service": name, "force": True},
        )
    wanted = {tg["Name"] for tg in desired.target_groups.values()}
    for name in sorted(set(remote.target_groups) - wanted):
        args = {"TargetGroupArn": remote.target_groups[name]["TargetGroupArn"]}
        yield Step(
            "delete",
            "target group",
            name,
            "elbv2.delete_target_group",
            args,
            detail="no longer in stack.yaml",
        )


def _task_definitions(desired: Desired, remote: RemoteState, refs: dict[str, str]) -> Iterator[Step]:
    for service, want in desired.task_definitions.items():
        have = remote.task_definitions.get(want["family"])
        if td_ref(service) in refs:
            continue  # the current revision is what stack.yaml describes: reuse it
        verb: Verb = "create" if have is None else "change"
        detail = "new revision" if have is not None else "first revision"
        yield Step(
            verb,
            "task definition",
            want["family"],
            "ecs.register_task_definition",
            want,
            td_ref(service),
            detail,
        )


def normalize_task_definition(task: JSON) -> JSON:
    """Order environment and secrets by name (AWS may return them in any order)."""
    containers = []
    for c in task.get("containerDefinitions", []):
        c = dict(c)
        for key in ("environment", "secrets"):
            if key in c:
                c[key] = sorted(c[key], key=lambda e: e["name"])
        containers.append(c)
    return {**task, "containerDefinitions": containers}


def _target_groups(desired: Desired, remote: RemoteState) -> Iterator[Step]:
    for service, want in desired.target_groups.items():
        name = want["Name"]
        attrs = desired.target_group_attributes[service]
        have = remote.target_groups.get(name)
        if have is None:
            yield Step(
                "create",
                "target group",
                name,
                "elbv2.create_target_group",
                want,
                tg_ref(service),
                _hc_detail(want),
            )
            args = {"TargetGroupArn": tg_ref(service), "Attributes": attrs}
            yield Step(
                "change",
                "target group",
                name,
                "elbv2.modify_target_group_attributes",
                args,
                detail=_attr_detail(attrs),
            )
            continue
        health = {k: v for k, v in want.items() if k.startswith("HealthCheck") or k in _HC_KEYS}
        if not subset(health, have):
            args = {"TargetGroupArn": have["TargetGroupArn"], **health}
            yield Step(
                "change", "target group", name, "elbv2.modify_target_group", args, detail=_hc_detail(want)
            )
        current = have.get("Attributes", {})
        if any(current.get(a["Key"]) != a["Value"] for a in attrs):
            args = {"TargetGroupArn": have["TargetGroupArn"], "Attributes": attrs}
            yield Step(
                "change",
                "target group",
                name,
                "elbv2.modify_target_group_attributes",
                args,
                detail=_attr_detail(attrs),
            )


_HC_KEYS = ("HealthyThresholdCount", "UnhealthyThresholdCount", "Matcher")


def _hc_detail(tg: JSON) -> str:
    return (
        f"health check {tg['HealthCheckPath']} every {tg['HealthCheckIntervalSeconds']}s, "
        f"timeout {tg['HealthCheckTimeoutSeconds']}s, healthy {tg['HealthyThresholdCount']}, "
        f"unhealthy {tg['UnhealthyThresholdCount']}, codes {tg['Matcher']['HttpCode']}"
    )


def _attr_detail(attrs: list[JSON]) -> str:
    return ", ".join(f"{a['Key']}={a['Value']}" for a in attrs)


def _listener(desired: Desired, remote: RemoteState, refs: Mapping[str, str]) -> Iterator[Step]:
    want = desired.listener
    name = f"HTTP:{want['Port']}"
    have = remote.listener
    if have is None:
        yield Step(
            "create",
            "listener",
            name,
            "elbv2.create_listener",
            want,
            LISTENER_REF,
            _actions_detail(want["DefaultActions"]),
        )
        return
    wanted = {
        "Port": want["Port"],
        "Protocol": want["Protocol"],
        "DefaultActions": resolve(want["DefaultActions"], refs),
    }
    if not subset(wanted, {**have, "DefaultActions": [normalize_action(a) for a in have["DefaultActions"]]}):
        args = {
            "ListenerArn": have["ListenerArn"],
            **{k: v for k, v in want.items() if k != "LoadBalancerArn"},
        }
        yield Step(
            "change",
            "listener",
            name,
            "elbv2.modify_listener",
            args,
            detail=_actions_detail(want["DefaultActions"]),
        )


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


def _actions_detail(actions: list[JSON]) -> str:
    action = actions[0]
    if action["Type"] == "forward":
        groups = action["ForwardConfig"]["TargetGroups"]
        return "forward to " + ", ".join(_ref_name(g["TargetGroupArn"]) for g in groups)
    if action["Type"] == "fixed-response":
        return f"fixed response {action['FixedResponseConfig']['StatusCode']}"
    return f"redirect {action['RedirectConfig']['StatusCode']}"


def _ref_name(value: str) -> str:
    if value.startswith("<tg:"):
        return value[4:-1]
    return value.rsplit("/", 2)[-2] if value.count("/") >= 2 else value


# ------------------------------------------------------------------------- rules


def _rule_key(rule: JSON) -> tuple[str, str]:
    import json

    return (
        json.dumps(sorted(rule["Conditions"], key=lambda c: c["Field"]), sort_keys=True),
        json.dumps(rule["Actions"], sort_keys=True),
    )


def normalize_rule(rule: JSON) -> JSON:
    """A remote rule in render's shape: integer priority, *Config conditions, sorted."""
    conditions = []
    for c in rule.get("Conditions", []):
        config_key = next((k for k in c if k.endswith("Config")), None)
        if config_key is None:  # the legacy Values form
            conditions.append({"Field": c["Field"], _LEGACY[c["Field"]]: {"Values": c.get("Values", [])}})
        else:
            conditions.append({"Field": c["Field"], config_key: c[config_key]})
    return {
        "RuleArn": rule["RuleArn"],
        "Priority": int(rule["Priority"]),
        "Conditions": sorted(conditions, key=lambda c: c["Field"]),
        "Actions": [normalize_action(a) for a in rule.get("Actions", [])],
    }


_LEGACY = {"path-pattern": "PathPatternConfig", "host-header": "HostHeaderConfig"}


def plan_rules(wanted: tuple[JSON, ...], remote: tuple[JSON, ...], refs: Mapping[str, str]) -> list[Step]:
    """Listener rules: delete what left stack.yaml, reorder moved rules, modify, create."""
    want = [resolve(r, refs) for r in wanted]
    have = [normalize_rule(r) for r in remote]
    unmatched_have = list(have)
    moves: list[tuple[JSON, JSON]] = []
    pending = []
    for rule in want:
        same = next((h for h in unmatched_have if _subset_rule(rule, h)), None)
        if same is None:
            pending.append(rule)
            continue
        unmatched_have.remove(same)
        if same["Priority"] != rule["Priority"]:
            moves.append((same, rule))
    modify, create = [], []
    for rule in pending:
        at = next((h for h in unmatched_have if h["Priority"] == rule["Priority"]), None)
        if at is None:
            create.append(rule)
        else:
            unmatched_have.remove(at)
            modify.append((at, rule))
    steps = [
        Step(
            "delete",
            "listener rule",
            f"priority {h['Priority']}",
            "elbv2.delete_rule",
            {"RuleArn": h["RuleArn"]},
            detail="no longer in stack.yaml",
        )
        for h in unmatched_have
    ]
    moves.sort(key=lambda pair: pair[0]["Priority"])
    steps += _reorder(moves, [h["Priority"] for h in have if h not in unmatched_have], [r["Priority"] for r in want])
    for h, rule in modify:
        args = {"RuleArn": h["RuleArn"], "Conditions": rule["Conditions"], "Actions": rule["Actions"]}
        steps.append(
            Step(
                "change",
                "listener rule",
                f"priority {rule['Priority']}",
                "elbv2.modify_rule",
                args,
                detail=_rule_detail(rule),
            )
        )
    for rule in create:
        args = {"ListenerArn": LISTENER_REF, **rule}
        steps.append(
            Step(
                "create",
                "listener rule",
                f"priority {rule['Priority']}",
                "elbv2.create_rule",
                args,
                detail=_rule_detail(rule),
            )
        )
    return steps


def _reorder(moves: list[tuple[JSON, JSON]], kept: list[int], wanted: list[int]) -> list[Step]:
    """SetRulePriorities for rules that only moved. When a target priority is still held by
    another moving rule (a swap), the movers first park on free priorities at the top of the
    range: ALB refuses a priority in use, even within one call."""
    if not moves:
        return []
    targets = {r["Priority"] for _, r in moves}
    current = {h["Priority"] for h, _ in moves}
    names = ", ".join(f"{h['Priority']}->{r['Priority']}" for h, r in moves)
    final = [{"RuleArn": h["RuleArn"], "Priority": r["Priority"]} for h, r in moves]
    if not targets & current:
        return [Step("change", "listener rule", "priorities", "elbv2.set_rule_priorities", {"RulePriorities": final}, detail=names)]
    taken = set(kept) | set(wanted)
    free = (p for p in range(d.PRIORITY_RANGE[1], 0, -1) if p not in taken)
    parked = [{"RuleArn": h["RuleArn"], "Priority": next(free)} for h, _ in moves]
    return [
        Step("change", "listener rule", "priorities", "elbv2.set_rule_priorities", {"RulePriorities": parked}, detail=f"{names} (step 1 of 2: park)"),
        Step("change", "listener rule", "priorities", "elbv2.set_rule_priorities", {"RulePriorities": final}, detail=f"{names} (step 2 of 2)"),
    ]


def _subset_rule(want: JSON, have: JSON) -> bool:
    return subset(want["Conditions"], have["Conditions"]) and subset(want["Actions"], have["Actions"])


def _rule_detail(rule: JSON) -> str:
    conditions = "; ".join(_condition_text(c) for c in rule["Conditions"])
    return f"{conditions} -> {_actions_detail(rule['Actions'])}"


def _condition_text(condition: JSON) -> str:
    config = next(v for k, v in condition.items() if k.endswith("Config"))
    values = config.get("Values", [])
    shown = [f"{v.get('Key') or ''}={v['Value']}" if isinstance(v, dict) else v for v in values]
    name = f" {config['HttpHeaderName']}" if "HttpHeaderName" in config else ""
    return f"{condition['Field']}{name} {','.join(shown)}"


# ------------------------------------------------------------------------- services

_SERVICE_UPDATABLE = (
    "taskDefinition",
    "desiredCount",
    "loadBalancers",
    "healthCheckGracePeriodSeconds",
    "deploymentConfiguration",
    "placementStrategy",
    "capacityProviderStrategy",
)


def _services(desired: Desired, remote: RemoteState, refs: Mapping[str, str]) -> Iterator[Step]:
    for name, want in desired.services.items():
        have = remote.services.get(name)
        if have is None:
            yield Step(
                "create", "service", name, "ecs.create_service", want, detail=f"{want['desiredCount']} tasks"
            )
            continue
        resolved = resolve(want, refs)
        changed = [k for k in _SERVICE_UPDATABLE if not subset(resolved[k], have.get(k))]
        if changed:
            args = {"cluster": want["cluster"], "service": name, **{k: want[k] for k in changed}}
            if "capacityProviderStrategy" in changed:
                args["forceNewDeployment"] = True  # required by UpdateService for a strategy change
            yield Step("change", "service", name, "ecs.update_service", args, detail=", ".join(changed))
