"""`decide(head) -> Decision` as tables, without sockets (lb/decide.py): ALB's limits, the
desync verdict per mode, the requests ALB answers itself, the rule match and its action, and
what a forward carries (the head as read, or the fields to rebuild it)."""

from __future__ import annotations

from typing import Any

import pytest
from lb_helpers import stack

from microforum.lb.balancer import LoadBalancer
from microforum.lb.context import ProxyContext
from microforum.lb.decide import ANSWERS, Decision, decide, refusal
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
