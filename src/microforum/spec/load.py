"""Load stack.yaml into the typed model, refusing anything AWS would refuse.

`parse_stack` is pure (data in, `Stack` out); `load_stack` reads the file. Every refusal is a
`SpecError` naming the file, the key path, the rule and the value:

    stack.yaml: services.posts.health_check.interval: must be 5..300, got 1

The listener's rules are read by `listener.py`; the path-keeping reader is `reader.py`.
"""

from __future__ import annotations

import re
import shlex
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from microforum.errors import UsageError
from microforum.spec import defaults as d
from microforum.spec.listener import read_listener
from microforum.spec.model import (
    AccessLogRotation,
    Database,
    Deployment,
    HealthCheck,
    LoadBalancer,
    Local,
    Service,
    Stack,
    TargetGroup,
)
from microforum.spec.policies import read_alarms, read_autoscaling, read_cluster, read_strategy
from microforum.spec.reader import Node, SpecError, optional, show

__all__ = ["SpecError", "load_stack", "parse_stack"]

# Matched with fullmatch: `$` alone also matches before a final newline ("web\n").
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_SUCCESS_CODES = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    document = Node(source, "", data)
    root = document.mapping(("name", "services", "listener", "load_balancer", "local", "cluster", "database"))
    if "services" not in root or not root["services"].value:
        raise SpecError(source, "services", "must name at least one service")
    services_node = root["services"]
    if not isinstance(services_node.value, Mapping):
        raise services_node.fail(f"must be a mapping, got {show(services_node.value)}")
    services = tuple(
        _service(services_node.child(str(name), body), str(name))
        for name, body in services_node.value.items()
    )
    names = {s.name for s in services}
    listener = read_listener(_section(document, root, "listener"), names)
    return Stack(
        name=optional(
            root,
            "name",
            lambda n: n.string(_SERVICE_NAME, "lowercase letters, digits and -"),
            "microforum",
        ),
        services=services,
        listener=listener,
        load_balancer=_load_balancer(_section(document, root, "load_balancer")),
        local=_local(_section(document, root, "local")),
        cluster=read_cluster(_section(document, root, "cluster")),
        database=_database(_section(document, root, "database")),
        source=source,
    )


