"""`decide(head) -> Decision` as tables, without sockets (lb/decide.py): ALB's limits, the
desync verdict per mode, the requests ALB answers itself, the rule match and its action, and
what a forward carries (the head as read, or the fields to rebuild it)."""

from __future__ import annotations

from typing import Any

import pytest
from lb_helpers import stack

from microforum.lb.balancer import LoadBalancer
from microforum.lb.context import ProxyContext
from microforum.lb.decide import ANSWERS, ERROR, FORWARD, REDIRECT, Decision, decide, refusal
from microforum.lb.forward import target_group
from microforum.lb.reader import RequestHead, frame, split_head
from microforum.spec.model import Forward

RULES = """
listener:
  default_action: {forward: monolith}
  rules:
    - priority: 5
      conditions: [{path_pattern: ["/api/users*"]}]
      action: {fixed_response: {status_code: 403, content_type: text/plain, message_body: denied}}
    - priority: 7
      conditions: [{path_pattern: ["/old/*"]}]
      action: {redirect: {path: "/new/#{path}", status_code: HTTP_301}}
    - {priority: 9, conditions: [{path_pattern: ["/api/posts*"]}], action: {forward: posts}}
"""
BY_HOST = """
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 3, conditions: [{host_header: ["api.test"]}], action: {forward: users}}
"""
PEER = "10.0.0.7"


def context(rules: str = RULES, mode: str = "defensive") -> ProxyContext:
    ctx = LoadBalancer(stack(rules + f"load_balancer: {{desync_mitigation_mode: {mode}}}")).ctx
    ctx.bound(8080)
    return ctx


def read(raw: bytes) -> RequestHead:
    """The head as the reader hands it on (`raw`: its lines, each with its line end)."""
    head = split_head(raw[:-2] if raw.endswith(b"\r\n") else raw[:-1])
    frame(head)
    return head


def decided(raw: bytes, mode: str = "defensive", rules: str = RULES) -> Decision:
    return decide(read(raw), PEER, context(rules, mode))


def summary(d: Decision) -> tuple[Any, ...]:
    """(answer, status, error_reason, classification, reason, close client/backend, priority,
    action, target group) — what the shell acts on and logs."""
    closes = ("close" if d.close_client else "keep") + ("+backend" if d.close_backend else "")
    group = ",".join(g.name for g in d.action.target_groups) if isinstance(d.action, Forward) else "-"
    return (ANSWERS[d.answer], d.status, d.error_reason, d.classification, d.class_reason, closes,
            d.priority, d.action_name, group)  # fmt: skip


GET = b"GET /api/posts/1 HTTP/1.1\r\nHost: a.test\r\n"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Forwarded: the rule's group, Compliant, the connection kept.
        (GET, ("FORWARD", 0, "-", "Compliant", "-", "keep", "9", "forward", "posts")),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            ("FORWARD", 0, "-", "Compliant", "-", "keep", "0", "forward", "monolith"),
        ),
        (
            b"GET /api/posts HTTP/1.1\r\nHost: a\r\nConnection: close\r\n",
            ("FORWARD", 0, "-", "Compliant", "-", "close", "9", "forward", "posts"),
        ),
        # The rule's fixed response and redirect.
        (
            b"GET /api/users/1 HTTP/1.1\r\nHost: a\r\n",
            ("FIXED", 403, "-", "Compliant", "-", "keep", "5", "fixed-response", "-"),
        ),
        (
            b"GET /old/x HTTP/1.1\r\nHost: a\r\n",
            ("REDIRECT", 301, "-", "Compliant", "-", "keep", "7", "redirect", "-"),
        ),
        # An absolute-form target is matched on its path: the deny rule holds.
        (
            b"GET HTTP://b.test:81/api/users/1 HTTP/1.1\r\nHost: a\r\n",
            ("FIXED", 403, "-", "Compliant", "-", "keep", "5", "fixed-response", "-"),
        ),
        # What ALB answers itself (docs/alb.md §C).
        (b"TRACE / HTTP/1.1\r\nHost: a\r\n", ("ERROR", 405, "-", "Compliant", "-", "keep", "-", "-", "-")),
        (
            b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n",
            ("ERROR", 405, "-", "Compliant", "-", "keep", "-", "-", "-"),
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n", ("ERROR", 505, "-", "Compliant", "-", "close", "-", "-", "-")),
        (b"GET / HTTP/1.1\r\nAccept: */*\r\n", ("ERROR", 400, "-", "Compliant", "-", "keep", "-", "-", "-")),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + b", ".join([b"10.0.0.1"] * 30) + b"\r\n",
            ("ERROR", 463, "-", "Compliant", "-", "keep", "-", "-", "-"),
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: " + b", ".join([b"10.0.0.1"] * 29) + b"\r\n",
            ("FORWARD", 0, "-", "Compliant", "-", "keep", "0", "forward", "monolith"),
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"x" * 16_000 + b"\r\n" * 1,
            ("FORWARD", 0, "-", "Compliant", "-", "keep", "0", "forward", "monolith"),
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"x" * 16_000) for i in range(5)),
            ("ERROR", 400, "RequestHeaderTooLarge", "Compliant", "-", "close", "-", "-", "-"),
        ),
        # Desync, defensive: Acceptable forwarded, Ambiguous forwarded then both closed,
        # Severe refused and closed.
        (
            b"GET / HTTP/1.1\nHost: a\n",
            ("FORWARD", 0, "-", "Acceptable", "NonCrLfLineTermination", "keep", "0", "forward", "monolith"),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n",
            (
                "FORWARD",
                0,
                "-",
                "Ambiguous",
                "DuplicateContentLength",
                "close+backend",
                "0",
                "forward",
                "monolith",
            ),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nContent-Length: 100\r\n",
            ("ERROR", 400, "-", "Severe", "MultipleContentLength", "close", "-", "-", "-"),
        ),
    ],
)
def test_decisions_in_defensive_mode(raw: bytes, expected: tuple[Any, ...]) -> None:
    assert summary(decided(raw)) == expected


