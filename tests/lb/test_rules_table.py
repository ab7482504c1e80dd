"""The router's path-only fast path (every request of the default stack takes it) and the
edges of matching: IPv6 Host literals, query keys in any case, a trailing backslash in a
pattern, redirects with default ports (lb/rules.py)."""

from __future__ import annotations

from typing import Any

import pytest
from lb_helpers import stack

from microforum.lb.rules import RequestView, Router, host_without_port, redirect_location, wildcard
from microforum.spec.model import Forward, Redirect

PATHS = """
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 30, conditions: [{path_pattern: ["/api/posts*", "/p/?"]}], action: {forward: posts}}
    - {priority: 7, conditions: [{path_pattern: ["/api/users*"]}], action: {forward: users}}
    - {priority: 9, conditions: [{path_pattern: ["/api/*"]}], action: {forward: threads}}
"""


def router(rules: str = PATHS) -> Router:
    # Built inside each test, not at import: mutmut switches a mutant on only while tests run.
    return Router(stack(rules).listener)


def routed(priority_and_action: tuple[int, Any]) -> tuple[int, str]:
    priority, action = priority_and_action
    assert isinstance(action, Forward)
    return priority, action.target_groups[0].name


def view(path: str = "/", query: str = "", host: str | None = "h.test", headers: Any = ()) -> RequestView:
    return RequestView("GET", path, query, host, list(headers), "127.0.0.1", "http", 80)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/users/1", (7, "users")),  # 7 and 9 both match: the lowest priority wins
        ("/api/threads", (9, "threads")),
        ("/api/posts", (9, "threads")),  # 9 beats 30
        ("/p/1", (30, "posts")),  # the second value of a condition (OR)
        ("/p/12", (0, "monolith")),
        ("/", (0, "monolith")),  # no rule: the default action, priority 0 in the log
        ("/API/users", (0, "monolith")),  # case-sensitive
    ],
)
def test_the_path_only_fast_path_agrees_with_the_full_match(path: str, expected: tuple[int, str]) -> None:
    paths = router()
    assert paths.path_only
    assert routed(paths.match_path(path)) == expected
    assert routed(paths.match(view(path))) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (b"/api/users?x=1", (7, "users")),
        (b"/x?/api/users", (0, "monolith")),  # the query is never matched
        (b"/p/?", (0, "monolith")),  # "?" starts the query: the path is "/p/"
        (b"/p/\xe9", (30, "posts")),  # a byte that is not ASCII is one character
    ],
)
def test_match_url_matches_the_path_of_a_request_target(url: bytes, expected: tuple[int, str]) -> None:
    assert routed(router().match_url(url)) == expected


@pytest.mark.parametrize(
    ("extra", "path_only"),
    [
        ("listener: {default_action: {forward: monolith}, rules: []}", True),
        (
            """
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 1, conditions: [{path_pattern: ["/a"]}], action: {forward: users}}
    - priority: 2
      conditions: [{path_pattern: ["/b"]}, {http_request_method: [GET]}]
      action: {forward: posts}
""",
            False,
        ),
        (
            """
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 1, conditions: [{host_header: ["a.test"]}], action: {forward: users}}
""",
            False,
        ),
    ],
    ids=["no-rules", "a-method-condition", "a-host-condition"],
)
def test_when_a_listener_is_path_only(extra: str, path_only: bool) -> None:
    router = Router(stack(extra).listener)
    assert router.path_only is path_only
    if path_only:
        assert routed(router.match_path("/anything")) == (0, "monolith")


def test_the_default_stack_is_path_only() -> None:
    router = Router(stack().listener)
    assert router.path_only
    assert routed(router.match_url(b"/api/threads/2?full=1")) == (2, "threads")
    assert routed(router.match_url(b"/")) == (0, "monolith")


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("[2001:db8::7]:443", "[2001:db8::7]"),
        ("[::1", "[::1"),  # no closing bracket: kept as sent
        ("h.test:8080", "h.test"),
        ("h.test", "h.test"),
        ("h.test:", "h.test"),
        ("a:b:80", "a:b"),  # only the last :port goes
        ("[::1]]:80", "[::1]"),  # the first ] closes the literal
        ("", ""),
        (None, ""),
    ],
)
def test_host_without_port(host: str | None, name: str) -> None:
    assert host_without_port(host) == name


