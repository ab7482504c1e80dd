"""stack.yaml's production policies -> the AWS API requests that make them (pure; no boto3).

Like render.py, each `convert_*` returns the plain dict one AWS call takes (the boto3 request
shape), with placeholders for what does not exist yet: `<tg:NAME>` (a target group's ARN),
`<tg-label:NAME>` (its CloudWatch dimension, targetgroup/NAME/ID), `<lb-label>` (the load
balancer's, app/NAME/ID), `<rule:NAME>` (the service's production listener rule),
`<output:KEY>` (a cluster stack output). The facts and their sources: docs/policies.md.

* HTTPS: an HTTPS listener on 443 with the certificate and ALB's recommended TLS policy carries
  the rules and the default action; HTTP:80 answers 301 to it.
* Autoscaling: an Application Auto Scaling scalable target per service and one target-tracking
  policy per tracked figure (requests per target, CPU), cooldowns from `defaults`.
* Alarms: CloudWatch metric alarms per service (target 5xx, unhealthy hosts, p99 latency, and
  the 4xx+5xx error rate as metric math), named in the service's
  `deploymentConfiguration.alarms` so a deployment that trips one rolls back.
* Deployment strategies: `deploymentConfiguration.strategy` with its canary or linear settings
  and bake time; canary and linear also need the alternate target group and the production
  listener rule in the service's `loadBalancers[].advancedConfiguration`.
* A dashboard with the figures per target group.
"""

from __future__ import annotations

import json
from typing import Any

from microforum.deploy.names import tags
from microforum.deploy.render import (
    Target,
    convert_internal_listener,
    convert_listener,
    convert_redirect_listener,
)
from microforum.deploy.strategy import (
    alarm_name,
    convert_deployment_configuration,
    convert_load_balancers,
)
from microforum.spec import defaults as d
from microforum.spec.model import Service, Stack

__all__ = ["convert_deployment_configuration", "convert_load_balancers", "render_policies"]

JSON = dict[str, Any]
NAMESPACE_ALB = "AWS/ApplicationELB"
LB_LABEL = "<lb-label>"


def tg_label(service: str) -> str:
    return f"<tg-label:{service}>"


# ------------------------------------------------------------------------- listeners


def convert_listeners(stack: Stack, target: Target) -> list[JSON]:
    """create_listener arguments: HTTP alone, or HTTPS:443, the services' plain-HTTP listener
    and HTTP:port redirecting to HTTPS (render.py makes each; deploy's plan applies them)."""
    found = [convert_listener(stack, target), convert_internal_listener(stack, target),
             convert_redirect_listener(stack, target)]  # fmt: skip
    return [listener for listener in found if listener is not None]


# ------------------------------------------------------------------------- autoscaling


def resource_id(service: Service, target: Target) -> str:
    return f"service/{target.output('ClusterName')}/{service.name}"


def convert_scalable_target(service: Service, target: Target) -> JSON | None:
    """register_scalable_target arguments (None: the service has no autoscaling)."""
    scaling = service.autoscaling
    if scaling is None:
        return None
    return {
        "ServiceNamespace": "ecs",
        "ResourceId": resource_id(service, target),
        "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": scaling.min,
        "MaxCapacity": scaling.max,
    }