AMBIGUOUS = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n"
ACCEPTABLE = b"GET / HTTP/1.1\nHost: a\n"
SEVERE = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\nContent-Length: 100\r\n"


@pytest.mark.parametrize(
    ("mode", "raw", "answer", "closes"),
    [
        ("monitor", SEVERE, "FORWARD", "close"),  # forwarded (no framing: the last request)
        ("monitor", AMBIGUOUS, "FORWARD", "keep"),
        ("strictest", ACCEPTABLE, "ERROR", "close"),
        ("strictest", AMBIGUOUS, "ERROR", "close"),
        ("strictest", GET, "FORWARD", "keep"),
        ("defensive", AMBIGUOUS, "FORWARD", "close+backend"),
    ],
)
def test_the_mode_decides_per_classification(mode: str, raw: bytes, answer: str, closes: str) -> None:
    d = decided(raw, mode)
    assert (
        ANSWERS[d.answer],
        ("close" if d.close_client else "keep") + ("+backend" if d.close_backend else ""),
    ) == (
        answer,
        closes,
    )


@pytest.mark.parametrize(
    ("raw", "as_read", "framing", "xff"),
    [
        # A plain head with usual fields goes as read (X-Forwarded-* appended by the shell).
        (GET, True, b"", PEER),
        # Anything the load balancer rewrites makes it rebuilt.
        (GET + b"X-Forwarded-For: 1.2.3.4\r\n", False, b"", "1.2.3.4, " + PEER),
        (GET + b"Connection: keep-alive\r\n", False, b"", PEER),
        (b"GET /api/posts HTTP/1.0\r\n", False, b"", PEER),  # ALB's Host added
        (b"GET http://h/api/posts HTTP/1.1\r\nHost: a\r\n", False, b"", PEER),
        # The framing the reader read the body by, never the client's fields as sent.
        (
            b"POST /api/posts HTTP/1.1\r\nHost: a\r\nContent-Length:  3\r\n",
            True,
            b"Content-Length: 3\r\n",
            PEER,
        ),
        (
            b"POST /api/posts HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n",
            False,
            b"Transfer-Encoding: chunked\r\n",
            PEER,
        ),
    ],
)
def test_what_a_forward_carries(raw: bytes, as_read: bool, framing: bytes, xff: str) -> None:
    d = decided(raw)
    assert ANSWERS[d.answer] == "FORWARD"
    assert (d.raw is not None, d.framing, d.xff) == (as_read, framing, xff)
    if as_read:
        assert d.raw == raw[:-2]


def test_an_absolute_form_target_is_the_path_and_its_authority_the_host() -> None:
    d = decided(b"GET hTTp://b.test:81/api/posts?q=1 HTTP/1.1\r\nHost: a\r\n")
    assert (d.url, d.host, d.headers) == (b"/api/posts?q=1", "b.test:81", [(b"Host", b"b.test:81")])


