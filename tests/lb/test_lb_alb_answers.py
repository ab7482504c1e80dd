"""ALB's answers to what clients do at the edges: closing early, CONNECT, HTTP/2, HTTP/1.0
without Host, `Connection: Host`, the request line's 16 KB (docs/alb.md)."""

from __future__ import annotations

import json
import socket
import time

import pytest
from lb_harness import Harness
from lb_helpers import stack
from test_lb_proxy import FAST, raw

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def lb(tmp_path):
    harness = Harness(stack(FAST), access_log=tmp_path / "access.log")
    harness.backend("mono-1", "monolith")
    try:
        yield harness
    finally:
        harness.close()


def logged(lb: Harness, needle: str, timeout: float = 10.0) -> str:
    """The access-log line holding `needle`, once it is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in lb.access_log():
            if needle in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no access-log line with {needle!r}: {lb.access_log()}")


def status_field(line: str) -> str:
    return line.split(" ")[8]


def figures(lb: Harness) -> dict:
    return lb.do(lb.lb.describe)["monolith"]["metrics"]


def test_a_client_closing_mid_body_is_logged_400_at_once(lb):
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as sock:
        sock.sendall(b"POST /echo-midbody HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        time.sleep(0.1)  # (the head is read and forwarded before the close)
    line = logged(lb, "/echo-midbody")
    assert status_field(line) == "400"  # ALB: "the client closed before sending the full body"
    assert figures(lb)["HTTPCode_Target_5XX_Count"] == figures(lb)["HTTPCode_ELB_5XX_Count"] == 0


def test_a_client_closing_while_the_target_is_slow_is_logged_460(lb):
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as sock:
        sock.sendall(b"GET /x/slow?s=3 HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.1)
    line = logged(lb, "/x/slow")
    assert status_field(line) == "460"
    metrics = figures(lb)
    assert metrics["HTTPCode_Target_5XX_Count"] == metrics["HTTPCode_ELB_5XX_Count"] == 0
    assert metrics["HTTPCode_ELB_4XX_Count"] == 0  # not counted against the target group


def test_connect_gets_405_and_is_not_forwarded(lb):
    answer, _ = raw(lb.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 2)
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert not [r for b in lb.backends for r in b.app_requests() if r["method"] == "CONNECT"]


def test_the_http2_preface_gets_505(lb):
    answer, closed = raw(lb.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 505 ") and closed


def test_http10_without_host_gets_one_from_the_load_balancer(lb):
    answer, _ = raw(lb.port, b"GET /echo HTTP/1.0\r\n\r\n")
    echo = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert [v for n, v in echo["headers"] if n.lower() == "host"] == [f"localhost:{lb.port}"]


def test_connection_host_never_strips_host(lb):
    answer, _ = raw(lb.port, b"GET /echo HTTP/1.1\r\nHost: kept.example\r\nConnection: Host, close\r\n\r\n")
    echo = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert [v for n, v in echo["headers"] if n.lower() == "host"] == ["kept.example"]


@pytest.mark.parametrize(("size", "status"), [(16 * 1024, b"200"), (16 * 1024 + 1, b"400")])
def test_the_16_kb_request_line_limit_counts_the_whole_line(lb, size, status):
    fixed = len(b"GET  HTTP/1.1")
    line = b"GET /" + b"a" * (size - fixed - 1) + b" HTTP/1.1"
    assert len(line) == size
    answer, _ = raw(lb.port, line + b"\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.split(b" ")[1] == status
