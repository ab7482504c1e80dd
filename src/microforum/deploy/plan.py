"""Desired (render.py) vs remote (a snapshot read by aws.py) -> a list of steps (pure).

Like chalice's deployer, the plan is a list of frozen instructions, each carrying the message
shown as progress; the executor runs them or, for `--dry-run`, only prints them. An empty plan
means "no changes" and the executor then makes no mutating call at all.

Comparison is "desired is a subset of remote": AWS adds fields of its own (defaults, ARNs,
timestamps) that stack.yaml never mentions, so only the keys deploy sets are compared; lists must
have the same length, so an extra condition or container on the remote side is a difference.

Listener rules are planned in rules.py; the vocabulary (Step, RemoteState, subset) is in steps.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from microforum.deploy.changes import changes, named
from microforum.deploy.names import LISTENER_REF, SETUP_DONE, SETUP_OPERATION, SETUP_TAG, td_ref, tg_ref
from microforum.deploy.render import RESOURCES, SETUP, Desired
from microforum.deploy.rules import plan_rules
from microforum.deploy.steps import (
    JSON,
    RemoteState,
    Step,
    Verb,
    actions_detail,
    normalize_action,
    resolve,
    subset,
)

__all__ = ["RemoteState", "Step", "known_refs", "plan", "plan_repositories", "resolve", "subset"]


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
        if have is not None and subset(_compared(want), normalize_task_definition(have)):
            refs[td_ref(service)] = have["taskDefinitionArn"]
    return refs


def _compared(task: JSON) -> JSON:
    """A task definition's fields that a revision holds (tags are the family's, not compared)."""
    return {k: v for k, v in task.items() if k != "tags"}


# ------------------------------------------------------------------------- the plan


def _repository_step(name: str, verb: Verb, operation: str, detail: str, **params: Any) -> Step:
    return Step(verb, "repository", name, operation, params, detail=detail)


def plan_repositories(desired: Desired, remote: RemoteState) -> list[Step]:
    """ECR repositories: create missing ones; correct tag mutability, scanning, lifecycle."""
    steps: list[Step] = []
    for want in desired.repositories.values():
        name = want["repositoryName"]
        have = remote.repositories.get(name)

        step = partial(_repository_step, name)
        lifecycle = step(
            "change", "ecr.put_lifecycle_policy", "lifecycle policy",
            repositoryName=name, lifecyclePolicyText=want["lifecyclePolicyText"],
        )  # fmt: skip
        if have is None:
            create = {k: v for k, v in want.items() if k != "lifecyclePolicyText"}
            created = step("create", "ecr.create_repository", "scan on push, immutable tags", **create)
            steps += [created, lifecycle]
            continue
        if have.get("imageTagMutability") != want["imageTagMutability"]:
            steps.append(replace(step(
                "change", "ecr.put_image_tag_mutability", "immutable tags",
                repositoryName=name, imageTagMutability=want["imageTagMutability"],
            ), changes=(f"imageTagMutability {have.get('imageTagMutability')} → IMMUTABLE",)))  # fmt: skip
        if not subset(want["imageScanningConfiguration"], have.get("imageScanningConfiguration")):
            steps.append(step(
                "change", "ecr.put_image_scanning_configuration", "scan on push",
                repositoryName=name, imageScanningConfiguration=want["imageScanningConfiguration"],
            ))  # fmt: skip
        if have.get("lifecyclePolicyText") != want["lifecyclePolicyText"]:
            steps.append(lifecycle)
    return steps


def plan(desired: Desired, remote: RemoteState) -> list[Step]:
    """Every step that brings `remote` to `desired` (after the cluster stack), in a safe order:
    task definitions, target groups, listener, rules (delete, reorder, modify, create), services."""
    refs = known_refs(desired, remote)
    steps = list(_task_definitions(desired, remote, refs))
    steps += _setup(desired, remote, refs)
    steps += _target_groups(desired, remote)
    steps += _old_listeners(remote)
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
        lines = () if have is None else _task_changes(want, normalize_task_definition(have))
        yield Step(
            verb, "task definition", want["family"], "ecs.register_task_definition",
            want, td_ref(service), detail, lines,
        )  # fmt: skip


def _setup(desired: Desired, remote: RemoteState, refs: Mapping[str, str]) -> Iterator[Step]:
    """Run db-setup, before any service rolls, unless the revision to run has succeeded."""
    if desired.setup_run is None:
        return
    have = remote.task_definitions.get(desired.task_definitions[SETUP]["family"])
    tags = {t["key"]: t["value"] for t in (have or {}).get("tags", [])}
    if td_ref(SETUP) in refs and tags.get(SETUP_TAG) == SETUP_DONE:
        return
    yield Step(
        "change", "databases", ", ".join(RESOURCES), SETUP_OPERATION, desired.setup_run,
        detail="run microforum db-setup (each its own role; only it may connect)",
    )  # fmt: skip


def _task_changes(want: JSON, have: JSON) -> tuple[str, ...]:
    """The container's fields before → after, environment and secrets by name."""
    lines = changes({k: v for k, v in _compared(want).items() if k != "containerDefinitions"}, have)
    (container,) = want["containerDefinitions"]
    old = (have.get("containerDefinitions") or [{}])[0]
    for key in ("environment", "secrets"):
        value = "value" if key == "environment" else "valueFrom"
        want, have = named(container.get(key), value=value), named(old.get(key), value=value)
        # Every name on either side: a variable the new revision drops is a change too.
        lines += [f"{key}.{line}" for line in changes({**dict.fromkeys(have), **want}, have)]
    plain = {k: v for k, v in container.items() if k not in ("environment", "secrets")}
    lines += changes(plain, old)
    return tuple(lines)


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
                "change", "target group", name, "elbv2.modify_target_group", args,
                detail=_hc_detail(want), changes=tuple(changes(health, have)),
            )  # fmt: skip
        current = have.get("Attributes", {})
        if any(current.get(a["Key"]) != a["Value"] for a in attrs):
            args = {"TargetGroupArn": have["TargetGroupArn"], "Attributes": attrs}
            yield Step(
                "change", "target group", name, "elbv2.modify_target_group_attributes", args,
                detail=_attr_detail(attrs), changes=tuple(changes(named(attrs, "Key", "Value"), current)),
            )  # fmt: skip