def test_http_1_0_without_host_gets_albs_own() -> None:
    d = decided(b"GET /api/posts HTTP/1.0\r\nUser-Agent: x\r\n")
    assert (d.host, d.headers[-1], d.user_agent, d.close_client) == (
        "localhost:8080", (b"Host", b"localhost:8080"), b"x", True,
    )  # fmt: skip


def test_expect_100_continue_only_for_http_1_1_forwards() -> None:
    expect = b"Host: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n"
    assert decided(b"POST /api/posts HTTP/1.1\r\n" + expect).expect_continue is True
    assert decided(b"POST /api/posts HTTP/1.0\r\n" + expect).expect_continue is False


def test_rules_on_more_than_the_path_see_the_host() -> None:
    assert summary(decided(b"GET / HTTP/1.1\r\nHost: api.test\r\n", rules=BY_HOST))[6:] == (
        "3",
        "forward",
        "users",
    )
    assert summary(decided(b"GET / HTTP/1.1\r\nHost: b.test\r\n", rules=BY_HOST))[6:] == (
        "0",
        "forward",
        "monolith",
    )


def test_a_path_only_listener_knows_the_target_group_of_a_forward_to_one() -> None:
    # (on other listeners the shell looks it up: forward.target_group)
    assert decided(GET).group is not None and decided(GET).group.name == "posts"  # type: ignore[union-attr]
    assert decided(b"GET / HTTP/1.1\r\nHost: api.test\r\n", rules=BY_HOST).group is None


def test_the_same_head_decides_the_same_and_the_head_is_not_written() -> None:
    raw = b"GET http://b.test/api/posts HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n"
    head = read(raw)
    before = (head.target, list(head.headers), head.plain)
    ctx = context()
    first, second = decide(head, PEER, ctx), decide(head, PEER, ctx)
    assert summary(first) == summary(second) and first.url == second.url and first.xff == second.xff
    assert (head.target, head.headers, head.plain) == before


def test_a_refusal_is_an_error_that_closes() -> None:
    d = refusal(400, "")
    assert (ANSWERS[d.answer], d.status, d.error_reason, d.close_client, d.classification, d.size) == (
        "ERROR", 400, "-", True, "-", 0,
    )  # fmt: skip
    assert repr(d) == "<Decision error 400 - -/- close priority=->"


# What the shell reads off a decision, field by field (each test pins what one stage writes).


def fields(d: Decision) -> dict[str, Any]:
    """Every slot of the decision but the action and headers (objects compared elsewhere)."""
    out = {name: getattr(d, name) for name in Decision.__slots__ if name not in ("action", "headers")}
    out["group"] = d.group.name if d.group is not None else None
    return out


PLAIN_GET = {
    "action_name": "forward", "answer": 0, "check_all": False, "chunked": False,
    "class_reason": "-", "classification": "Compliant", "close_backend": False, "close_client": False,
    "connection": None, "cookie": None, "error_reason": "-", "expect_continue": False, "framing": b"",
    "group": "posts", "host": "a.test", "host_field": b"a.test", "length": None, "method": b"GET",
    "priority": "9", "raw": GET[:-2], "redirect_url": "-", "size": len(GET) + 1, "status": 0,
    "trace_in": None, "url": b"/api/posts/1", "user_agent": b"", "version": "1.1", "xff": PEER,
    "xff_in": None,
}  # fmt: skip


def test_every_field_of_a_plain_get() -> None:
    assert fields(decided(GET)) == PLAIN_GET


def test_every_field_of_a_refusal() -> None:
    assert fields(refusal(431, "Oversize")) == {
        **PLAIN_GET, "action_name": "-", "answer": 1, "classification": "-", "close_client": True,
        "error_reason": "Oversize", "group": None, "host": "", "host_field": None, "method": b"-",
        "priority": "-", "raw": None, "size": 0, "status": 431, "url": b"", "version": "-", "xff": "",
    }  # fmt: skip
    assert (refusal(400, "").headers, refusal(400, "").action) == ([], None)