QUERY = """
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 1, conditions: [{query_string: [{key: Version, value: "V2"}]}], action: {forward: users}}
    - {priority: 2, conditions: [{query_string: [{value: "end\\\\"}]}], action: {forward: posts}}
    - priority: 3
      conditions: [{query_string: [{key: "a\\\\*", value: "v\\\\?"}]}]
      action: {forward: threads}
"""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("version=v2", (1, "users")),  # keys and values in any case
        ("VERSION=V2", (1, "users")),
        ("Version=v2x", (0, "monolith")),
        ("a=1&b=end%5C", (2, "posts")),  # a trailing backslash is a literal backslash
        ("b=end", (0, "monolith")),
        ("a*=v?", (3, "threads")),  # an escaped * in a key and ? in a value are literal
        ("ab=v?", (0, "monolith")),
        ("a*=vx", (0, "monolith")),
    ],
)
def test_query_keys_in_any_case_and_a_trailing_backslash(query: str, expected: tuple[int, str]) -> None:
    router = Router(stack(QUERY).listener)
    assert not router.path_only
    assert routed(router.match(view(query=query))) == expected


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("end\\", "end\\", True),
        ("end\\", "end", False),
        ("a\\b", "a\\b", True),  # a backslash before anything but * and ? is itself
        ("a\\\\*", "a\\*", True),  # the first backslash is literal, the second escapes `*`
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("\\?", "?", True),
        ("*", "line\nbreak", True),  # `*` crosses a newline
        ("a\\X", "a\\x", True),  # only * and ? can be escaped
        ("a\\X", "aX", False),
        ("\\*b", "*b", True),  # what follows an escape is read on
        ("\\*b", "*", False),
        ("A?c", "a\nc", True),
    ],
)
def test_wildcard_escapes(pattern: str, value: str, matches: bool) -> None:
    assert bool(wildcard(pattern, ignore_case=True, escapes=True).match(value)) is matches


def test_without_escapes_a_backslash_is_literal_and_the_star_still_a_wildcard() -> None:
    assert wildcard("a\\*", ignore_case=False).match("a\\xyz")
    assert not wildcard("a\\*", ignore_case=False).match("a*")
    assert not wildcard("ABC", ignore_case=False).match("abc")


@pytest.mark.parametrize(
    ("redirect", "protocol", "port", "location"),
    [
        (Redirect("HTTP_301"), "http", 80, "http://h.test/a"),
        (Redirect("HTTP_301"), "https", 443, "https://h.test/a"),
        (Redirect("HTTP_301"), "https", 80, "https://h.test:80/a"),
        (Redirect("HTTP_301", protocol="HTTP"), "https", 443, "http://h.test:443/a"),
        (
            Redirect("HTTP_301", path="/#{path}/#{host}/#{port}"),
            "http",
            8080,
            "http://h.test:8080/a/h.test/8080",
        ),
        (Redirect("HTTP_301", query="p=#{protocol}"), "http", 80, "http://h.test/a?p=http"),
    ],
)
def test_redirects_leave_out_only_the_protocols_default_port(
    redirect: Redirect, protocol: str, port: int, location: str
) -> None:
    request = RequestView("GET", "/a", "", "h.test:9", (), "127.0.0.1", protocol, port)
    assert redirect_location(redirect, request) == location


def test_a_path_without_a_leading_slash_is_kept_whole() -> None:
    request = RequestView("OPTIONS", "*", "", "h.test", (), "127.0.0.1", "http", 80)
    assert redirect_location(Redirect("HTTP_301", path="/#{path}"), request) == "http://h.test/*"


