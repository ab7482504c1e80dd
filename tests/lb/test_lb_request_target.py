"""How the request target is read for routing, forwarding and the access log: absolute-form
targets are matched on their path as ALB does, and a rule on a path cannot be bypassed."""

from __future__ import annotations

import json
import re
import socket

import pytest
from lb_harness import Harness
from lb_helpers import stack

pytestmark = pytest.mark.timeout(60)

DENY = """
listener:
  default_action: {forward: monolith}
  rules:
    - priority: 1
      conditions: [{path_pattern: ["/api/users*"]}]
      action: {fixed_response: {status_code: 403, content_type: text/plain, message_body: denied}}
    - priority: 2
      conditions: [{host_header: ["*.example.com"]}]
      action: {fixed_response: {status_code: 200, content_type: text/plain, message_body: by-host}}
"""


@pytest.fixture(scope="module")
def lb(tmp_path_factory):
    harness = Harness(stack(DENY), access_log=tmp_path_factory.mktemp("log") / "access.log")
    harness.backend("mono-1", "monolith")
    yield harness
    harness.close()


def send(port: int, head: bytes) -> tuple[int, bytes]:
    """One request (no body); the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        head_part, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head_part).group(1))
        while len(body) < length:
            body += sock.recv(65536)
    return int(head_part.split(b" ")[1]), body


@pytest.mark.parametrize(
    "target",
    [
        b"http://a/api/users/1",
        b"HTTP://a/api/users/1",
        b"hTTpS://a/api/users/1",
        b"http://a:8080/api/users/1?x=1",
        b"http://user@a/api/users",
        b"http://a/api/users?next=/x",
    ],
)
def test_absolute_form_targets_are_matched_on_their_path(lb, target):
    assert send(lb.port, b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % target) == (403, b"denied")


def test_absolute_form_is_forwarded_in_origin_form_with_the_targets_host(lb):
    status, body = send(lb.port, b"GET http://B.example.org:81/echo?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    echo = json.loads(body)
    assert status == 200 and echo["url"] == "/echo?q=1"
    # RFC 9112 §3.2.2: the target's authority replaces the Host header (ALB does the same).
    assert [v for n, v in echo["headers"] if n.lower() == "host"] == ["B.example.org:81"]
    line = lb.access_log()[-1]
    assert f'"GET http://B.example.org:{lb.port}/echo?q=1 HTTP/1.1"' in line


def test_absolute_form_without_a_path_is_the_root(lb):
    assert send(lb.port, b"GET http://a?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == (200, b"mono-1 /")


def test_host_rules_see_the_absolute_form_authority(lb):
    head = b"GET http://www.example.com/x HTTP/1.1\r\nHost: a\r\n\r\n"
    assert send(lb.port, head) == (200, b"by-host")