def test_the_fields_the_load_balancer_uses_each_read_once_or_joined() -> None:
    d = decided(
        b"POST /api/posts HTTP/1.1\r\nHost: a\r\nHost: b\r\nUser-Agent: ua\r\nCookie: a=1\r\n"
        b"Cookie: b=2\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n"
        b"X-Amzn-Trace-Id: Root=1\r\nX-Amzn-Trace-Id: Root=2\r\nConnection: keep-alive\r\n"
        b"Connection: x-a\r\nContent-Length: 2\r\n"
    )
    assert (d.host, d.user_agent, d.cookie, d.xff_in, d.xff, d.trace_in, d.connection, d.length) == (
        "a", b"ua", b"a=1; b=2", b"1.1.1.1, 2.2.2.2", "1.1.1.1, 2.2.2.2, " + PEER, b"Root=1",
        [b"keep-alive", b"x-a"], b"2",
    )  # fmt: skip
    assert d.raw is None  # X-Forwarded-For and Connection are rewritten


def test_user_agent_and_cookie_are_used_but_not_rewritten() -> None:
    raw = b"GET /api/posts HTTP/1.1\r\nHost: a\r\nUser-Agent: ua\r\nCookie: a=1\r\nAccept: */*\r\n"
    d = decided(raw)
    assert (d.raw, d.user_agent, d.cookie, d.check_all) == (raw[:-2], b"ua", b"a=1", False)


def test_one_trace_id_is_kept() -> None:
    assert decided(GET + b"X-Amzn-Trace-Id: Root=1\r\n").trace_in == b"Root=1"


@pytest.mark.parametrize(
    ("raw", "check_all", "as_read"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n", False, True),
        (b"GET / HTTP/1.0\r\nHost: a\r\n", False, False),  # (HTTP/1.0: rebuilt, never as read)
        (b"GET / HTTP/1.2\r\nHost: a\r\n", True, False),  # NonCompliantVersion
        (b"PROPFIND / HTTP/1.1\r\nHost: a\r\n", True, True),  # an unusual method: classified
        (b"GET /a b HTTP/1.1\r\nHost: a\r\n", True, False),  # SpaceInUri
        (b"GET / HTTP/1.1\r\nHOST: a\r\nX-Custom-1: v\r\n", False, True),  # names in any case
        (b"GET / HTTP/1.1\r\nHost: a\r\nCONTENT-type: t\r\n", False, True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\n", True, False),  # dropped: rebuilt
        (b"GET / HTTP/1.1\r\nHost: a\r\nX.Y: 1\r\n", True, False),
        # Long names with "ength" or "ncod" may be look-alikes of the framing fields.
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Length-Abcde: 1\r\n", True, True),  # 14 characters
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-LENGTH-ABCDE: 1\r\n", True, True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Encoding-Abc: 1\r\n", True, True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Length-Abcd: 1\r\n", False, True),  # 13
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Long-Name-Abcdef: 1\r\n", False, True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Length: 1\r\n", False, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n", True, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n", True, False),
    ],
)
def test_which_heads_get_the_full_classification(raw: bytes, check_all: bool, as_read: bool) -> None:
    d = decided(raw)
    assert (d.check_all, d.raw is not None) == (check_all, as_read)


def test_a_framing_field_alone_is_classified() -> None:
    # A head otherwise plain: the classifier runs for Content-Length and Transfer-Encoding.
    assert decided(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n").class_reason == (
        "GetHeadZeroContentLength"
    )
    assert decided(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n").classification == (
        "Ambiguous"
    )


def test_lines_without_a_colon_are_classified() -> None:
    d = decided(b"GET / HTTP/1.1\r\nHost: a\r\nbadline\r\n")
    assert (d.classification, d.class_reason) == ("Ambiguous", "MissingHeaderColon")


def test_the_head_size_limit_is_inclusive() -> None:
    # The head's lines with their line ends, plus one (docs/alb.md §D.5: 64 KB).
    base = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"x" * 16_000) for i in range(4))
    at_limit = base + b"X-4: " + b"x" * (65_536 - len(base) - 1 - 7) + b"\r\n"
    assert decided(at_limit).size == 65_536 and decided(at_limit).answer == FORWARD
    over = decided(at_limit[:-2] + b"x\r\n")
    assert (over.answer, over.status, over.error_reason) == (ERROR, 400, "RequestHeaderTooLarge")


def test_http_2_and_3_are_answered_505_and_closed_whatever_the_connection_field() -> None:
    for version in (b"HTTP/2", b"HTTP/3.0"):
        d = decided(b"GET / " + version + b"\r\nHost: a\r\nConnection: keep-alive\r\n")
        assert (d.answer, d.status, d.close_client) == (ERROR, 505, True)


