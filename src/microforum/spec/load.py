"""Load stack.yaml into the typed model, refusing anything AWS would refuse.

`parse_stack` is pure (data in, `Stack` out); `load_stack` reads the file. Every refusal is a
`SpecError` naming the file, the key path, the rule and the value:

    stack.yaml: services.posts.health_check.interval: must be 5..300, got 1
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from microforum.errors import UsageError
from microforum.spec import defaults as d
from microforum.spec.model import (
    Action,
    Condition,
    ConditionField,
    Deployment,
    FixedResponse,
    Forward,
    HealthCheck,
    Listener,
    LoadBalancer,
    Local,
    QueryPair,
    Redirect,
    Rule,
    Service,
    Stack,
    TargetGroup,
    WeightedTargetGroup,
)

T = TypeVar("T")


class SpecError(UsageError):
    """stack.yaml is not a valid stack."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")
        self.path = path
        self.problem = problem


# ALB's allowed characters (ALB_SPEC A.2, BOTO-ELBV2 *ConditionConfig).
_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_\-.$/~\"'@:+&*?]+$")
_HOST_PATTERN = re.compile(r"^[A-Za-z0-9\-.*?]+$")
_METHOD = re.compile(r"^[A-Z_\-]{1,40}$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_SUCCESS_CODES = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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


class _Node:
    """A value from the YAML document and the key path that led to it."""

    def __init__(self, source: str, path: str, value: Any) -> None:
        self.source, self.path, self.value = source, path, value

    def fail(self, problem: str) -> SpecError:
        return SpecError(self.source, self.path, problem)

    def child(self, key: str | int, value: Any) -> _Node:
        sep = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else key)
        return _Node(self.source, f"{self.path}{sep}", value)

    def mapping(self, allowed: tuple[str, ...]) -> dict[str, _Node]:
        if self.value is None:
            return {}
        if not isinstance(self.value, Mapping):
            raise self.fail(f"must be a mapping, got {_show(self.value)}")
        for key in self.value:
            if key not in allowed:
                raise self.child(str(key), None).fail(f"unknown key, expected one of: {', '.join(allowed)}")
        return {str(k): self.child(str(k), v) for k, v in self.value.items()}

    def items(self) -> list[_Node]:
        values = self.value if isinstance(self.value, list) else [self.value]
        return [self.child(i, v) for i, v in enumerate(values)]

    def integer(self, low: int, high: int) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"must be an integer, got {_show(self.value)}")
        if not low <= self.value <= high:
            raise self.fail(f"must be {low}..{high}, got {self.value}")
        return self.value

    def number(self, low: float, high: float) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.fail(f"must be a number, got {_show(self.value)}")
        if not low <= self.value <= high:
            raise self.fail(f"must be {low}..{high}, got {self.value}")
        return float(self.value)

    def string(self, pattern: re.Pattern[str] | None = None, what: str = "", max_len: int = 0) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail(f"must be a non-empty string, got {_show(self.value)}")
        if max_len and len(self.value) > max_len:
            raise self.fail(f"must be at most {max_len} characters, got {len(self.value)}")
        if pattern is not None and not pattern.match(self.value):
            raise self.fail(f"must be {what}, got {_show(self.value)}")
        return self.value

    def choice(self, options: tuple[str, ...]) -> str:
        if self.value not in options:
            raise self.fail(f"must be one of {', '.join(options)}, got {_show(self.value)}")
        return str(self.value)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"must be true or false, got {_show(self.value)}")
        return self.value


