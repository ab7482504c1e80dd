"""stack.yaml: each value accepted AT its limit and refused one past it, and the sections that
the refusal table of test_load.py leaves out (command, environment, deployment, local, name)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from microforum.errors import UsageError
from microforum.spec import SpecError, load_stack, parse_stack
from microforum.spec import defaults as d
from microforum.spec.model import AccessLogRotation, Deployment, LoadBalancer, Local, Stack

MINIMAL: dict[str, Any] = {"services": {name: None for name in d.BUILTIN_SERVICES}}


def doc_with(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with `value` at the dotted `path` (mappings made on the way)."""
    doc = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
    node[last] = value
    return doc


def parsed(path: str, value: Any) -> Stack:
    return parse_stack(doc_with(path, value), "stack.yaml")


def refusal(path: str, value: Any) -> str:
    with pytest.raises(SpecError) as caught:
        parsed(path, value)
    return str(caught.value)


def users(stack: Stack) -> Any:
    return stack.service("users")


def health(stack: Stack) -> Any:
    return users(stack).target_group.health_check


# (key path, the value at the limit, what the stack then holds, the value one past the limit, the range)
LIMITS = [
    ("services.users.host_port", 65535, lambda s: users(s).host_port, 65536, "0..65535"),
    ("services.users.host_port", 0, lambda s: users(s).host_port, -1, "0..65535"),
    ("services.users.container_port", 65535, lambda s: users(s).container_port, 65536, "1..65535"),
    ("services.users.container_port", 1, lambda s: users(s).target_group.port, 0, "1..65535"),
    ("services.users.cpu", 10240, lambda s: users(s).cpu, 10241, "1..10240"),
    ("services.users.cpu", 1, lambda s: users(s).cpu, 0, "1..10240"),
    ("services.users.memory", 122880, lambda s: users(s).memory, 122881, "1..122880"),
    ("services.users.memory", 1, lambda s: users(s).memory, 0, "1..122880"),
    ("services.users.desired_count", 100, lambda s: users(s).desired_count, 101, "0..100"),
    ("services.users.desired_count", 0, lambda s: users(s).desired_count, -1, "0..100"),
    (
        "services.users.deregistration_delay",
        3600,
        lambda s: users(s).target_group.deregistration_delay,
        3601,
        "0..3600",
    ),
    (
        "services.users.deregistration_delay",
        0,
        lambda s: users(s).target_group.deregistration_delay,
        -1,
        "0..3600",
    ),
    (
        "services.users.health_check.interval",
        300,
        lambda s: health(s).interval,
        301,
        "5..300",
    ),
    (
        "services.users.health_check.timeout",
        2,
        lambda s: health(s).timeout,
        1,
        "2..120",
    ),
    (
        "services.users.health_check.healthy_threshold",
        10,
        lambda s: health(s).healthy_threshold,
        11,
        "2..10",
    ),
    (
        "services.users.health_check.unhealthy_threshold",
        10,
        lambda s: health(s).unhealthy_threshold,
        11,
        "2..10",
    ),
    (
        "services.users.health_check.unhealthy_threshold",
        2,
        lambda s: health(s).unhealthy_threshold,
        1,
        "2..10",
    ),
    (
        "services.users.deployment.maximum_percent",
        200,
        lambda s: users(s).deployment.maximum_percent,
        201,
        "100..200",
    ),
    (
        "services.users.deployment.minimum_healthy_percent",
        0,
        lambda s: users(s).deployment.minimum_healthy_percent,
        -1,
        "0..100",
    ),
    (
        "services.users.deployment.minimum_healthy_percent",
        100,
        lambda s: users(s).deployment.minimum_healthy_percent,
        101,
        "0..100",
    ),
    (
        "services.users.deployment.health_check_grace_period",
        2_147_483_647,
        lambda s: users(s).deployment.health_check_grace_period,
        2_147_483_648,
        "0..2147483647",
    ),
    (
        "services.users.deployment.health_check_grace_period",
        0,
        lambda s: users(s).deployment.health_check_grace_period,
        -1,
        "0..2147483647",
    ),
    ("load_balancer.idle_timeout", 4000, lambda s: s.load_balancer.idle_timeout, 4001, "1..4000"),
    ("load_balancer.idle_timeout", 1, lambda s: s.load_balancer.idle_timeout, 0, "1..4000"),
    ("local.access_log.max_size_mib", 1024, lambda s: s.local.access_log.max_size_mib, 1025, "1..1024"),
    ("local.access_log.max_size_mib", 1, lambda s: s.local.access_log.max_size_mib, 0, "1..1024"),
    ("local.access_log.max_files", 100, lambda s: s.local.access_log.max_files, 101, "1..100"),
    ("local.access_log.max_files", 1, lambda s: s.local.access_log.max_files, 0, "1..100"),
    ("local.port", 65535, lambda s: s.local.port, 65536, "1..65535"),
    ("local.port", 1, lambda s: s.local.port, 0, "1..65535"),
    (
        "local.max_deregistration_delay",
        3600,
        lambda s: s.local.max_deregistration_delay,
        3600.5,
        "0..3600",
    ),
    (
        "local.max_deregistration_delay",
        0,
        lambda s: s.local.max_deregistration_delay,
        -0.5,
        "0..3600",
    ),
    (
        "local.initial_health_check_interval",
        0.05,
        lambda s: s.local.initial_health_check_interval,
        0.04,
        "0.05..300",
    ),
    (
        "local.initial_health_check_interval",
        300,
        lambda s: s.local.initial_health_check_interval,
        301,
        "0.05..300",
    ),
]


