"""Rule matching as tables: ALB's wildcard, case and AND/OR rules (docs/alb.md §A)."""

from __future__ import annotations

import pytest
from lb_helpers import stack

from microforum.lb.rules import RequestView, Router, parse_query, redirect_location, wildcard
from microforum.spec.model import FixedResponse, Forward, Redirect

RULES = """
listener:
  port: 80
  default_action: {forward: monolith}
  rules:
    - priority: 10
      conditions: [{path_pattern: ["/api/users*"]}]
      action: {forward: users}
    - priority: 2
      conditions: [{path_pattern: ["/api/threads", "/api/threads/*"]}]
      action: {forward: threads}
    - priority: 3
      conditions:
        - {host_header: ["*.Example.com"]}
        - {http_request_method: [POST, PUT]}
      action: {forward: posts}
    - priority: 4
      conditions: [{http_header: {name: X-Env, values: ["canary", "be?a"]}}]
      action: {fixed_response: {status_code: 418, message_body: header}}
    - priority: 5
      conditions: [{query_string: [{key: version, value: "v2*"}, {value: "lit\\\\*"}]}]
      action: {fixed_response: {status_code: 200, message_body: query}}
    - priority: 6
      conditions: [{source_ip: ["10.0.0.0/8", "::1/128"]}]
      action: {fixed_response: {status_code: 403, message_body: ip}}
    - priority: 7
      conditions: [{path_pattern: ["/img/?.png"]}]
      action: {redirect: {protocol: HTTPS, port: "443", path: "/images/#{path}", status_code: HTTP_302}}
"""

ROUTER = Router(stack(RULES).listener)


def view(path="/", query="", host="shop.test", method="GET", headers=(), ip="127.0.0.1"):
    return RequestView(method, path, query, host, list(headers), ip, "http", 8080)


def target(action):
    if isinstance(action, Forward):
        return action.target_groups[0].name
    if isinstance(action, FixedResponse):
        return action.message_body
    return "redirect"


@pytest.mark.parametrize(
    ("request_view", "priority", "outcome"),
    [
        (view("/api/users"), 10, "users"),
        (view("/api/users/3"), 10, "users"),
        (view("/api/usersfoo"), 10, "users"),  # `*` is any run, no segment logic
        (view("/API/users"), 0, "monolith"),  # path is case-sensitive
        (view("/x/api/users"), 0, "monolith"),  # the whole path must match
        (view("/api/threads"), 2, "threads"),
        (view("/api/threads/1"), 2, "threads"),
        (view("/api/threadsX"), 0, "monolith"),
        (view("/", query="q=/api/users"), 0, "monolith"),  # never the query
        (view("/p", host="a.example.COM", method="POST"), 3, "posts"),  # host insensitive
        (view("/p", host="a.example.com:8080", method="PUT"), 3, "posts"),  # ⚠ port ignored
        (view("/p", host="example.com", method="POST"), 0, "monolith"),  # * needs a label
        (view("/p", host="a.example.com", method="GET"), 0, "monolith"),  # AND across
        (view("/p", host="a.example.com", method="post"), 0, "monolith"),  # method exact
        (view(headers=[(b"x-env", b"CANARY")]), 4, "header"),  # name+value insensitive
        (view(headers=[(b"X-Env", b"beta")]), 4, "header"),  # ? is one char
        (view(headers=[(b"X-Env", b"bet")]), 0, "monolith"),
        (view(headers=[(b"X-Env", b"x"), (b"X-Env", b"canary")]), 4, "header"),  # in order
        (view(query="version=V2.1"), 5, "query"),
        (view(query="a=1&version=v2"), 5, "query"),
        (view(query="other=v2"), 0, "monolith"),  # key must match
        (view(query="any=lit*"), 5, "query"),  # value-only pair, escaped literal *
        (view(query="any=litX"), 0, "monolith"),
        (view(query="version=v2%20beta"), 5, "query"),  # ⚠ percent-decoded
        (view(ip="10.1.2.3"), 6, "ip"),
        (view(ip="::1"), 6, "ip"),
        (view(ip="11.0.0.1"), 0, "monolith"),
        (view("/img/a.png"), 7, "redirect"),
        (view("/img/ab.png"), 0, "monolith"),
    ],
    ids=lambda v: v if isinstance(v, str | int) else "",
)
def test_match_table(request_view, priority, outcome):
    got_priority, action = ROUTER.match(request_view)
    assert (got_priority, target(action)) == (priority, outcome)


def test_lowest_priority_wins_whatever_the_file_order():
    router = Router(
        stack("""
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 9, conditions: [{path_pattern: ["/a*"]}], action: {forward: users}}
    - {priority: 4, conditions: [{path_pattern: ["/ab*"]}], action: {forward: posts}}
""").listener
    )
    assert router.match(view("/abc"))[0] == 4
    assert router.match(view("/a"))[0] == 9


@pytest.mark.parametrize(
    ("pattern", "value", "escapes", "matches"),
    [
        ("a*c", "abbbc", False, True),
        ("a*c", "ac", False, True),
        ("a?c", "ac", False, False),
        ("a.c", "abc", False, False),  # regex characters are literal
        ("a\\*", "a*", True, True),
        ("a\\*", "ab", True, False),
        ("a\\?", "a?", True, True),
    ],
)
def test_wildcard(pattern, value, escapes, matches):
    assert bool(wildcard(pattern, ignore_case=False, escapes=escapes).match(value)) is matches


def test_parse_query():
    assert parse_query("a=1&b&&c=x%20y+z") == [("a", "1"), ("b", ""), ("c", "x y z")]


@pytest.mark.parametrize(
    ("redirect", "request_view", "location"),
    [
        (
            Redirect("HTTP_301", protocol="HTTPS", port="443"),
            view("/a/b", "x=1", "h.test:8080"),
            "https://h.test/a/b?x=1",
        ),
        (
            Redirect("HTTP_301", host="new.test"),
            view("/a", "", "h.test"),
            "http://new.test:8080/a",
        ),  # ⚠ empty query: no "?"
        (
            Redirect("HTTP_302", port="80", path="/v2/#{path}", query="from=#{host}&#{query}"),
            view("/a", "q=1", "h.test"),
            "http://h.test/v2/a?from=h.test&q=1",
        ),
    ],
)
def test_redirect_location(redirect, request_view, location):
    assert redirect_location(redirect, request_view) == location


def test_router_repr_lists_priorities():
    assert repr(ROUTER).startswith("<Router rules=[2, 3, 4, 5, 6, 7, 10]")