def convert_scaling_policies(stack: Stack, service: Service, target: Target) -> list[JSON]:
    """put_scaling_policy arguments: one target-tracking policy per tracked figure."""
    scaling = service.autoscaling
    if scaling is None:
        return []
    tracked: list[tuple[str, float, JSON]] = []
    if scaling.requests_per_target is not None:
        label = f"{LB_LABEL}/{tg_label(service.name)}"
        metric = {"PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}
        tracked.append(("requests", scaling.requests_per_target, metric))
    if scaling.cpu_percent is not None:
        tracked.append(
            ("cpu", scaling.cpu_percent, {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"})
        )
    return [
        {
            "PolicyName": f"{target.stack_name}-{service.name}-{kind}",
            "ServiceNamespace": "ecs",
            "ResourceId": resource_id(service, target),
            "ScalableDimension": "ecs:service:DesiredCount",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": float(value),
                "PredefinedMetricSpecification": metric,
                "ScaleOutCooldown": d.SCALE_OUT_COOLDOWN,
                "ScaleInCooldown": d.SCALE_IN_COOLDOWN,
                "DisableScaleIn": False,
            },
        }
        for kind, value, metric in tracked
    ]


# ------------------------------------------------------------------------- alarms


def _dimensions(service: Service) -> list[JSON]:
    return [
        {"Name": "LoadBalancer", "Value": LB_LABEL},
        {"Name": "TargetGroup", "Value": tg_label(service.name)},
    ]


def _alarm(name: str, service: Service, kind: str, what: str, threshold: float, comparison: str,
           **metric: Any) -> JSON:  # fmt: skip
    alarms = service.alarms
    return {
        "AlarmName": alarm_name(name, service, kind),
        "AlarmDescription": f"{service.name}: {what}",
        "ActionsEnabled": False,  # read by ECS deployments (deploymentConfiguration.alarms)
        "EvaluationPeriods": alarms.evaluation_periods,
        "DatapointsToAlarm": alarms.datapoints,
        "Threshold": float(threshold),
        "ComparisonOperator": comparison,
        "TreatMissingData": "missing",
        **metric,
        "Tags": tags(name, service.name),
    }


def _metric(name: str, service: Service, stat: str) -> JSON:
    """One metric's fields of put_metric_alarm; a percentile is an ExtendedStatistic."""
    key = "ExtendedStatistic" if stat.startswith("p") else "Statistic"
    return {"MetricName": name, "Namespace": NAMESPACE_ALB, "Dimensions": _dimensions(service),
            "Period": service.alarms.period, key: stat}  # fmt: skip


def _error_rate_metrics(service: Service) -> list[JSON]:
    def stat(qid: str, name: str) -> JSON:
        metric = {"Namespace": NAMESPACE_ALB, "MetricName": name, "Dimensions": _dimensions(service)}
        return {"Id": qid, "ReturnData": False,
                "MetricStat": {"Metric": metric, "Period": service.alarms.period, "Stat": "Sum"}}  # fmt: skip

    return [
        stat("e4", "HTTPCode_Target_4XX_Count"),
        stat("e5", "HTTPCode_Target_5XX_Count"),
        stat("n", "RequestCount"),
        {"Id": "rate", "Label": "4xx+5xx % of requests", "ReturnData": True,
         "Expression": "100 * (FILL(e4, 0) + FILL(e5, 0)) / n"},
    ]  # fmt: skip


def convert_alarms(name: str, service: Service) -> list[JSON]:
    """put_metric_alarm arguments for the service's four alarms."""
    a = service.alarms
    return [
        _alarm(name, service, "target-5xx", "target 5xx responses", a.target_5xx, "GreaterThanThreshold",
               **_metric("HTTPCode_Target_5XX_Count", service, "Sum")),
        _alarm(name, service, "unhealthy-hosts", "unhealthy targets", a.unhealthy_hosts,
               "GreaterThanOrEqualToThreshold", **_metric("UnHealthyHostCount", service, "Maximum")),
        _alarm(name, service, "p99-latency", "p99 target response time (s)", a.p99_seconds,
               "GreaterThanThreshold", **_metric("TargetResponseTime", service, "p99")),
        _alarm(name, service, "error-rate", "4xx+5xx as a percent of requests", a.error_percent,
               "GreaterThanThreshold", Metrics=_error_rate_metrics(service)),
    ]  # fmt: skip


# ------------------------------------------------------------------------- the dashboard


def convert_dashboard(stack: Stack, name: str) -> JSON:
    """put_dashboard arguments: per target group requests, 4xx/5xx, p50/p99, unhealthy hosts."""
    widgets = []
    for row, service in enumerate(stack.services):
        dims = ["LoadBalancer", LB_LABEL, "TargetGroup", tg_label(service.name)]

        def m(name: str, stat: str, dims: list[str] = dims) -> list[Any]:
            return [NAMESPACE_ALB, name, *dims, {"stat": stat}]

        charts = [
            ("requests", [m("RequestCount", "Sum")]),
            ("4xx / 5xx", [m("HTTPCode_Target_4XX_Count", "Sum"), m("HTTPCode_Target_5XX_Count", "Sum")]),
            ("p50 / p99 (s)", [m("TargetResponseTime", "p50"), m("TargetResponseTime", "p99")]),
            ("healthy / unhealthy", [m("HealthyHostCount", "Minimum"), m("UnHealthyHostCount", "Maximum")]),
        ]  # fmt: skip
        for col, (title, metrics) in enumerate(charts):
            widgets.append({
                "type": "metric", "x": col * 6, "y": row * 6, "width": 6, "height": 6,
                "properties": {"title": f"{service.name}: {title}", "metrics": metrics,
                               "period": d.ALARM_PERIOD, "region": "<region>", "view": "timeSeries"},
            })  # fmt: skip
    return {"DashboardName": name, "DashboardBody": json.dumps({"widgets": widgets}, sort_keys=True)}


# ------------------------------------------------------------------------- everything


def render_policies(stack: Stack, target: Target) -> JSON:
    """The policies' requests, per service, plus the listeners and the dashboard."""
    dashboard = convert_dashboard(stack, target.stack_name)
    dashboard["DashboardBody"] = dashboard["DashboardBody"].replace("<region>", target.region)
    return {
        "listeners": convert_listeners(stack, target),
        "services": {
            s.name: {
                "scalable_target": convert_scalable_target(s, target),
                "scaling_policies": convert_scaling_policies(stack, s, target),
                "alarms": convert_alarms(target.stack_name, s),
                "deploymentConfiguration": convert_deployment_configuration(target.stack_name, s),
                "loadBalancers": convert_load_balancers(stack, s, target.outputs),
            }
            for s in stack.services
        },
        "dashboard": dashboard,
    }