@pytest.mark.parametrize(
    ("path", "limit", "read", "past", "bounds"),
    LIMITS,
    ids=[f"{row[0].split('.', 2)[-1]}={row[1]}" for row in LIMITS],
)
def test_a_value_at_its_limit_is_taken_and_one_past_it_refused(
    path: str, limit: Any, read: Any, past: Any, bounds: str
) -> None:
    if path.endswith(".timeout"):  # the timeout must stay below the interval
        doc = doc_with(path, limit)
        assert health(parse_stack(doc)).timeout == limit
    assert read(parsed(path, limit)) == limit
    message = f"stack.yaml: {path}: must be {bounds}, got {past}"
    assert refusal(path, past) == message


@pytest.mark.parametrize(
    ("codes", "taken"),
    [
        ("499", True),
        ("500", False),
        ("200", True),
        ("199", False),
        ("200-499", True),
        ("200-500", False),
        ("300-299", False),  # a range runs low-high
        ("299-299", True),
        ("200,499", True),
        ("200,500", False),
        ("404,199-299", False),
        (404, True),  # YAML's integer
    ],
)
def test_success_codes_are_200_to_499(codes: Any, taken: bool) -> None:
    path = "services.users.health_check.success_codes"
    if taken:
        assert health(parsed(path, codes)).success_codes == str(codes)
    else:
        assert refusal(path, codes) == (
            f"stack.yaml: {path}: codes must be 200..499 with ranges low-high, got {str(codes)!r}"
        )


def test_the_timeout_may_be_one_below_the_interval() -> None:
    hc = health(parsed("services.users.health_check", {"interval": 10, "timeout": 9}))
    assert (hc.interval, hc.timeout) == (10, 9)
    assert refusal("services.users.health_check", {"interval": 10, "timeout": 10}) == (
        "stack.yaml: services.users.health_check.timeout: timeout must be less than the interval (10), got 10"
    )


def test_a_timeout_over_the_default_interval_names_the_timeout() -> None:
    # the interval is the default (6): the message names the key the user wrote
    assert refusal("services.users.health_check", {"timeout": 6}) == (
        "stack.yaml: services.users.health_check.timeout: timeout must be less than the interval (6), got 6"
    )
    assert refusal("services.users.health_check", {"interval": 5}) == (
        "stack.yaml: services.users.health_check.interval: timeout must be less than the interval (5), got 5"
    )


def test_health_check_path() -> None:
    assert health(parsed("services.users.health_check.path", "/" + "a" * 1023)).path == "/" + "a" * 1023
    assert refusal("services.users.health_check.path", "/" + "a" * 1024) == (
        "stack.yaml: services.users.health_check.path: must be at most 1024 characters, got 1025"
    )
    assert refusal("services.users.health_check.path", "health") == (
        "stack.yaml: services.users.health_check.path: must start with /, got 'health'"
    )


def test_every_health_check_value_is_carried() -> None:
    given = {
        "path": "/ping",
        "interval": 30,
        "timeout": 20,
        "healthy_threshold": 3,
        "unhealthy_threshold": 4,
        "success_codes": "200-204",
    }
    hc = health(parsed("services.users.health_check", given))
    assert {key: getattr(hc, key) for key in given} == given