def test_header_values_in_order_and_in_any_case() -> None:
    request = view(headers=[(b"X-A", b"1"), (b"x-b", b"2"), (b"x-a", b"\xe9")])
    assert request.header_values("x-A") == ["1", "\xe9"]
    assert request.header_values("X-C") == []


EVERY_CONDITION = """
listener:
  default_action: {forward: monolith}
  rules:
    - priority: 1
      conditions: [{host_header: ["*.Example.com", "h.test"]}, {http_request_method: [POST, PUT]}]
      action: {forward: users}
    - priority: 2
      conditions: [{http_header: {name: X-Env, values: ["canary", "be?a"]}}]
      action: {forward: threads}
    - priority: 3
      conditions: [{source_ip: ["10.1.2.3/8", "::1/128"]}]  # host bits set: taken as 10.0.0.0/8
      action: {forward: posts}
    - priority: 4
      conditions: [{path_pattern: ["/a", "/B*"]}, {query_string: [{key: "k*", value: "v"}]}]
      action: {forward: users}
"""


@pytest.mark.parametrize(
    ("method", "path", "query", "host", "headers", "ip", "expected"),
    [
        ("POST", "/", "", "a.example.COM:8080", [], "127.0.0.1", (1, "users")),
        ("PUT", "/", "", "H.TEST", [], "127.0.0.1", (1, "users")),
        ("GET", "/", "", "h.test", [], "127.0.0.1", (0, "monolith")),  # both conditions must match
        ("post", "/", "", "h.test", [], "127.0.0.1", (0, "monolith")),  # methods are exact
        ("POST", "/", "", "example.com", [], "127.0.0.1", (0, "monolith")),
        ("POST", "/", "", None, [], "127.0.0.1", (0, "monolith")),
        ("GET", "/", "", "h.test", [(b"x-env", b"CANARY")], "127.0.0.1", (2, "threads")),
        ("GET", "/", "", "h.test", [(b"X-Env", b"x"), (b"X-Env", b"bEta")], "127.0.0.1", (2, "threads")),
        ("GET", "/", "", "h.test", [(b"X-Other", b"canary")], "127.0.0.1", (0, "monolith")),
        ("GET", "/", "", "h.test", [], "10.9.8.7", (3, "posts")),
        ("GET", "/", "", "h.test", [], "::1", (3, "posts")),
        ("GET", "/", "", "h.test", [], "11.0.0.1", (0, "monolith")),
        ("GET", "/", "", "h.test", [], "not-an-ip", (0, "monolith")),
        ("GET", "/a", "K1=V", "h.test", [], "127.0.0.1", (4, "users")),
        ("GET", "/Bz", "x=1&kk=v", "h.test", [], "127.0.0.1", (4, "users")),
        ("GET", "/b", "k=v", "h.test", [], "127.0.0.1", (0, "monolith")),  # paths are case-sensitive
        ("GET", "/a", "x=v", "h.test", [], "127.0.0.1", (0, "monolith")),  # the key must match
        ("GET", "/a", "k=vv", "h.test", [], "127.0.0.1", (0, "monolith")),
    ],
)
def test_every_condition_type_in_a_router_built_for_the_test(
    method: str, path: str, query: str, host: str | None, headers: Any, ip: str, expected: tuple[int, str]
) -> None:
    rules = router(EVERY_CONDITION)
    assert not rules.path_only
    request = RequestView(method, path, query, host, headers, ip, "http", 80)
    assert routed(rules.match(request)) == expected


def test_the_router_shows_its_priorities_and_default() -> None:
    assert repr(router()) == (
        "<Router rules=[7, 9, 30] default=Forward(target_groups="
        "(WeightedTargetGroup(name='monolith', weight=1),), stickiness_duration=None)>"
    )


def test_a_request_view_defaults_to_a_local_http_request() -> None:
    request = RequestView("GET", "/", "", None)
    assert (request.source_ip, request.protocol, request.port, request.headers) == (
        "127.0.0.1",
        "http",
        80,
        (),
    )
