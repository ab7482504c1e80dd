"""The architecture's facts as the console draws them, from the stack model (pure).

`topology(stack)` gives the listener, its rules in priority order (the default action last, as
the AWS console lists it) with each rule's conditions and action in words, and the target
groups with what their health check and algorithm are. JSON-able; the picture and the page read
only this.
"""

from __future__ import annotations

from typing import Any

from microforum.spec.model import Action, Condition, FixedResponse, Forward, Rule, Stack

DEFAULT = "default"  # the priority shown for the listener's default action, as ALB shows it


def topology(stack: Stack, url: str = "") -> dict[str, Any]:
    """Listener, rules (by priority, default last) and target groups of `stack`, whose load
    balancer listens at `url` (its port is `local.port` unless `up --port` said otherwise)."""
    port = int(url.rsplit(":", 1)[1]) if url else stack.local.port
    rules = [rule_facts(rule) for rule in stack.listener.rules]
    rules.append({"priority": DEFAULT, "conditions": [], **action_facts(stack.listener.default_action)})
    return {
        "stack": stack.name,
        "url": url,
        "listener": {"port": port, "aws_port": stack.listener.port},
        "rules": rules,
        "groups": [
            {
                "name": s.target_group.name,
                "service": s.name,
                "desired": s.desired_count,
                "algorithm": s.target_group.algorithm,
                "health_check": f"GET {s.target_group.health_check.path} every "
                f"{s.target_group.health_check.interval} s",
            }
            for s in stack.services
        ],
    }


def rule_facts(rule: Rule) -> dict[str, Any]:
    """One rule: its priority, its conditions in words, its action."""
    return {
        "priority": rule.priority,
        "conditions": [condition_text(c) for c in rule.conditions],
        **action_facts(rule.action),
    }


def condition_text(condition: Condition) -> str:
    """A condition as the AWS console words it: `Path is /api/users*`."""
    if condition.field == "query-string":
        pairs = [f"{p.key}={p.value}" if p.key is not None else p.value for p in condition.query]
        return "Query string is " + " or ".join(pairs)
    label = {
        "path-pattern": "Path",
        "host-header": "Host",
        "http-header": f"Header {condition.header_name}",
        "http-request-method": "Method",
        "source-ip": "Source IP",
    }[condition.field]
    return f"{label} is " + " or ".join(condition.values)


def action_facts(action: Action) -> dict[str, Any]:
    """The action in words, and the target groups it forwards to with their weights."""
    if isinstance(action, Forward):
        groups = [{"name": g.name, "weight": g.weight} for g in action.target_groups]
        if len(groups) == 1:
            text = f"forward to {groups[0]['name']}"
        else:
            text = "forward to " + ", ".join(f"{g['name']} ({g['weight']})" for g in groups)
        if action.stickiness_duration:
            text += f", sticky {action.stickiness_duration} s"
        return {"action": text, "forward": groups}
    if isinstance(action, FixedResponse):
        return {"action": f"fixed response {action.status_code}", "forward": []}
    code = action.status_code.removeprefix("HTTP_")
    target = f"{action.protocol}://{action.host}:{action.port}{action.path}?{action.query}"
    return {"action": f"redirect {code} to {target}", "forward": []}
