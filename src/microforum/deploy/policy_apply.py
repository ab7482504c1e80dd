"""The rendered policies that AWS keeps by name, as deploy's plan steps: scalable targets,
target-tracking policies, the alarms and the dashboard (deploy/policies.py renders them).

`resolve` fills the CloudWatch placeholders from known ARNs (pure); `read_policies` reads what
exists (only what this stack named: `<stack>-…` alarms and policies, its services' scalable
targets, its dashboard); `plan_policies` compares and returns the steps (pure): create or
change what differs (each changed field before → after), delete what the stack no longer asks
for. A second run plans nothing; `plan_policies(empty, current)` removes everything (destroy).
The listeners and the services' deployment configuration are in deploy's plan.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from microforum.deploy.aws import Aws
from microforum.deploy.changes import changes
from microforum.deploy.names import output_ref
from microforum.deploy.policies import LB_LABEL, render_policies, tg_label
from microforum.deploy.render import Target
from microforum.deploy.steps import Step
from microforum.deploy.steps import resolve as resolve_placeholders
from microforum.spec.model import Stack

JSON = dict[str, Any]
AS = "application-autoscaling"
_TG_REF = re.compile(r"<tg:([a-z0-9-]+)>")


@dataclass(frozen=True)
class PolicyState:
    """The policies by name (the desired ones, or what AWS has)."""

    scalable_targets: Mapping[str, JSON] = field(default_factory=dict)  # ResourceId -> request
    scaling_policies: Mapping[str, JSON] = field(default_factory=dict)  # PolicyName -> request
    alarms: Mapping[str, JSON] = field(default_factory=dict)  # AlarmName -> request
    dashboard: JSON | None = None


def label(arn: str, marker: str) -> str:
    """A CloudWatch dimension from an ARN: `app/NAME/ID` (marker `loadbalancer/`) or
    `targetgroup/NAME/ID` (marker ``, the resource part of a target group ARN)."""
    resource = arn.split(":", 5)[-1]
    return resource.removeprefix(marker)


def label_refs(refs: Mapping[str, str]) -> dict[str, str]:
    """The CloudWatch placeholders (`<lb-label>`, `<tg-label:NAME>`) whose ARN is known in
    `refs` (the load balancer output, `<tg:NAME>`): the executor adds them as ARNs appear."""
    found = {}
    lb = refs.get(output_ref("LoadBalancerArn"))
    if lb is not None and not lb.startswith("<"):
        found[LB_LABEL] = label(lb, "loadbalancer/")
    for ref, arn in refs.items():
        match = _TG_REF.fullmatch(ref)
        if match and not arn.startswith("<"):
            found[tg_label(match.group(1))] = label(arn, "")
    return found


def resolve(rendered: JSON, refs: Mapping[str, str]) -> PolicyState:
    """The desired state with what `refs` knows filled in (labels, cluster name); unknown
    placeholders stay, for the executor."""
    doc = resolve_placeholders(rendered, {**refs, **label_refs(refs)})
    services = doc["services"].values()
    return PolicyState(
        scalable_targets={t["ResourceId"]: t for t in (s["scalable_target"] for s in services) if t},
        scaling_policies={p["PolicyName"]: p for s in services for p in s["scaling_policies"]},
        alarms={a["AlarmName"]: a for s in services for a in s["alarms"]},
        dashboard=doc["dashboard"],
    )


def read_policies(aws: Aws, stack_name: str, cluster: str, services: list[str]) -> PolicyState:
    """What exists of this stack's policies."""
    ids = [f"service/{cluster}/{name}" for name in services]
    targets = {t["ResourceId"]: _target(t) for t in aws.paginate(
        "application-autoscaling", "describe_scalable_targets", "ScalableTargets",
        ServiceNamespace="ecs", ResourceIds=ids) if ids}  # fmt: skip
    policies = {p["PolicyName"]: _policy(p) for p in aws.paginate(
        "application-autoscaling", "describe_scaling_policies", "ScalingPolicies", ServiceNamespace="ecs")
        if p["ResourceId"] in ids and p["PolicyName"].startswith(f"{stack_name}-")}  # fmt: skip
    alarms = {a["AlarmName"]: a for a in aws.paginate(
        "cloudwatch", "describe_alarms", "MetricAlarms", AlarmNamePrefix=f"{stack_name}-")}  # fmt: skip
    listed = aws.call("cloudwatch", "list_dashboards", DashboardNamePrefix=stack_name)["DashboardEntries"]
    dashboard = None
    if any(e["DashboardName"] == stack_name for e in listed):
        body = aws.call("cloudwatch", "get_dashboard", DashboardName=stack_name)["DashboardBody"]
        dashboard = {"DashboardName": stack_name, "DashboardBody": body}
    return PolicyState(targets, policies, alarms, dashboard)


def _target(t: JSON) -> JSON:
    keys = ("ServiceNamespace", "ResourceId", "ScalableDimension", "MinCapacity", "MaxCapacity")
    return {k: t[k] for k in keys}


def _policy(p: JSON) -> JSON:
    keys = ("PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension", "PolicyType",
            "TargetTrackingScalingPolicyConfiguration")  # fmt: skip
    return {k: p[k] for k in keys if k in p}