def _database(node: Node) -> Database:
    f = node.mapping(("ca_bundle",))
    if "ca_bundle" not in f:
        return Database()
    given = f["ca_bundle"].string()
    # Relative to the stack file, as every path in it.
    path = Path(node.source).parent / given
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise f["ca_bundle"].fail(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return Database(ca_bundle=given, ca_pem=_checked_pem(f["ca_bundle"], str(path), pem))


def _checked_pem(node: Node, path: str, pem: str) -> str:
    """`pem` when it holds CA certificates in PEM that fit a task definition."""
    size, most = len(pem.encode()) // 1024, d.DATABASE_CA_BUNDLE_MAX_BYTES // 1024
    if len(pem.encode()) > d.DATABASE_CA_BUNDLE_MAX_BYTES:
        raise node.fail(
            f"{path} is {size} KiB, over the {most} KiB a task definition can carry: use the "
            "RDS bundle of the stack's region (<region>-bundle.pem)"
        )
    problem = "" if "-----BEGIN CERTIFICATE-----" in pem else "no BEGIN CERTIFICATE line"
    if not problem:
        try:
            ssl.create_default_context(cadata=pem)
        except ssl.SSLError as exc:
            problem = str(exc.reason or exc.args[-1])
    if problem:
        raise node.fail(f"{path} is not a PEM file of certificates ({problem})")
    return pem


def _section(node: Node, fields: Mapping[str, Node], key: str) -> Node:
    """The sub-section `key` of a mapping's fields, or an empty one at its key path if left out."""
    return fields.get(key) or node.child(key, None)


def _service(node: Node, name: str) -> Service:
    if not _SERVICE_NAME.fullmatch(name):
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
            "autoscaling",
            "alarms",
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
    container_port = optional(f, "container_port", lambda n: n.integer(*d.PORT_RANGE), d.CONTAINER_PORT)
    return Service(
        name=name,
        builtin=builtin,
        command=command,
        container_port=container_port,
        host_port=optional(f, "host_port", lambda n: n.integer(*d.HOST_PORT_RANGE), d.HOST_PORT),
        network_mode=optional(f, "network_mode", lambda n: n.choice(("bridge",)), d.NETWORK_MODE),
        cpu=optional(f, "cpu", lambda n: n.integer(*d.CPU_RANGE), d.CPU),
        memory=optional(f, "memory", lambda n: n.integer(*d.MEMORY_RANGE), d.MEMORY),
        desired_count=optional(
            f, "desired_count", lambda n: n.integer(*d.DESIRED_COUNT_RANGE), d.DESIRED_COUNT
        ),
        environment=_environment(f.get("environment")),
        target_group=TargetGroup(
            name=name,
            port=container_port,
            health_check=_health_check(_section(node, f, "health_check")),
            deregistration_delay=optional(
                f,
                "deregistration_delay",
                lambda n: n.integer(*d.DEREGISTRATION_DELAY_RANGE),
                d.DEREGISTRATION_DELAY,
            ),
            algorithm=optional(
                f,
                "load_balancing_algorithm",
                lambda n: n.choice(d.LOAD_BALANCING_ALGORITHMS),
                d.LOAD_BALANCING_ALGORITHM,
            ),
        ),
        deployment=_deployment(_section(node, f, "deployment")),
        autoscaling=read_autoscaling(_section(node, f, "autoscaling")),
        alarms=read_alarms(_section(node, f, "alarms")),
    )


def _command(node: Node) -> tuple[str, ...]:
    if isinstance(node.value, str):
        argv = tuple(shlex.split(node.value))
    elif isinstance(node.value, list) and all(isinstance(a, str) for a in node.value):
        argv = tuple(node.value)
    else:
        raise node.fail(f"must be a string or a list of strings, got {show(node.value)}")
    if not argv:
        raise node.fail("must not be empty")
    return argv


def _environment(node: Node | None) -> tuple[tuple[str, str], ...]:
    if node is None or node.value is None:
        return ()
    if not isinstance(node.value, Mapping):
        raise node.fail(f"must be a mapping of NAME: value, got {show(node.value)}")
    env = []
    for key, value in node.value.items():
        child = node.child(str(key), value)
        if not _ENV_NAME.fullmatch(str(key)):
            raise child.fail("must be a valid environment variable name")
        if isinstance(value, Mapping | list) or value is None:
            raise child.fail(f"must be a string, number or boolean, got {show(value)}")
        env.append((str(key), str(value).lower() if isinstance(value, bool) else str(value)))
    return tuple(env)


def _health_check(node: Node) -> HealthCheck:
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
    interval = optional(
        f, "interval", lambda n: n.integer(*d.HEALTH_CHECK_INTERVAL_RANGE), d.HEALTH_CHECK_INTERVAL
    )
    timeout = optional(
        f, "timeout", lambda n: n.integer(*d.HEALTH_CHECK_TIMEOUT_RANGE), d.HEALTH_CHECK_TIMEOUT
    )
    if timeout >= interval:
        where = f.get("timeout") or f.get("interval") or node
        raise where.fail(f"timeout must be less than the interval ({interval}), got {timeout}")
    threshold = d.HEALTH_CHECK_THRESHOLD_RANGE
    return HealthCheck(
        path=optional(f, "path", _health_path, d.HEALTH_CHECK_PATH),
        interval=interval,
        timeout=timeout,
        healthy_threshold=optional(
            f, "healthy_threshold", lambda n: n.integer(*threshold), d.HEALTHY_THRESHOLD
        ),
        unhealthy_threshold=optional(
            f, "unhealthy_threshold", lambda n: n.integer(*threshold), d.UNHEALTHY_THRESHOLD
        ),
        success_codes=optional(f, "success_codes", _success_codes, d.SUCCESS_CODES),
    )


def _health_path(node: Node) -> str:
    path = node.string(max_len=d.HEALTH_CHECK_PATH_MAX_LENGTH)
    if not path.startswith("/"):
        raise node.fail(f"must start with /, got {path!r}")
    return path


def _success_codes(node: Node) -> str:
    codes = str(node.value) if isinstance(node.value, int) else node.string()
    if not _SUCCESS_CODES.fullmatch(codes):
        raise node.fail(f"must look like 200, 200,202 or 200-299, got {codes!r}")
    for part in codes.split(","):
        low, _, high = part.partition("-")
        if not (200 <= int(low) <= int(high or low) <= 499):
            raise node.fail(f"codes must be 200..499 with ranges low-high, got {codes!r}")
    return codes


def _deployment(node: Node) -> Deployment:
    f = node.mapping(
        (
            "minimum_healthy_percent",
            "maximum_percent",
            "health_check_grace_period",
            "strategy",
            "canary_percent",
            "step_percent",
            "bake_minutes",
        )
    )
    minimum = optional(
        f,
        "minimum_healthy_percent",
        lambda n: n.integer(*d.MINIMUM_HEALTHY_PERCENT_RANGE),
        d.MINIMUM_HEALTHY_PERCENT,
    )
    maximum = optional(f, "maximum_percent", lambda n: n.integer(*d.MAXIMUM_PERCENT_RANGE), d.MAXIMUM_PERCENT)
    if minimum == 100 and maximum == 100:
        raise (f.get("maximum_percent") or node).fail(
            "maximum_percent must exceed 100 when minimum_healthy_percent is 100"
            " (or no task could ever be replaced)"
        )
    strategy, canary, step, bake = read_strategy(f)
    return Deployment(
        minimum_healthy_percent=minimum,
        maximum_percent=maximum,
        health_check_grace_period=optional(
            f,
            "health_check_grace_period",
            lambda n: n.integer(*d.HEALTH_CHECK_GRACE_PERIOD_RANGE),
            d.HEALTH_CHECK_GRACE_PERIOD,
        ),
        strategy=strategy,
        canary_percent=canary,
        step_percent=step,
        bake_minutes=bake,
    )


def _load_balancer(node: Node) -> LoadBalancer:
    f = node.mapping(("idle_timeout", "desync_mitigation_mode", "drop_invalid_header_fields"))
    return LoadBalancer(
        idle_timeout=optional(f, "idle_timeout", lambda n: n.integer(*d.IDLE_TIMEOUT_RANGE), d.IDLE_TIMEOUT),
        desync_mitigation_mode=optional(
            f,
            "desync_mitigation_mode",
            lambda n: n.choice(d.DESYNC_MITIGATION_MODES),
            d.DESYNC_MITIGATION_MODE,
        ),
        drop_invalid_header_fields=optional(
            f, "drop_invalid_header_fields", Node.boolean, d.DROP_INVALID_HEADER_FIELDS
        ),
    )


def _local(node: Node) -> Local:
    f = node.mapping(("port", "data_dir", "max_deregistration_delay", "initial_health_check_interval",
                      "access_log", "time_scale"))  # fmt: skip
    return Local(
        port=optional(f, "port", lambda n: n.integer(*d.PORT_RANGE), d.LOCAL_PORT),
        data_dir=optional(f, "data_dir", lambda n: n.string(), d.LOCAL_DATA_DIR),
        max_deregistration_delay=optional(
            f,
            "max_deregistration_delay",
            lambda n: n.number(*d.LOCAL_MAX_DEREGISTRATION_DELAY_RANGE),
            d.LOCAL_MAX_DEREGISTRATION_DELAY,
        ),
        initial_health_check_interval=optional(
            f,
            "initial_health_check_interval",
            lambda n: n.number(*d.LOCAL_INITIAL_HEALTH_CHECK_INTERVAL_RANGE),
            d.LOCAL_INITIAL_HEALTH_CHECK_INTERVAL,
        ),
        access_log=_access_log(_section(node, f, "access_log")),
        time_scale=optional(
            f, "time_scale", lambda n: n.number(*d.LOCAL_TIME_SCALE_RANGE), d.LOCAL_TIME_SCALE
        ),
    )


def _access_log(node: Node) -> AccessLogRotation:
    f = node.mapping(("max_size_mib", "max_files"))
    return AccessLogRotation(
        max_size_mib=optional(f, "max_size_mib",
                              lambda n: n.integer(*d.LOCAL_ACCESS_LOG_MAX_SIZE_MIB_RANGE),
                              d.LOCAL_ACCESS_LOG_MAX_SIZE_MIB),
        max_files=optional(f, "max_files", lambda n: n.integer(*d.LOCAL_ACCESS_LOG_MAX_FILES_RANGE),
                           d.LOCAL_ACCESS_LOG_MAX_FILES),
    )  # fmt: skip
