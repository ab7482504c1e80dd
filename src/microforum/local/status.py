"""`microforum status` as text: pure formatting of the control channel's `/status` answer.

Per target group, the targets as `aws elbv2 describe-target-health` shows them (target id and
port, state, reason code, description) plus the last health-check failure, then ALB's
CloudWatch figures for the group, locally: RequestCount, HTTPCode_Target_4XX/5XX_Count,
HTTPCode_ELB_5XX_Count, TargetResponseTime p50/p99; last, the log lines dropped because the
output (the terminal, a pipe) or the access-log file did not keep up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = ("TARGET", "PORT", "STATE", "REASON", "DESCRIPTION")


def format_status(body: Mapping[str, Any]) -> str:
    """The whole status report."""
    out = [f"stack {body.get('stack', '?')} at {body.get('url', '?')}"]
    if body.get("console_url"):
        out.append(f"console {body['console_url']}")
    out.append("")
    if body.get("listener"):
        out += [f"listener: {body['listener']}", ""]
    groups = body.get("target_groups") or {}
    services = body.get("services") or {}
    for name, group in groups.items():
        if isinstance(group, Mapping) and "targets" in group:
            out += format_group(name, group)
            if isinstance(services.get(name), Mapping):
                out += format_policies(services[name])
            out.append("")
    logs = body.get("logs")
    if isinstance(logs, Mapping):
        out += [format_logs(logs), ""]
    return "\n".join(out)


def format_policies(service: Mapping[str, Any]) -> list[str]:
    """A service's desired count and why, its deployment, its alarms."""
    scaling = service.get("autoscaling")
    bounds = f" (autoscaling {scaling['min']}..{scaling['max']})" if scaling else ""
    lines = [f"  desired {service.get('desired')}{bounds}: {service.get('desired_reason', '-')}"]
    rollout = service.get("rollout")
    if rollout:
        lines.append(
            f"  deployment ({service.get('strategy')}): {rollout['phase']},"
            f" new replicas get {rollout['new_percent']:g} % of requests"
        )
    elif service.get("last_rollout"):
        lines.append(f"  last deployment ({service.get('strategy')}): {service['last_rollout']}")
    for alarm in service.get("alarms") or []:
        lines.append(f"  alarm {alarm['name']}: {alarm['state']} ({alarm['reason']})")
    return lines


def format_logs(logs: Mapping[str, Any]) -> str:
    """Lines dropped because their output did not keep up (docs/operations.md)."""
    output, access = logs.get("output") or {}, logs.get("access_log") or {}
    return (f"logs  output {output.get('dropped', 0)} lines dropped"
            f"  access log {access.get('dropped', 0)} lines dropped")  # fmt: skip


def format_group(name: str, group: Mapping[str, Any]) -> list[str]:
    """One target group: a table of targets, their last failures, its figures."""
    targets: Sequence[Mapping[str, Any]] = group.get("targets") or []
    lines = [f"target group {name}"]
    if not targets:
        lines.append("  (no registered targets)")
    else:
        rows = [COLUMNS] + [_row(t) for t in sorted(targets, key=lambda t: str(t.get("id")))]
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]  # fmt: skip
        lines += [
            f"  last failure of {t.get('id')}: {t['last_failure']}" for t in targets if t.get("last_failure")
        ]
    lines.append("  " + format_metrics(group.get("metrics") or {}))
    return lines


def _row(target: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        str(target.get("id", "")),
        str(target.get("port", "")),
        str(target.get("state", "")),
        str(target.get("reason") or "-"),
        str(target.get("description") or "-"),
    )


def format_metrics(metrics: Mapping[str, Any]) -> str:
    """The figures on one line; response times in milliseconds."""
    return (
        f"requests {metrics.get('RequestCount', 0)}"
        f"  target 4xx {metrics.get('HTTPCode_Target_4XX_Count', 0)}"
        f"  target 5xx {metrics.get('HTTPCode_Target_5XX_Count', 0)}"
        f"  elb 5xx {metrics.get('HTTPCode_ELB_5XX_Count', 0)}"
        f"  p50 {_ms(metrics.get('TargetResponseTime_p50'))}"
        f"  p99 {_ms(metrics.get('TargetResponseTime_p99'))}"
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"