def test_an_absolute_form_target_without_authority_keeps_the_host_field() -> None:
    d = decided(b"GET http:///api/posts HTTP/1.1\r\nHost: a\r\n")
    assert (d.url, d.host, d.headers, d.raw) == (b"/api/posts", "a", [(b"Host", b"a")], None)


def test_a_target_of_two_slashes_is_a_path() -> None:
    d = decided(b"GET //api/posts HTTP/1.1\r\nHost: a\r\n")
    assert (d.url, d.host, d.priority) == (b"//api/posts", "a", "0")


def test_a_missing_host_leaves_the_host_empty() -> None:
    assert decided(b"GET / HTTP/1.1\r\nAccept: */*\r\n").host == ""


BY_REQUEST = """
listener:
  default_action: {forward: monolith}
  rules:
    - priority: 2
      conditions: [{source_ip: ["10.0.0.0/24"]}, {http_request_method: ["POST"]}]
      action: {forward: users}
    - priority: 3
      conditions: [{http_header: {name: X-Pick, values: ["posts"]}}]
      action: {forward: posts}
    - priority: 4
      conditions: [{query_string: [{key: q, value: "1?2"}]}]
      action: {forward: posts}
    - priority: 6
      conditions: [{host_header: ["r.test"]}, {path_pattern: ["/old/*"]}]
      action:
        redirect:
          {protocol: "#{protocol}", port: "#{port}", path: "/new/#{path}", query: "#{query}&p=#{protocol}",
           status_code: HTTP_302}
"""


@pytest.mark.parametrize(
    ("raw", "priority", "group"),
    [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n", "2", "users"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", "0", "monolith"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Pick: posts\r\n", "3", "posts"),
        (b"GET /?q=1?2 HTTP/1.1\r\nHost: a\r\n", "4", "posts"),
    ],
)
def test_rules_see_the_method_source_headers_and_query(raw: bytes, priority: str, group: str) -> None:
    assert summary(decided(raw, rules=BY_REQUEST))[6:] == (priority, "forward", group)


def test_a_redirect_on_a_listener_of_more_than_paths_gets_its_location() -> None:
    d = decided(b"GET /old/x?a=1 HTTP/1.1\r\nHost: r.test\r\n", rules=BY_REQUEST)
    assert (d.answer, d.status, d.priority, d.redirect_url) == (
        REDIRECT, 302, "6", "http://r.test:8080/new/old/x?a=1&p=http",
    )  # fmt: skip


def test_a_redirect_on_a_path_only_listener_gets_its_location() -> None:
    d = decided(b"GET /old/x?a=1 HTTP/1.1\r\nHost: r.test\r\n")
    assert (d.answer, d.status, d.redirect_url) == (REDIRECT, 301, "http://r.test:8080/new/old/x?a=1")


def test_a_chunked_forward_says_so() -> None:
    d = decided(b"POST /api/posts HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n")
    assert (d.chunked, d.framing) == (True, b"Transfer-Encoding: chunked\r\n")


@pytest.mark.parametrize(
    ("raw", "rules", "shown"),
    [
        (GET, RULES, "<Decision forward posts Compliant/- priority=9>"),
        (b"GET / HTTP/1.1\r\nHost: api.test\r\n", BY_HOST, "<Decision forward ? Compliant/- priority=3>"),
        (b"GET /api/users HTTP/1.0\r\n", RULES, "<Decision fixed 403 Compliant/- close priority=5>"),
    ],
)
def test_a_decision_shows_what_it_decided(raw: bytes, rules: str, shown: str) -> None:
    assert repr(decided(raw, rules=rules)) == shown


def test_an_empty_target_is_the_root() -> None:
    d = decided(b"GET  HTTP/1.1\r\nHost: a\r\n")
    assert (d.url, d.priority, d.host) == (b"/", "0", "a")


def test_a_forward_to_one_group_once_looked_up_is_known_on_any_listener() -> None:
    ctx = context(BY_HOST)
    head = read(b"GET / HTTP/1.1\r\nHost: api.test\r\n")
    first = decide(head, PEER, ctx)
    assert first.group is None and isinstance(first.action, Forward)
    group, _ = target_group(ctx, first.action, None)  # the shell's look-up, kept in the context
    assert decide(head, PEER, ctx).group is group and group.name == "users"