def test_the_algorithm_and_network_mode() -> None:
    group = users(
        parsed("services.users.load_balancing_algorithm", "least_outstanding_requests")
    ).target_group
    assert group.algorithm == "least_outstanding_requests"
    assert users(parsed("services.users.network_mode", "bridge")).network_mode == "bridge"
    assert refusal("services.users.network_mode", "awsvpc") == (
        "stack.yaml: services.users.network_mode: must be one of bridge, got 'awsvpc'"
    )


# --- command ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("python -m web --port $PORT", ("python", "-m", "web", "--port", "$PORT")),
        ("app 'two words'", ("app", "two words")),
        (["node", "server.js"], ("node", "server.js")),
    ],
)
def test_a_command_is_a_string_or_a_list(command: Any, argv: tuple[str, ...]) -> None:
    web = parsed("services.web", {"command": command}).service("web")
    assert (web.command, web.builtin) == (argv, False)


def test_a_builtin_with_a_command_runs_the_command() -> None:
    users_ = users(parsed("services.users.command", "my-users --fast"))
    assert (users_.command, users_.builtin) == (("my-users", "--fast"), False)
    plain = users(parse_stack(copy.deepcopy(MINIMAL)))
    assert (plain.command, plain.builtin) == (("microforum", "serve", "users"), True)


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ([], "must not be empty"),
        (5, "must be a string or a list of strings, got 5"),
        (["app", 5], "must be a string or a list of strings, got ['app', 5]"),
        ({"run": "app"}, "must be a string or a list of strings, got {'run': 'app'}"),
    ],
)
def test_a_bad_command_is_refused(command: Any, problem: str) -> None:
    assert refusal("services.web", {"command": command}) == f"stack.yaml: services.web.command: {problem}"


# --- environment -----------------------------------------------------------------------------


def test_environment_keeps_order_and_writes_values_as_strings() -> None:
    env = {"B_FIRST": "Mixed Case", "a": 1, "_DEBUG": True, "OFF": False, "RATIO": 0.5, "EMPTY": ""}
    assert users(parsed("services.users.environment", env)).environment == (
        ("B_FIRST", "Mixed Case"),
        ("a", "1"),
        ("_DEBUG", "true"),
        ("OFF", "false"),
        ("RATIO", "0.5"),
        ("EMPTY", ""),
    )
    assert users(parsed("services.users.environment", None)).environment == ()
    assert users(parsed("services.users.environment", {})).environment == ()


@pytest.mark.parametrize(
    ("environment", "where", "problem"),
    [
        (["A=1"], "", "must be a mapping of NAME: value, got ['A=1']"),
        ("A=1", "", "must be a mapping of NAME: value, got 'A=1'"),
        ({"1ST": "x"}, ".1ST", "must be a valid environment variable name"),
        ({"MY-VAR": "x"}, ".MY-VAR", "must be a valid environment variable name"),
        ({"A B": "x"}, ".A B", "must be a valid environment variable name"),
        ({"OK": "x", "A\n": "x"}, ".A\n", "must be a valid environment variable name"),
        ({"A": None}, ".A", "must be a string, number or boolean, got nothing"),
        ({"A": [1]}, ".A", "must be a string, number or boolean, got [1]"),
        ({"A": {"b": 1}}, ".A", "must be a string, number or boolean, got {'b': 1}"),
    ],
)
def test_a_bad_environment_is_refused(environment: Any, where: str, problem: str) -> None:
    assert refusal("services.users.environment", environment) == (
        f"stack.yaml: services.users.environment{where}: {problem}"
    )


# --- deployment, load_balancer, local, name ----------------------------------------------------


def test_sections_left_out_take_the_defaults() -> None:
    stack = parse_stack(copy.deepcopy(MINIMAL))
    assert users(stack).deployment == Deployment(
        d.MINIMUM_HEALTHY_PERCENT,
        d.MAXIMUM_PERCENT,
        d.HEALTH_CHECK_GRACE_PERIOD,
        d.DEPLOYMENT_STRATEGY,
        d.CANARY_PERCENT,
        d.STEP_PERCENT,
        d.CANARY_BAKE_MINUTES,
    )
    assert stack.load_balancer == LoadBalancer(
        d.IDLE_TIMEOUT, d.DESYNC_MITIGATION_MODE, d.DROP_INVALID_HEADER_FIELDS
    )
    assert stack.local == Local(
        d.LOCAL_PORT,
        d.LOCAL_DATA_DIR,
        d.LOCAL_MAX_DEREGISTRATION_DELAY,
        d.LOCAL_INITIAL_HEALTH_CHECK_INTERVAL,
        AccessLogRotation(d.LOCAL_ACCESS_LOG_MAX_SIZE_MIB, d.LOCAL_ACCESS_LOG_MAX_FILES),
        d.LOCAL_TIME_SCALE,
    )
    assert (stack.name, stack.source) == ("microforum", "stack.yaml")
    assert users(stack).environment == ()
    assert users(stack).target_group.deregistration_delay == d.DEREGISTRATION_DELAY
    assert (users(stack).target_group.name, users(stack).target_group.port) == ("users", d.CONTAINER_PORT)
    assert users(stack).target_group.algorithm == d.LOAD_BALANCING_ALGORITHM


