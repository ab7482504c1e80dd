"""stack.yaml loading: the defaults, and every refusal as a table of (document, error line)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from microforum.spec import SpecError, load_stack, parse_stack
from microforum.spec import defaults as d
from microforum.spec.model import FixedResponse, Forward, Redirect

ROOT = Path(__file__).resolve().parents[2]

MINIMAL: dict[str, Any] = {"services": {name: None for name in d.BUILTIN_SERVICES}}


def test_minimal_stack_takes_the_seed_defaults() -> None:
    stack = parse_stack(copy.deepcopy(MINIMAL))
    users = stack.service("users")
    assert (users.container_port, users.host_port, users.network_mode) == (3000, 0, "bridge")
    assert (users.cpu, users.memory, users.desired_count) == (256, 256, 1)
    hc = users.target_group.health_check
    assert (hc.path, hc.interval, hc.timeout, hc.healthy_threshold, hc.unhealthy_threshold) == (
        "/",
        6,
        5,
        2,
        2,
    )
    assert hc.success_codes == "200"
    assert stack.listener.port == 80
    assert [(r.priority, r.conditions[0].values, r.action) for r in stack.listener.rules] == [
        (1, ("/api/users*",), Forward((_tg("users"),))),
        (2, ("/api/threads*",), Forward((_tg("threads"),))),
        (3, ("/api/posts*",), Forward((_tg("posts"),))),
    ]
    assert stack.listener.default_action == Forward((_tg("monolith"),))
    assert stack.load_balancer.desync_mitigation_mode == "defensive"
    assert (stack.local.access_log.max_size_mib, stack.local.access_log.max_files) == (10, 5)


def test_access_log_rotation_is_configurable_under_local() -> None:
    doc = copy.deepcopy(MINIMAL) | {"local": {"access_log": {"max_size_mib": 1, "max_files": 2}}}
    rotation = parse_stack(doc).local.access_log
    assert (rotation.max_size_mib, rotation.max_files) == (1, 2)


def _tg(name: str) -> Any:
    from microforum.spec.model import WeightedTargetGroup

    return WeightedTargetGroup(name, 1)


def test_the_repository_stack_yaml_is_the_default_architecture() -> None:
    stack = load_stack(ROOT / "stack.yaml")
    default = parse_stack(copy.deepcopy(MINIMAL))
    assert stack.listener == default.listener
    assert [s.target_group for s in stack.services] == [s.target_group for s in default.services]
    assert [s.name for s in stack.services] == list(d.BUILTIN_SERVICES)


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    doc["listener"] = {
        "default_action": {"forward": "monolith"},
        "rules": [
            {
                "priority": 1,
                "conditions": [{"path_pattern": "/api/users*"}],
                "action": {"forward": "users"},
            }
        ],
    }
    keys = path.split(".")
    node = doc
    for key in keys[:-1]:
        key_or_index: Any = int(key) if key.isdigit() else key
        if isinstance(node, dict) and node.get(key_or_index) is None:
            node[key_or_index] = {}
        node = node[key_or_index]
    last: Any = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
    if isinstance(node, list) and last == len(node):
        node.append(value)
    else:
        node[last] = value
    return doc


REFUSALS = [
    (
        "interval-low",
        "services.posts.health_check.interval",
        1,
        "services.posts.health_check.interval: must be 5..300, got 1",
    ),
    (
        "timeout-not-below-interval",
        "services.posts.health_check",
        {"interval": 5, "timeout": 5},
        "services.posts.health_check.timeout: timeout must be less than the interval (5), got 5",
    ),
    (
        "threshold-high",
        "services.users.health_check.healthy_threshold",
        11,
        "services.users.health_check.healthy_threshold: must be 2..10, got 11",
    ),
    (
        "success-codes",
        "services.users.health_check.success_codes",
        "2xx",
        "services.users.health_check.success_codes: must look like 200, 200,202 or 200-299, got '2xx'",
    ),
    ("cpu-zero", "services.users.cpu", 0, "services.users.cpu: must be 1..10240, got 0"),
    (
        "port-high",
        "services.users.container_port",
        70000,
        "services.users.container_port: must be 1..65535, got 70000",
    ),
    ("port-string", "listener.port", "80", "listener.port: must be an integer, got '80'"),
    (
        "unknown-key",
        "services.users.replicas",
        3,
        "services.users.replicas: unknown key, expected one of: command,",
    ),
    (
        "not-builtin",
        "services.web",
        {"cpu": 256},
        "services.web: needs a command: 'web' is not a built-in service",
    ),
    (
        "priority-zero",
        "listener.rules.0.priority",
        0,
        "listener.rules[0].priority: must be 1..50000, got 0",
    ),
    (
        "priority-twice",
        "listener.rules.1",
        {"priority": 1, "conditions": [{"path_pattern": "/x"}], "action": {"forward": "posts"}},
        "listener.rules[1].priority: priority 1 is used twice (also rules[0])",
    ),
    (
        "path-chars",
        "listener.rules.0.conditions.0.path_pattern",
        "/api/users%20",
        "listener.rules[0].conditions[0].path_pattern[0]: must be a path pattern of",
    ),
    (
        "path-too-long",
        "listener.rules.0.conditions.0.path_pattern",
        "/" + "a" * 128,
        "listener.rules[0].conditions[0].path_pattern[0]: must be at most 128 characters, got 129",
    ),
    (
        "six-values",
        "listener.rules.0.conditions.0.path_pattern",
        ["/a", "/b", "/c", "/d", "/e", "/f"],
        "listener.rules[0].conditions: at most 5 condition values per rule, got 6",
    ),
    (
        "two-path-conditions",
        "listener.rules.0.conditions",
        [{"path_pattern": "/a"}, {"path_pattern": "/b"}],
        "listener.rules[0].conditions: at most one path-pattern condition per rule",
    ),
    (
        "header-host",
        "listener.rules.0.conditions.0",
        {"http_header": {"name": "Host", "values": ["a"]}},
        "listener.rules[0].conditions[0].http_header.name: can't be Host: use a host_header condition",
    ),
    (
        "bad-cidr",
        "listener.rules.0.conditions.0",
        {"source_ip": ["10.0.0.300/8"]},
        "listener.rules[0].conditions[0].source_ip[0]: must be an IPv4 or IPv6 CIDR block",
    ),
    (
        "unknown-target",
        "listener.rules.0.action",
        {"forward": "web"},
        "listener.rules[0].action.forward: no such target group",
    ),
    (
        "weight-high",
        "listener.rules.0.action",
        {"forward": {"target_groups": [{"name": "users", "weight": 1000}]}},
        "listener.rules[0].action.forward.target_groups[0].weight: must be 0..999, got 1000",
    ),
    (
        "fixed-3xx",
        "listener.default_action",
        {"fixed_response": {"status_code": 301}},
        "listener.default_action.fixed_response.status_code: must be 2XX, 4XX or 5XX, got 301",
    ),
    (
        "no-conditions",
        "listener.rules.0.conditions",
        [],
        "listener.rules[0].conditions: required: at least one condition",
    ),
    (
        "desync-mode",
        "load_balancer.desync_mitigation_mode",
        "paranoid",
        "load_balancer.desync_mitigation_mode: must be one of monitor, defensive, strictest, got 'paranoid'",
    ),
    (
        "idle-timeout",
        "load_balancer.idle_timeout",
        0,
        "load_balancer.idle_timeout: must be 1..4000, got 0",
    ),
    (
        "access-log-size",
        "local.access_log",
        {"max_size_mib": 0},
        "local.access_log.max_size_mib: must be 1..1024, got 0",
    ),
    (
        "access-log-files",
        "local.access_log",
        {"max_files": "five"},
        "local.access_log.max_files: must be an integer, got 'five'",
    ),
    (
        "access-log-key",
        "local.access_log",
        {"max_size": "10m"},
        "local.access_log.max_size: unknown key, expected one of: max_size_mib, max_files",
    ),
    (
        "max-percent",
        "services.users.deployment",
        {"maximum_percent": 100},
        "services.users.deployment.maximum_percent: maximum_percent must exceed 100",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_invalid_stacks_are_refused_with_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_stack(_with(path, value), "stack.yaml")
    assert str(caught.value).startswith(f"stack.yaml: {message}"), str(caught.value)


def test_all_action_and_condition_types_parse() -> None:
    doc = _with(
        "listener.rules",
        [
            {
                "priority": 10,
                "conditions": [
                    {"host_header": ["*.example.com"]},
                    {"http_header": {"name": "X-Env", "values": ["beta"]}},
                    {"http_request_method": ["GET"]},
                    {"query_string": [{"key": "v", "value": "2"}]},
                    {"source_ip": ["10.0.0.0/8"]},
                ],
                "action": {
                    "forward": {
                        "target_groups": [
                            {"name": "users", "weight": 10},
                            {"name": "monolith", "weight": 20},
                        ],
                        "stickiness": {"duration": 60},
                    }
                },
            },
            {
                "priority": 20,
                "conditions": [{"path_pattern": "/old/*"}],
                "action": {"redirect": {"path": "/new/#{path}", "status_code": "HTTP_302"}},
            },
            {
                "priority": 5,
                "conditions": [{"path_pattern": "/teapot"}],
                "action": {"fixed_response": {"status_code": 418, "message_body": "short and stout"}},
            },
        ],
    )
    rules = parse_stack(doc).listener.rules
    assert [r.priority for r in rules] == [5, 10, 20]  # sorted, lowest first
    assert rules[0].action == FixedResponse(418, "text/plain", "short and stout")
    assert [c.field for c in rules[1].conditions] == [
        "host-header",
        "http-header",
        "http-request-method",
        "query-string",
        "source-ip",
    ]
    assert rules[1].action.stickiness_duration == 60  # type: ignore[union-attr]
    assert rules[2].action == Redirect("HTTP_302", path="/new/#{path}")


def test_health_check_success_codes() -> None:
    stack = parse_stack(_with("services.users.health_check", {"success_codes": "200,300-302"}))
    hc = stack.service("users").target_group.health_check
    assert [code for code in (199, 200, 201, 299, 300, 302, 303) if hc.accepts(code)] == [
        200,
        300,
        302,
    ]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microforum", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_refuses_an_invalid_stack_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(_with("services.posts.health_check.interval", 1)))
    result = _cli("render", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "microforum: stack.yaml: services.posts.health_check.interval: must be 5..300, got 1"
    ]


def test_cli_names_a_missing_stack_file(tmp_path: Path) -> None:
    result = _cli("render", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "microforum: read stack.yaml: no such file"
    assert "Traceback" not in result.stderr


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("services:\n  users: {cpu: [\n")
    with pytest.raises(SpecError, match=r"^.*stack.yaml: line \d+: not valid YAML"):
        load_stack(tmp_path / "stack.yaml")
