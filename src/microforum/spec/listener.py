"""The listener part of stack.yaml: rules, their conditions and actions, with ALB's limits.

Allowed characters and limits follow the ELBv2 API model (docs/alb.md §A); every number
comes from `defaults`.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from microforum.spec import defaults as d
from microforum.spec.model import (
    Action,
    Condition,
    ConditionField,
    FixedResponse,
    Forward,
    Listener,
    QueryPair,
    Redirect,
    Rule,
    WeightedTargetGroup,
)
from microforum.spec.policies import read_certificate_arn
from microforum.spec.reader import Node, optional

# ALB's allowed characters (docs/alb.md §A; ELBv2 API *ConditionConfig).
_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_\-.$/~\"'@:+&*?]+$")
_HOST_PATTERN = re.compile(r"^[A-Za-z0-9\-.*?]+$")
_METHOD = re.compile(r"^[A-Z_\-]{1,40}$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_FIXED_CONTENT_TYPES = (
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
)
_CONDITION_KEYS: dict[str, ConditionField] = {
    "path_pattern": "path-pattern",
    "host_header": "host-header",
    "http_header": "http-header",
    "http_request_method": "http-request-method",
    "query_string": "query-string",
    "source_ip": "source-ip",
}
_ONE_PER_RULE = ("path-pattern", "host-header", "http-request-method", "source-ip")


def read_listener(node: Node, services: set[str]) -> Listener:
    f = node.mapping(("port", "default_action", "rules", "certificate_arn"))
    default_action = (
        _action(f["default_action"], services)
        if "default_action" in f
        else Forward((WeightedTargetGroup(d.DEFAULT_TARGET_GROUP, 1),))
    )
    if "default_action" not in f and d.DEFAULT_TARGET_GROUP not in services:
        raise node.child("default_action", None).fail(
            f"required: the default forward goes to '{d.DEFAULT_TARGET_GROUP}', which is not a service"
        )
    if "rules" in f:
        rules = tuple(_rule(item, services) for item in f["rules"].items() if f["rules"].value)
    else:
        rules = _default_rules(node, services)
    seen: dict[int, int] = {}
    for index, rule in enumerate(rules):
        if rule.priority in seen:
            raise (
                node.child("rules", None)
                .child(index, None)
                .child("priority", None)
                .fail(f"priority {rule.priority} is used twice (also rules[{seen[rule.priority]}])")
            )
        seen[rule.priority] = index
    port = optional(f, "port", lambda n: n.integer(*d.PORT_RANGE), d.LISTENER_PORT)
    certificate = optional(f, "certificate_arn", read_certificate_arn, None)
    taken = (d.HTTPS_PORT, d.INTERNAL_LISTENER_PORT)
    if certificate is not None and port in taken:
        raise f["port"].fail(
            f"with certificate_arn, HTTPS takes {taken[0]} and the services' HTTP listener {taken[1]}; "
            f"choose another port for the redirect, got {port}"
        )
    return Listener(
        port=port,
        default_action=default_action,
        rules=tuple(sorted(rules, key=lambda r: r.priority)),
        certificate_arn=certificate,
    )


def _default_rules(node: Node, services: set[str]) -> tuple[Rule, ...]:
    rules = []
    for priority, pattern, target in d.DEFAULT_RULES:
        if target not in services:
            raise node.child("rules", None).fail(
                f"required: the default rules forward to '{target}', which is not a service"
            )
        rules.append(
            Rule(
                priority,
                (Condition("path-pattern", (pattern,)),),
                Forward((WeightedTargetGroup(target, 1),)),
            )
        )
    return tuple(rules)


def _rule(node: Node, services: set[str]) -> Rule:
    f = node.mapping(("priority", "conditions", "action"))
    if "priority" not in f:
        raise node.child("priority", None).fail("required: an integer 1..50000")
    if "action" not in f:
        raise node.child("action", None).fail("required: forward, fixed_response or redirect")
    conds_node = f.get("conditions")
    if conds_node is None or not conds_node.value:
        raise node.child("conditions", None).fail(
            "required: at least one condition (only the default action has none)"
        )
    conditions = tuple(_condition(c) for c in conds_node.items())
    for field in _ONE_PER_RULE:
        if sum(c.field == field for c in conditions) > 1:
            raise conds_node.fail(f"at most one {field} condition per rule")
    values = sum(len(c.values) + len(c.query) for c in conditions)
    if values > d.CONDITION_VALUES_PER_RULE:
        raise conds_node.fail(
            f"at most {d.CONDITION_VALUES_PER_RULE} condition values per rule, got {values}"
        )
    wildcards = sum(
        v.count("*") + v.count("?")
        for c in conditions
        if c.field != "source-ip"
        for v in (*c.values, *(q.value for q in c.query), *(q.key or "" for q in c.query))
    )
    if wildcards > d.WILDCARDS_PER_RULE:
        raise conds_node.fail(f"at most {d.WILDCARDS_PER_RULE} wildcards per rule, got {wildcards}")
    return Rule(
        priority=f["priority"].integer(*d.PRIORITY_RANGE),
        conditions=conditions,
        action=_action(f["action"], services),
    )


def _condition(node: Node) -> Condition:
    f = node.mapping(tuple(_CONDITION_KEYS))
    if len(f) != 1:
        raise node.fail(f"must have exactly one of: {', '.join(_CONDITION_KEYS)}")
    key, value = next(iter(f.items()))
    field: ConditionField = _CONDITION_KEYS[key]
    if field == "http-header":
        h = value.mapping(("name", "values"))
        if "name" not in h or "values" not in h:
            raise value.fail("needs name and values")
        name = h["name"].string(_TOKEN, "an HTTP header name", d.HTTP_HEADER_NAME_MAX_LENGTH)
        if name.lower() == "host":
            raise h["name"].fail("can't be Host: use a host_header condition")
        return Condition(field, _values(h["values"], None, "any visible characters"), header_name=name)
    if field == "query-string":
        return Condition(field, query=tuple(_query_pair(item) for item in value.items()))
    if field == "source-ip":
        return Condition(field, tuple(_cidr(item) for item in value.items()))
    pattern, what = {
        "path-pattern": (
            _PATH_PATTERN,
            "a path pattern of A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?",
        ),
        "host-header": (_HOST_PATTERN, "a host name of A-Z a-z 0-9 - . * ?"),
        "http-request-method": (_METHOD, "an HTTP method of A-Z, - and _"),
    }[field]
    return Condition(field, _values(value, pattern, what))


def _values(node: Node, pattern: re.Pattern[str] | None, what: str) -> tuple[str, ...]:
    items = node.items()
    if not items:
        raise node.fail("needs at least one value")
    limit = d.CONDITION_VALUE_MAX_LENGTH
    return tuple(item.string(pattern, what, limit) for item in items)


def _query_pair(node: Node) -> QueryPair:
    f = node.mapping(("key", "value"))
    if "value" not in f:
        raise node.child("value", None).fail("required")
    limit = d.CONDITION_VALUE_MAX_LENGTH
    key = optional(f, "key", lambda n: n.string(max_len=limit), None)
    return QueryPair(key, f["value"].string(max_len=limit))


def _cidr(node: Node) -> str:
    text = node.string()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise node.fail(f"must be an IPv4 or IPv6 CIDR block, got {text!r}") from exc
    if str(network) == "255.255.255.255/32":
        raise node.fail("255.255.255.255/32 is not allowed")
    return str(network)


def _action(node: Node, services: set[str]) -> Action:
    f = node.mapping(("forward", "fixed_response", "redirect"))
    if len(f) != 1:
        raise node.fail("must have exactly one of: forward, fixed_response, redirect")
    key, value = next(iter(f.items()))
    if key == "forward":
        return _forward(value, services)
    if key == "fixed_response":
        return _fixed_response(value)
    return _redirect(value)


def _forward(node: Node, services: set[str]) -> Forward:
    def target(n: Node) -> str:
        name = n.string()
        if name not in services:
            raise n.fail(
                f"no such target group (one per service: {', '.join(sorted(services))}), got {name!r}"
            )
        return name

    if isinstance(node.value, str):
        return Forward((WeightedTargetGroup(target(node), 1),))
    f = node.mapping(("target_groups", "stickiness"))
    items = f["target_groups"].items() if "target_groups" in f else []
    if not 1 <= len(items) <= d.TARGET_GROUPS_PER_ACTION:
        raise (f.get("target_groups") or node).fail(
            f"needs 1..{d.TARGET_GROUPS_PER_ACTION} target groups, got {len(items)}"
        )
    groups = []
    for item in items:
        g = item.mapping(("name", "weight"))
        if "name" not in g:
            raise item.child("name", None).fail("required")
        groups.append(
            WeightedTargetGroup(
                target(g["name"]), optional(g, "weight", lambda n: n.integer(*d.WEIGHT_RANGE), 1)
            )
        )
    stickiness = None
    if "stickiness" in f:
        s = f["stickiness"].mapping(("duration",))
        if "duration" not in s:
            raise f["stickiness"].child("duration", None).fail("required: seconds 1..604800")
        stickiness = s["duration"].integer(*d.STICKINESS_DURATION_RANGE)
    return Forward(tuple(groups), stickiness)


def _fixed_response(node: Node) -> FixedResponse:
    f = node.mapping(("status_code", "content_type", "message_body"))
    if "status_code" not in f:
        raise node.child("status_code", None).fail("required: 200..599")
    status = f["status_code"].integer(*d.FIXED_RESPONSE_STATUS_RANGE)
    if 300 <= status < 400:
        raise f["status_code"].fail(f"must be 2XX, 4XX or 5XX, got {status}")
    body = optional(f, "message_body", lambda n: n.value if isinstance(n.value, str) else str(n.value), "")
    if len(body) > d.FIXED_RESPONSE_BODY_MAX_LENGTH:
        raise f["message_body"].fail(
            f"must be at most {d.FIXED_RESPONSE_BODY_MAX_LENGTH} characters, got {len(body)}"
        )
    return FixedResponse(
        status_code=status,
        content_type=optional(
            f,
            "content_type",
            lambda n: n.choice(_FIXED_CONTENT_TYPES),
            d.FIXED_RESPONSE_CONTENT_TYPE,
        ),
        message_body=body,
    )


def _redirect(node: Node) -> Redirect:
    f = node.mapping(("status_code", "protocol", "host", "port", "path", "query"))
    parts: dict[str, Any] = {}
    for key in ("host", "port", "path", "query"):
        if key in f:
            parts[key] = str(f[key].value) if f[key].value is not None else ""
            if len(parts[key]) > d.REDIRECT_PART_MAX_LENGTH:
                raise f[key].fail(
                    f"must be at most {d.REDIRECT_PART_MAX_LENGTH} characters, got {len(parts[key])}"
                )
    if "path" in parts and not parts["path"].startswith("/"):
        raise f["path"].fail(f"must start with /, got {parts['path']!r}")
    if "protocol" in f:
        parts["protocol"] = f["protocol"].choice(("HTTP", "HTTPS", "#{protocol}"))
    status = optional(f, "status_code", lambda n: n.choice(("HTTP_301", "HTTP_302")), d.REDIRECT_STATUS_CODE)
    return Redirect(status_code=status, **parts)  # type: ignore[arg-type]