# What an alarm's description holds that its request also has (compared field by field).
_ALARM_FIELDS = ("AlarmDescription", "ActionsEnabled", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
                 "ComparisonOperator", "TreatMissingData", "MetricName", "Namespace", "Statistic",
                 "ExtendedStatistic", "Period")  # fmt: skip


def _alarm_differs(want: JSON, have: JSON) -> bool:
    if any(want.get(k) != have.get(k) for k in _ALARM_FIELDS if k in want):
        return True
    return _dimensions(want) != _dimensions(have)


def _contains(want: JSON, have: JSON) -> bool:
    """Whether every field of `want` has the same value in `have` (AWS adds its own fields)."""
    return all(k in have and (_contains(v, have[k]) if isinstance(v, dict) else have[k] == v)
               for k, v in want.items())  # fmt: skip


def _put(resource: str, name: str, operation: str, params: JSON, old: JSON | None, detail: str = "") -> Step:
    """Create, or change with the differing fields before → after (tags are not compared)."""
    if old is None:
        return Step("create", resource, name, operation, params, detail=detail)
    skipped = ("Tags", "Dimensions", "Metrics", "DashboardBody")
    compared = {k: v for k, v in params.items() if k not in skipped}
    lines = changes(compared, old)
    if params.get("DashboardBody") and old.get("DashboardBody"):
        lines += ["widgets"] if _body(params) != _body(old) else []
    if params.get("Dimensions") is not None and _dimensions(params) != _dimensions(old):
        lines.append(f"Dimensions {_dimensions(old)} → {_dimensions(params)}")
    return Step("change", resource, name, operation, params, detail=detail, changes=tuple(lines))


def _dimensions(alarm: JSON) -> list[tuple[str, str]]:
    return sorted((d["Name"], d["Value"]) for d in alarm.get("Dimensions", []))


def plan_policies(want: PolicyState, have: PolicyState) -> list[Step]:
    """The steps from `have` to `want`: creates and changes first, deletes after."""
    steps: list[Step] = []
    for rid, target in want.scalable_targets.items():
        old = have.scalable_targets.get(rid)
        if old is None or not _contains(target, old):
            size = f"{target['MinCapacity']}..{target['MaxCapacity']} tasks"
            steps.append(_put("scalable target", rid, f"{AS}.register_scalable_target", target, old, size))
    for name, policy in want.scaling_policies.items():
        old = have.scaling_policies.get(name)
        if old is None or not _contains(policy, old):
            steps.append(_put("scaling policy", name, f"{AS}.put_scaling_policy", policy, old))
    for name, alarm in want.alarms.items():
        old = have.alarms.get(name)
        if old is None or _alarm_differs(alarm, old):
            steps.append(_put("alarm", name, "cloudwatch.put_metric_alarm", alarm, old))
    board, old_board = want.dashboard, have.dashboard
    if board is not None and (old_board is None or _body(board) != _body(old_board)):
        steps.append(_put("dashboard", board["DashboardName"], "cloudwatch.put_dashboard", board, old_board))
    return steps + _deletes(want, have)


def _body(dashboard: JSON) -> Any:
    return json.loads(dashboard["DashboardBody"])


def _deletes(want: PolicyState, have: PolicyState) -> list[Step]:
    steps = []
    for name, policy in have.scaling_policies.items():
        if name not in want.scaling_policies:
            keys = ("PolicyName", "ServiceNamespace", "ResourceId", "ScalableDimension")
            params = {k: policy[k] for k in keys}
            steps.append(Step("delete", "scaling policy", name, f"{AS}.delete_scaling_policy", params))
    for rid, target in have.scalable_targets.items():
        if rid not in want.scalable_targets:
            params = {k: target[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}
            steps.append(Step("delete", "scalable target", rid, f"{AS}.deregister_scalable_target", params))
    gone = sorted(set(have.alarms) - set(want.alarms))
    if gone:
        steps.append(
            Step("delete", "alarms", ", ".join(gone), "cloudwatch.delete_alarms", {"AlarmNames": gone})
        )
    if have.dashboard is not None and want.dashboard is None:
        name = have.dashboard["DashboardName"]
        steps.append(
            Step("delete", "dashboard", name, "cloudwatch.delete_dashboards", {"DashboardNames": [name]})
        )
    return steps


def apply(aws: Aws, steps: list[Step]) -> None:
    """Make each step's call, in order."""
    for step in steps:
        client, operation = step.operation.split(".", 1)
        aws.call(client, operation, **dict(step.params))


def plan_stack_policies(stack: Stack, target: Target, aws: Aws, refs: Mapping[str, str]) -> list[Step]:
    """Deploy's policy steps: what stack.yaml asks for (placeholders where the target groups or
    the stack do not exist yet) against what exists. Reads only."""
    want = resolve(render_policies(stack, target), refs)
    cluster = target.outputs.get("ClusterName")
    if cluster is None:
        return plan_policies(want, PolicyState())
    services = [s.name for s in stack.services]
    return plan_policies(want, read_policies(aws, target.stack_name, cluster, services))


def destroy_policies(stack: Stack, name: str, aws: Aws, cluster: str, say: Callable[[str], None]) -> None:
    """Remove every policy of the deployment `name` (before its services go)."""
    services = [s.name for s in stack.services]
    steps = plan_policies(PolicyState(), read_policies(aws, name, cluster, services))
    for step in steps:
        say(f"  {step.message}")
    apply(aws, steps)
