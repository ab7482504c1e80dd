"""`microforum status --region R --stack-name S`: the local `status` view, read from AWS.

Per target group: its targets with ALB's states and reason codes (describe_target_health), the
service's running/desired tasks and its deployment in progress (describe_services), its alarms
(describe_alarms) and the last five minutes of ALB's figures (get_metric_data: requests,
target 4xx/5xx, ELB 5xx, p50/p99). The answer has the shape of the local control channel's
`/status`, so local/status.py formats both.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from microforum.deploy.aws import Aws
from microforum.deploy.names import target_group_name
from microforum.deploy.remote import read_stack
from microforum.errors import MicroforumError
from microforum.spec.model import Stack

JSON = dict[str, Any]
WINDOW = dt.timedelta(minutes=5)
_SUMS = ("RequestCount", "HTTPCode_Target_4XX_Count", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count")


def aws_status(stack: Stack, aws: Aws, name: str) -> JSON:
    """The status body of the deployed stack `name`."""
    state = read_stack(aws, name)
    if state is None or "ClusterName" not in state.outputs:
        raise MicroforumError(f"status of stack {name}: no such deployed stack in {aws.region}",
                              hint="deploy it first, or check --stack-name and --region")  # fmt: skip
    outputs = state.outputs
    names = {s.name: target_group_name(name, s.name) for s in stack.services}
    groups = {g["TargetGroupName"]: g for g in aws.paginate("elbv2", "describe_target_groups", "TargetGroups",
                                                             Names=list(names.values()))}  # fmt: skip
    described = aws.call("ecs", "describe_services", cluster=outputs["ClusterName"], services=list(names))
    services = {s["serviceName"]: s for s in described.get("services", [])}
    listeners = _listeners(aws, outputs.get("LoadBalancerArn"))
    scheme = "https" if any(item["Protocol"] == "HTTPS" for item in listeners) else "http"
    body: JSON = {"stack": name, "url": f"{scheme}://{outputs.get('LoadBalancerDnsName', '?')}",
                  "listener": ", ".join(_listener_text(item) for item in listeners) or "(none)",
                  "target_groups": {}, "services": {}}  # fmt: skip
    scaling = _scaling(aws, outputs["ClusterName"], list(names))
    lb_label = outputs.get("LoadBalancerArn", "").split("loadbalancer/", 1)[-1]
    for service, tg_name in names.items():
        group = groups.get(tg_name)
        if group is None:
            continue
        arn = _serving(services.get(service, {})) or group["TargetGroupArn"]
        body["target_groups"][service] = {
            "targets": _targets(aws, arn),
            "metrics": _metrics(aws, lb_label, arn.split(":", 5)[-1]),
        }
        body["services"][service] = _service(aws, name, service, services.get(service, {}))
        body["services"][service]["autoscaling"] = scaling.get(service)
    return body


def _serving(service: JSON) -> str | None:
    """The target group the service is on now: after a canary or linear deployment ECS leaves
    it on the one that was its alternate (docs/policies.md#deployment-strategies)."""
    balancers = service.get("loadBalancers") or [{}]
    return balancers[0].get("targetGroupArn")


def _listeners(aws: Aws, load_balancer_arn: str | None) -> list[JSON]:
    if load_balancer_arn is None:
        return []
    found = aws.paginate("elbv2", "describe_listeners", "Listeners", LoadBalancerArn=load_balancer_arn)
    return sorted(found, key=lambda item: item["Port"])


def _listener_text(listener: JSON) -> str:
    """`HTTPS:443 (policy, certificate)`, `HTTP:80 redirect 301 to HTTPS:443`, `HTTP:8080`."""
    text = f"{listener['Protocol']}:{listener['Port']}"
    if listener["Protocol"] == "HTTPS":
        certificates = ", ".join(c["CertificateArn"] for c in listener.get("Certificates", []))
        text += f" ({listener.get('SslPolicy')}, {certificates})"
    action = (listener.get("DefaultActions") or [{}])[0]
    if action.get("Type") == "redirect":
        config = action["RedirectConfig"]
        code = config["StatusCode"].removeprefix("HTTP_")
        text += f" redirect {code} to {config['Protocol']}:{config['Port']}"
    return text


def _scaling(aws: Aws, cluster: str, services: list[str]) -> dict[str, JSON]:
    """Each service's autoscaling bounds (describe_scalable_targets), as the local body has them."""
    ids = {f"service/{cluster}/{name}": name for name in services}
    found = aws.paginate("application-autoscaling", "describe_scalable_targets", "ScalableTargets",
                         ServiceNamespace="ecs", ResourceIds=list(ids))  # fmt: skip
    return {ids[t["ResourceId"]]: {"min": t["MinCapacity"], "max": t["MaxCapacity"]} for t in found
            if t["ResourceId"] in ids}  # fmt: skip


def _targets(aws: Aws, arn: str) -> list[JSON]:
    rows = aws.call("elbv2", "describe_target_health", TargetGroupArn=arn)["TargetHealthDescriptions"]
    return [{"id": r["Target"]["Id"], "port": r["Target"].get("Port"), "state": r["TargetHealth"]["State"],
             "reason": r["TargetHealth"].get("Reason"), "description": r["TargetHealth"].get("Description")}
            for r in rows]  # fmt: skip


def _service(aws: Aws, name: str, service: str, described: JSON) -> JSON:
    prefix = f"{name}-{service}-"
    alarms = aws.call("cloudwatch", "describe_alarms", AlarmNamePrefix=prefix)["MetricAlarms"]
    deployments = described.get("deployments", [])
    moving = [d for d in deployments if d.get("rolloutState") == "IN_PROGRESS"]
    rollout = (
        {"phase": moving[0].get("rolloutStateReason", "in progress"), "new_percent": 0.0} if moving else None
    )
    running, pending = described.get("runningCount", 0), described.get("pendingCount", 0)
    return {
        "desired": described.get("desiredCount"),
        "desired_reason": f"{running} running, {pending} pending",
        "autoscaling": None,  # filled from the scalable targets
        "strategy": str(described.get("deploymentConfiguration", {}).get("strategy", "ROLLING")).lower(),
        "alarms": [_alarm(a, prefix) for a in alarms],
        "rollout": rollout,
        "last_rollout": deployments[0].get("rolloutStateReason", "") if deployments else "",
    }


def _alarm(alarm: JSON, prefix: str) -> JSON:
    name = alarm["AlarmName"].removeprefix(prefix)
    return {"name": name, "state": alarm["StateValue"], "reason": alarm.get("StateReason", "")}


def _metrics(aws: Aws, lb_label: str, tg_label: str) -> JSON:
    end = dt.datetime.now(dt.UTC)
    dims = [{"Name": "LoadBalancer", "Value": lb_label}, {"Name": "TargetGroup", "Value": tg_label}]

    def query(qid: str, metric: str, stat: str) -> JSON:
        spec = {"Namespace": "AWS/ApplicationELB", "MetricName": metric, "Dimensions": dims}
        return {
            "Id": qid,
            "MetricStat": {"Metric": spec, "Period": int(WINDOW.total_seconds()), "Stat": stat},
        }

    queries = [query(f"m{i}", m, "Sum") for i, m in enumerate(_SUMS)]
    queries += [query("p50", "TargetResponseTime", "p50"), query("p99", "TargetResponseTime", "p99")]
    answer = aws.call(
        "cloudwatch", "get_metric_data", MetricDataQueries=queries, StartTime=end - WINDOW, EndTime=end
    )
    values = {r["Id"]: (r.get("Values") or [None])[0] for r in answer.get("MetricDataResults", [])}
    figures: JSON = {m: int(values.get(f"m{i}") or 0) for i, m in enumerate(_SUMS)}
    figures["TargetResponseTime_p50"], figures["TargetResponseTime_p99"] = (
        values.get("p50"),
        values.get("p99"),
    )
    return figures
