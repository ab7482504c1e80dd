"""Every byte a target receives belongs to a request the load balancer parsed, classified,
routed and logged — shown with a lenient target that records every byte and answers anything
that looks like a request (as a careless `command` service would)."""

from __future__ import annotations

import socket

import pytest
from lb_harness import Harness, LenientTarget
from lb_helpers import stack

pytestmark = pytest.mark.timeout(60)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
POST = b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED)


@pytest.fixture(scope="module", params=["monitor", "defensive", "strictest"])
def lb(request, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "access.log"
    harness = Harness(stack(f"load_balancer: {{desync_mitigation_mode: {request.param}}}"), access_log=log)
    target = harness.backend("lenient-1", "monolith", kind=LenientTarget)
    yield harness, target, log
    harness.close()


def exchange(port: int, *pieces: bytes) -> bytes:
    """Send `pieces` (one write each) and read one answer with a Content-Length body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for piece in pieces:
            sock.sendall(piece)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize("prefix", [b"\r\n", b"\r\n\r\n", b"\n", b"\n\n", b"\r\n\n\r\n"], ids=repr)
def test_empty_lines_before_the_request_line_are_never_forwarded(lb, prefix):
    harness, target, _log = lb
    before, logged = len(target.lines), len(harness.access_log())
    answer = exchange(harness.port, prefix + POST)
    # RFC 9112 §2.2: the empty lines are ignored; the request is the POST, its body is data.
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert target.lines[before:] == [b"POST /a HTTP/1.1"]
    for stream in target.received():
        assert stream.startswith(b"POST /a HTTP/1.1\r\n"), stream
    (line,) = harness.access_log()[logged:]
    assert f'"POST http://a:{harness.port}/a HTTP/1.1"' in line and " 200 200 " in line


def test_empty_lines_split_from_the_request_across_reads(lb):
    harness, target, _log = lb
    before = len(target.lines)
    answer = exchange(harness.port, b"\r\n", b"\r\n", POST)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert target.lines[before:] == [b"POST /a HTTP/1.1"]
    for stream in target.received():
        assert stream.startswith(b"POST /a HTTP/1.1\r\n"), stream