def test_sections_given_are_carried_whole() -> None:
    doc = doc_with(
        "services.users.deployment",
        {"minimum_healthy_percent": 50, "maximum_percent": 150, "health_check_grace_period": 60},
    )
    doc["load_balancer"] = {
        "idle_timeout": 120,
        "desync_mitigation_mode": "strictest",
        "drop_invalid_header_fields": False,
    }
    doc["local"] = {
        "port": 9090,
        "data_dir": "state",
        "max_deregistration_delay": 0.5,
        "initial_health_check_interval": 1,
    }
    doc["name"] = "forum-2"
    stack = parse_stack(doc, "stack.yaml")
    rolling = ("rolling", d.CANARY_PERCENT, d.STEP_PERCENT, d.CANARY_BAKE_MINUTES)
    assert users(stack).deployment == Deployment(50, 150, 60, *rolling)
    assert stack.service("posts").deployment == Deployment(100, 200, 0, *rolling)  # per service
    assert stack.load_balancer == LoadBalancer(120, "strictest", False)
    assert stack.local == Local(9090, "state", 0.5, 1, AccessLogRotation(10, 5), d.LOCAL_TIME_SCALE)
    assert stack.name == "forum-2"


def test_deployment_may_keep_100_percent_with_room_above_it() -> None:
    deployment = users(parsed("services.users.deployment", {"maximum_percent": 101})).deployment
    assert (deployment.minimum_healthy_percent, deployment.maximum_percent) == (100, 101)
    deployment = users(
        parsed("services.users.deployment", {"minimum_healthy_percent": 99, "maximum_percent": 100})
    ).deployment
    assert (deployment.minimum_healthy_percent, deployment.maximum_percent) == (99, 100)
    assert refusal("services.users.deployment", {"minimum_healthy_percent": 100, "maximum_percent": 100}) == (
        "stack.yaml: services.users.deployment.maximum_percent: maximum_percent must exceed 100 when "
        "minimum_healthy_percent is 100 (or no task could ever be replaced)"
    )


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("services.users.deployment.surge", 1, "unknown key, expected one of: minimum_healthy_percent,"),
        ("local.host", "0.0.0.0", "unknown key, expected one of: port, data_dir,"),
        ("local.access_log", [1], "must be a mapping, got [1]"),
        ("local.data_dir", "", "must be a non-empty string, got ''"),
        ("local.port", "8080", "must be an integer, got '8080'"),
        ("load_balancer.drop_invalid_header_fields", "no", "must be true or false, got 'no'"),
        ("load_balancer.tls", True, "unknown key, expected one of: idle_timeout,"),
        ("name", "My Stack", "must be lowercase letters, digits and -, got 'My Stack'"),
        ("name", "a" * 33, "must be lowercase letters, digits and -, got"),
        ("extra", 1, "unknown key, expected one of: name, services, listener, load_balancer, local"),
    ],
)
def test_bad_section_values_are_refused(path: str, value: Any, problem: str) -> None:
    assert refusal(path, value).startswith(f"stack.yaml: {path}: {problem}")