def _show(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def _opt(fields: dict[str, _Node], key: str, read: Callable[[_Node], T], default: T) -> T:
    node = fields.get(key)
    return default if node is None or node.value is None else read(node)


def load_stack(path: str | Path = d.STACK_FILE) -> Stack:
    """Read and validate a stack file; raise `UsageError`/`SpecError` with one clear line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(
            f"read {source}: no such file",
            hint="run from the project's root or pass --stack FILE",
        ) from exc
    except OSError as exc:
        raise UsageError(f"read {source}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "document"
        raise SpecError(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    return parse_stack(data, source)


def parse_stack(data: Any, source: str = d.STACK_FILE) -> Stack:
    """Validate a parsed stack document and fill its gaps from `defaults`."""
    root = _Node(source, "", data).mapping(("name", "services", "listener", "load_balancer", "local"))
    if "services" not in root or not root["services"].value:
        raise SpecError(source, "services", "must name at least one service")
    services_node = root["services"]
    if not isinstance(services_node.value, Mapping):
        raise services_node.fail(f"must be a mapping, got {_show(services_node.value)}")
    services = tuple(
        _service(services_node.child(str(name), body), str(name))
        for name, body in services_node.value.items()
    )
    names = {s.name for s in services}
    listener = _listener(root.get("listener") or _Node(source, "listener", None), names)
    return Stack(
        name=_opt(
            root,
            "name",
            lambda n: n.string(_SERVICE_NAME, "lowercase letters, digits and -"),
            "microforum",
        ),
        services=services,
        listener=listener,
        load_balancer=_load_balancer(root.get("load_balancer") or _Node(source, "load_balancer", None)),
        local=_local(root.get("local") or _Node(source, "local", None)),
        source=source,
    )


def _service(node: _Node, name: str) -> Service:
    if not _SERVICE_NAME.match(name):
        raise node.fail("service names must be 1-32 lowercase letters, digits and -, starting with a letter")
    f = node.mapping(
        (
            "command",
            "container_port",
            "host_port",
            "network_mode",
            "cpu",
            "memory",
            "desired_count",
            "environment",
            "health_check",
            "deregistration_delay",
            "load_balancing_algorithm",
            "deployment",
        )
    )
    builtin = name in d.BUILTIN_SERVICES and "command" not in f
    if builtin:
        command: tuple[str, ...] = ("microforum", "serve", name)
    elif "command" in f:
        command = _command(f["command"])
    else:
        raise node.fail(
            f"needs a command: '{name}' is not a built-in service ({', '.join(d.BUILTIN_SERVICES)})"
        )
    container_port = _opt(f, "container_port", lambda n: n.integer(*d.PORT_RANGE), d.CONTAINER_PORT)
    return Service(
        name=name,
        builtin=builtin,
        command=command,
        container_port=container_port,
        host_port=_opt(f, "host_port", lambda n: n.integer(0, 65535), d.HOST_PORT),
        network_mode=_opt(f, "network_mode", lambda n: n.choice(("bridge",)), d.NETWORK_MODE),
        cpu=_opt(f, "cpu", lambda n: n.integer(1, 10240), d.CPU),
        memory=_opt(f, "memory", lambda n: n.integer(1, 122880), d.MEMORY),
        desired_count=_opt(f, "desired_count", lambda n: n.integer(0, 100), d.DESIRED_COUNT),
        environment=_environment(f.get("environment")),
        target_group=TargetGroup(
            name=name,
            port=container_port,
            health_check=_health_check(f.get("health_check") or node.child("health_check", None)),
            deregistration_delay=_opt(
                f,
                "deregistration_delay",
                lambda n: n.integer(*d.DEREGISTRATION_DELAY_RANGE),
                d.DEREGISTRATION_DELAY,
            ),
            algorithm=_opt(
                f,
                "load_balancing_algorithm",
                lambda n: n.choice(d.LOAD_BALANCING_ALGORITHMS),
                d.LOAD_BALANCING_ALGORITHM,
            ),
        ),
        deployment=_deployment(f.get("deployment") or node.child("deployment", None)),
    )


def _command(node: _Node) -> tuple[str, ...]:
    if isinstance(node.value, str):
        argv = tuple(shlex.split(node.value))
    elif isinstance(node.value, list) and all(isinstance(a, str) for a in node.value):
        argv = tuple(node.value)
    else:
        raise node.fail(f"must be a string or a list of strings, got {_show(node.value)}")
    if not argv:
        raise node.fail("must not be empty")
    return argv


def _environment(node: _Node | None) -> tuple[tuple[str, str], ...]:
    if node is None or node.value is None:
        return ()
    if not isinstance(node.value, Mapping):
        raise node.fail(f"must be a mapping of NAME: value, got {_show(node.value)}")
    env = []
    for key, value in node.value.items():
        child = node.child(str(key), value)
        if not _ENV_NAME.match(str(key)):
            raise child.fail("must be a valid environment variable name")
        if isinstance(value, Mapping | list) or value is None:
            raise child.fail(f"must be a string, number or boolean, got {_show(value)}")
        env.append((str(key), str(value).lower() if isinstance(value, bool) else str(value)))
    return tuple(env)


def _health_check(node: _Node) -> HealthCheck:
    f = node.mapping(
        (
            "path",
            "interval",
            "timeout",
            "healthy_threshold",
            "unhealthy_threshold",
            "success_codes",
        )
    )
    interval = _opt(
        f, "interval", lambda n: n.integer(*d.HEALTH_CHECK_INTERVAL_RANGE), d.HEALTH_CHECK_INTERVAL
    )
    timeout = _opt(f, "timeout", lambda n: n.integer(*d.HEALTH_CHECK_TIMEOUT_RANGE), d.HEALTH_CHECK_TIMEOUT)
    if timeout >= interval:
        where = f.get("timeout") or f.get("interval") or node
        raise where.fail(f"timeout must be less than the interval ({interval}), got {timeout}")
    threshold = d.HEALTH_CHECK_THRESHOLD_RANGE
    return HealthCheck(
        path=_opt(f, "path", _health_path, d.HEALTH_CHECK_PATH),
        interval=interval,
        timeout=timeout,
        healthy_threshold=_opt(f, "healthy_threshold", lambda n: n.integer(*threshold), d.HEALTHY_THRESHOLD),
        unhealthy_threshold=_opt(
            f, "unhealthy_threshold", lambda n: n.integer(*threshold), d.UNHEALTHY_THRESHOLD
        ),
        success_codes=_opt(f, "success_codes", _success_codes, d.SUCCESS_CODES),
    )


def _health_path(node: _Node) -> str:
    path = node.string(max_len=1024)
    if not path.startswith("/"):
        raise node.fail(f"must start with /, got {path!r}")
    return path


def _success_codes(node: _Node) -> str:
    codes = str(node.value) if isinstance(node.value, int) else node.string()
    if not _SUCCESS_CODES.match(codes):
        raise node.fail(f"must look like 200, 200,202 or 200-299, got {codes!r}")
    for part in codes.split(","):
        low, _, high = part.partition("-")
        if not (200 <= int(low) <= int(high or low) <= 499):
            raise node.fail(f"codes must be 200..499 with ranges low-high, got {codes!r}")
    return codes


def _deployment(node: _Node) -> Deployment:
    f = node.mapping(("minimum_healthy_percent", "maximum_percent", "health_check_grace_period"))
    minimum = _opt(f, "minimum_healthy_percent", lambda n: n.integer(0, 100), d.MINIMUM_HEALTHY_PERCENT)
    maximum = _opt(f, "maximum_percent", lambda n: n.integer(100, 200), d.MAXIMUM_PERCENT)
    if minimum == 100 and maximum == 100:
        raise (f.get("maximum_percent") or node).fail(
            "maximum_percent must exceed 100 when minimum_healthy_percent is 100"
            " (or no task could ever be replaced)"
        )
    return Deployment(
        minimum_healthy_percent=minimum,
        maximum_percent=maximum,
        health_check_grace_period=_opt(
            f,
            "health_check_grace_period",
            lambda n: n.integer(0, 2_147_483_647),
            d.HEALTH_CHECK_GRACE_PERIOD,
        ),
    )


def _listener(node: _Node, services: set[str]) -> Listener:
    f = node.mapping(("port", "default_action", "rules"))
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
    return Listener(
        port=_opt(f, "port", lambda n: n.integer(*d.PORT_RANGE), d.LISTENER_PORT),
        default_action=default_action,
        rules=tuple(sorted(rules, key=lambda r: r.priority)),
    )


def _default_rules(node: _Node, services: set[str]) -> tuple[Rule, ...]:
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


def _rule(node: _Node, services: set[str]) -> Rule:
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


def _condition(node: _Node) -> Condition:
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


def _values(node: _Node, pattern: re.Pattern[str] | None, what: str) -> tuple[str, ...]:
    items = node.items()
    if not items:
        raise node.fail("needs at least one value")
    limit = d.CONDITION_VALUE_MAX_LENGTH
    return tuple(item.string(pattern, what, limit) for item in items)


def _query_pair(node: _Node) -> QueryPair:
    f = node.mapping(("key", "value"))
    if "value" not in f:
        raise node.child("value", None).fail("required")
    limit = d.CONDITION_VALUE_MAX_LENGTH
    key = _opt(f, "key", lambda n: n.string(max_len=limit), None)
    return QueryPair(key, f["value"].string(max_len=limit))


def _cidr(node: _Node) -> str:
    text = node.string()
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise node.fail(f"must be an IPv4 or IPv6 CIDR block, got {text!r}") from exc
    if str(network) == "255.255.255.255/32":
        raise node.fail("255.255.255.255/32 is not allowed")
    return str(network)


def _action(node: _Node, services: set[str]) -> Action:
    f = node.mapping(("forward", "fixed_response", "redirect"))
    if len(f) != 1:
        raise node.fail("must have exactly one of: forward, fixed_response, redirect")
    key, value = next(iter(f.items()))
    if key == "forward":
        return _forward(value, services)
    if key == "fixed_response":
        return _fixed_response(value)
    return _redirect(value)


def _forward(node: _Node, services: set[str]) -> Forward:
    def target(n: _Node) -> str:
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
            WeightedTargetGroup(target(g["name"]), _opt(g, "weight", lambda n: n.integer(*d.WEIGHT_RANGE), 1))
        )
    stickiness = None
    if "stickiness" in f:
        s = f["stickiness"].mapping(("duration",))
        if "duration" not in s:
            raise f["stickiness"].child("duration", None).fail("required: seconds 1..604800")
        stickiness = s["duration"].integer(*d.STICKINESS_DURATION_RANGE)
    return Forward(tuple(groups), stickiness)


def _fixed_response(node: _Node) -> FixedResponse:
    f = node.mapping(("status_code", "content_type", "message_body"))
    if "status_code" not in f:
        raise node.child("status_code", None).fail("required: 200..599")
    status = f["status_code"].integer(200, 599)
    if 300 <= status < 400:
        raise f["status_code"].fail(f"must be 2XX, 4XX or 5XX, got {status}")
    body = _opt(f, "message_body", lambda n: n.value if isinstance(n.value, str) else str(n.value), "")
    if len(body) > d.FIXED_RESPONSE_BODY_MAX_LENGTH:
        raise f["message_body"].fail(
            f"must be at most {d.FIXED_RESPONSE_BODY_MAX_LENGTH} characters, got {len(body)}"
        )
    return FixedResponse(
        status_code=status,
        content_type=_opt(
            f,
            "content_type",
            lambda n: n.choice(_FIXED_CONTENT_TYPES),
            d.FIXED_RESPONSE_CONTENT_TYPE,
        ),
        message_body=body,
    )


def _redirect(node: _Node) -> Redirect:
    f = node.mapping(("status_code", "protocol", "host", "port", "path", "query"))
    parts: dict[str, Any] = {}
    for key in ("host", "port", "path", "query"):
        if key in f:
            parts[key] = str(f[key].value) if f[key].value is not None else ""
            if len(parts[key]) > 128:
                raise f[key].fail(f"must be at most 128 characters, got {len(parts[key])}")
    if "path" in parts and not parts["path"].startswith("/"):
        raise f["path"].fail(f"must start with /, got {parts['path']!r}")
    if "protocol" in f:
        parts["protocol"] = f["protocol"].choice(("HTTP", "HTTPS", "#{protocol}"))
    status = _opt(f, "status_code", lambda n: n.choice(("HTTP_301", "HTTP_302")), d.REDIRECT_STATUS_CODE)
    return Redirect(status_code=status, **parts)  # type: ignore[arg-type]


def _load_balancer(node: _Node) -> LoadBalancer:
    f = node.mapping(("idle_timeout", "desync_mitigation_mode", "drop_invalid_header_fields"))
    return LoadBalancer(
        idle_timeout=_opt(f, "idle_timeout", lambda n: n.integer(*d.IDLE_TIMEOUT_RANGE), d.IDLE_TIMEOUT),
        desync_mitigation_mode=_opt(
            f,
            "desync_mitigation_mode",
            lambda n: n.choice(d.DESYNC_MITIGATION_MODES),
            d.DESYNC_MITIGATION_MODE,
        ),
        drop_invalid_header_fields=_opt(
            f, "drop_invalid_header_fields", _Node.boolean, d.DROP_INVALID_HEADER_FIELDS
        ),
    )


def _local(node: _Node) -> Local:
    f = node.mapping(("port", "data_dir", "max_deregistration_delay", "initial_health_check_interval"))
    return Local(
        port=_opt(f, "port", lambda n: n.integer(*d.PORT_RANGE), d.LOCAL_PORT),
        data_dir=_opt(f, "data_dir", lambda n: n.string(), d.LOCAL_DATA_DIR),
        max_deregistration_delay=_opt(
            f,
            "max_deregistration_delay",
            lambda n: n.number(0, 3600),
            d.LOCAL_MAX_DEREGISTRATION_DELAY,
        ),
        initial_health_check_interval=_opt(
            f,
            "initial_health_check_interval",
            lambda n: n.number(0.05, 300),
            d.LOCAL_INITIAL_HEALTH_CHECK_INTERVAL,
        ),
    )