_HC_KEYS = ("HealthyThresholdCount", "UnhealthyThresholdCount", "Matcher")


def _hc_detail(tg: JSON) -> str:
    return (
        f"health check {tg['HealthCheckPath']} every {tg['HealthCheckIntervalSeconds']}s, "
        f"timeout {tg['HealthCheckTimeoutSeconds']}s, healthy {tg['HealthyThresholdCount']}, "
        f"unhealthy {tg['UnhealthyThresholdCount']}, codes {tg['Matcher']['HttpCode']}"
    )


def _attr_detail(attrs: list[JSON]) -> str:
    return ", ".join(f"{a['Key']}={a['Value']}" for a in attrs)


def _old_listeners(remote: RemoteState) -> Iterator[Step]:
    """Listeners on a port stack.yaml no longer names (deleting one deletes its rules)."""
    for listener in remote.other_listeners:
        yield Step(
            "delete", "listener", f"HTTP:{listener['Port']}", "elbv2.delete_listener",
            {"ListenerArn": listener["ListenerArn"]}, detail="its port is no longer listener.port",
        )  # fmt: skip


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
            actions_detail(want["DefaultActions"]),
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
            **{k: v for k, v in want.items() if k not in ("LoadBalancerArn", "Tags")},
        }
        before = actions_detail(_by_service([normalize_action(a) for a in have["DefaultActions"]], refs))
        after = actions_detail(want["DefaultActions"])
        yield Step(
            "change", "listener", name, "elbv2.modify_listener", args,
            detail=after, changes=(f"default action {before} → {after}",),
        )  # fmt: skip


def _by_service(actions: list[JSON], refs: Mapping[str, str]) -> list[JSON]:
    """Remote actions with known target group ARNs back as `<tg:service>`, to name them alike."""
    placeholder = {arn: ref for ref, arn in refs.items()}
    for action in actions:
        for group in action.get("ForwardConfig", {}).get("TargetGroups", []):
            group["TargetGroupArn"] = placeholder.get(group["TargetGroupArn"], group["TargetGroupArn"])
    return actions


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
            yield Step(
                "change", "service", name, "ecs.update_service", args,
                detail=", ".join(changed), changes=_service_changes(changed, resolved, have),
            )  # fmt: skip


def _service_changes(changed: list[str], want: JSON, have: JSON) -> tuple[str, ...]:
    """Before → after per changed field; a task definition by its revision (`users:3`)."""
    lines: list[str] = []
    for key in changed:
        if key == "taskDefinition":
            after = "a new revision" if want[key].startswith("<") else _revision(want[key])
            lines.append(f"taskDefinition {_revision(have.get(key))} → {after}")
        else:
            lines += changes(want[key], have.get(key), key) or [key]
    return tuple(lines)


def _revision(arn: str | None) -> str:
    return (arn or "(none)").rsplit("/", 1)[-1]