@pytest.mark.parametrize(
    ("services", "message"),
    [
        (None, "services: must name at least one service"),
        ({}, "services: must name at least one service"),
        (["users"], "services: must be a mapping, got ['users']"),
        ({"Users": None}, "services.Users: service names must be 1-32 lowercase letters"),
        ({"a" * 33: {"command": "x"}}, f"services.{'a' * 33}: service names must be 1-32"),
        ({"9lives": {"command": "x"}}, "services.9lives: service names must be 1-32"),
    ],
)
def test_the_services_section(services: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_stack({"services": services}, "stack.yaml")
    assert str(caught.value).startswith(f"stack.yaml: {message}")


def test_a_service_name_of_32_characters_and_a_dash() -> None:
    name = "a-" + "b" * 30
    stack = parsed(f"services.{name}", {"command": "x"})
    assert [s.name for s in stack.services] == [*d.BUILTIN_SERVICES, name]


def test_a_stack_without_services_names_the_file() -> None:
    with pytest.raises(SpecError) as caught:
        parse_stack({"name": "x"}, "other.yaml")
    assert str(caught.value) == "other.yaml: services: must name at least one service"


def test_load_stack_reads_the_file_and_names_what_went_wrong(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(
        "services:\n  users: {cpu: 512}\n  threads:\n  posts:\n  monolith:\n"
    )
    stack = load_stack(tmp_path / "stack.yaml")
    assert (stack.service("users").cpu, stack.source) == (512, str(tmp_path / "stack.yaml"))
    with pytest.raises(UsageError) as caught:
        load_stack(tmp_path)  # a directory
    assert str(caught.value).startswith(f"read {tmp_path}: ")
    (tmp_path / "bad.yaml").write_text("services:\n  users: {cpu: 1\n\n\n")
    with pytest.raises(SpecError) as bad:
        load_stack(tmp_path / "bad.yaml")
    assert str(bad.value).startswith(f"{tmp_path / 'bad.yaml'}: line 5: not valid YAML: ")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (doc_with("services.web\n", {"command": "x"}), "services.web\n: service names must be 1-32"),
        (doc_with("name", "forum\n"), "name: must be lowercase letters"),
        (
            doc_with("services.users.health_check.success_codes", "200\n"),
            "services.users.health_check.success_codes: must look like 200",
        ),
        (
            {
                **MINIMAL,
                "listener": {
                    "rules": [
                        {
                            "priority": 1,
                            "conditions": [{"path_pattern": "/a\n"}],
                            "action": {"forward": "users"},
                        }
                    ]
                },
            },
            "listener.rules[0].conditions[0].path_pattern[0]: must be a path pattern",
        ),
    ],
    ids=["service-name", "stack-name", "success-codes", "path-pattern"],
)
def test_a_trailing_newline_is_not_part_of_a_name(doc: Any, message: str) -> None:
    # `$` also matches before a final newline: names and patterns are matched whole
    with pytest.raises(SpecError) as caught:
        parse_stack(doc, "stack.yaml")
    assert str(caught.value).startswith(f"stack.yaml: {message}")


def test_load_stack_refusals_in_full(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UsageError) as caught:
        load_stack(missing)
    assert str(caught.value) == f"read {missing}: no such file"
    assert caught.value.hint == "run from the project's root or pass --stack FILE"
    with pytest.raises(UsageError) as directory:
        load_stack(tmp_path)
    assert str(directory.value) == f"read {tmp_path}: Is a directory"
    (tmp_path / "bell.yaml").write_text("services:\x07\n")  # refused by YAML's reader: no line
    with pytest.raises(SpecError) as bell:
        load_stack(tmp_path / "bell.yaml")
    assert str(bell.value).startswith(
        f"{tmp_path / 'bell.yaml'}: document: not valid YAML: unacceptable character"
    )
    (tmp_path / "tab.yaml").write_text("services:\n\tusers:\n")
    with pytest.raises(SpecError) as tab:
        load_stack(tmp_path / "tab.yaml")
    assert str(tab.value) == (
        f"{tmp_path / 'tab.yaml'}: line 2: not valid YAML: found character '\\t' that cannot start any token"
    )


def test_a_stack_file_is_read_as_utf_8(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_bytes(
        "services:\n  users: {environment: {GREETING: héllo}}\n  threads:\n  posts:\n  monolith:\n".encode()
    )
    assert users(load_stack(tmp_path / "stack.yaml")).environment == (("GREETING", "héllo"),)


def test_a_left_out_listener_is_read_at_its_key_path() -> None:
    # the default action forwards to the monolith: without it, the error names `listener`
    with pytest.raises(SpecError) as caught:
        parse_stack({"services": {"web": {"command": "x"}}}, "stack.yaml")
    assert str(caught.value) == (
        "stack.yaml: listener.default_action: required: the default forward goes to 'monolith', "
        "which is not a service"
    )


def test_a_service_that_is_not_built_in_needs_a_command() -> None:
    assert refusal("services.web", {"cpu": 256}) == (
        "stack.yaml: services.web: needs a command: 'web' is not a built-in service "
        "(users, threads, posts, monolith)"
    )


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        ([200], "must be a non-empty string, got [200]"),
        ("", "must be a non-empty string, got ''"),
    ],
)
def test_success_codes_are_a_string_or_a_number(codes: Any, problem: str) -> None:
    path = "services.users.health_check.success_codes"
    assert refusal(path, codes) == f"stack.yaml: {path}: {problem}"
