"""The load balancer end to end: real sockets on 127.0.0.1, real backends, ALB's behaviour."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from lb_harness import Harness
from lb_helpers import stack

from helpers import free_port
from microforum.lb.targets import Target

pytestmark = pytest.mark.timeout(60)

FAST = """
services:
  users:
    command: "true"
    health_check: {interval: 5, timeout: 2, healthy_threshold: 2, unhealthy_threshold: 2}
  threads: {command: "true"}
  posts: {command: "true"}
  monolith:
    command: "true"
    health_check: {interval: 5, timeout: 2, healthy_threshold: 2, unhealthy_threshold: 2}
listener:
  default_action: {forward: monolith}
  rules:
    - {priority: 1, conditions: [{path_pattern: ["/api/users*"]}], action: {forward: users}}
    - {priority: 2, conditions: [{path_pattern: ["/api/threads*"]}], action: {forward: threads}}
    - priority: 5
      conditions: [{path_pattern: ["/fixed"]}, {http_request_method: [GET]}]
      action:
        fixed_response: {status_code: 418, content_type: application/json, message_body: '{"tea": true}'}
    - priority: 6
      conditions: [{host_header: ["old.example.com"]}]
      action: {redirect: {host: new.example.com, port: "443", protocol: HTTPS, status_code: HTTP_302}}
load_balancer: {idle_timeout: 1}
local: {max_deregistration_delay: 2}
"""


@pytest.fixture
def lb(tmp_path) -> Iterator[Harness]:
    harness = Harness(stack(FAST), access_log=tmp_path / "access.log")
    try:
        yield harness
    finally:
        harness.close()


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        merged: dict[str, str] = {}
        for name, value in response.getheaders():
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
        return response.status, merged, response.read()
    finally:
        conn.close()


def raw(port: int, data: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Send `data`, read until the LB closes (True) or `timeout` passes (False)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            return b"".join(chunks), False
        return b"".join(chunks), True


def test_routes_by_rule_priority_and_default(lb):
    lb.backend("users-1", "users")
    lb.backend("mono-1", "monolith")
    assert get(lb.port, "/api/users/7")[2] == b"users-1 /api/users/7"
    assert get(lb.port, "/api/usersX?q=1")[2] == b"users-1 /api/usersX"
    assert get(lb.port, "/other?x=/api/users")[2] == b"mono-1 /other"  # never the query


def test_fixed_response_and_redirect(lb):
    status, headers, body = get(lb.port, "/fixed")
    assert (status, headers["Content-Type"], body) == (418, "application/json", b'{"tea": true}')
    assert headers["Server"] == "awselb/2.0"
    status, headers, _ = get(lb.port, "/a/b?c=1", headers={"Host": "old.example.com:8080"})
    assert (status, headers["Location"]) == (302, "https://new.example.com/a/b?c=1")


def test_no_registered_target_is_503_with_albs_page(lb):
    status, headers, body = get(lb.port, "/api/threads")
    assert status == 503
    assert headers["Server"] == "awselb/2.0" and headers["Content-Type"] == "text/html"
    assert b"<title>503 Service Temporarily Unavailable</title>" in body


def test_refused_target_is_502(lb):
    lb.do(lb.lb.register, "users", Target("127.0.0.1", free_port(), "ghost"))
    status, _, body = get(lb.port, "/api/users")
    assert status == 502 and b"<title>502 Bad Gateway</title>" in body


def test_malformed_target_answer_is_502(lb):
    lb.backend("mono-1", "monolith")
    assert get(lb.port, "/garbage")[0] == 502


def test_slow_target_is_504_after_the_idle_timeout(lb):
    lb.backend("mono-1", "monolith")
    status, _, body = get(lb.port, "/slow?s=4")
    assert status == 504 and b"504 Gateway Time-out" in body


def test_fails_open_when_every_target_is_unhealthy(lb):
    sick = [lb.backend(f"users-{i}", "users") for i in (1, 2)]
    lb.wait_states("users", ["healthy", "healthy"])
    for backend in sick:
        backend.healthy = False
    lb.wait_states("users", ["unhealthy", "unhealthy"], timeout=20)
    health = lb.do(lb.lb.target_health, "users")
    assert {(h.reason, h.description) for h in health} == {
        ("Target.ResponseCodeMismatch", "Health checks failed with these codes: [503]")
    }
    answers = {get(lb.port, "/api/users")[2] for _ in range(4)}
    assert answers == {b"users-1 /api/users", b"users-2 /api/users"}  # both, round robin


def test_routes_only_to_healthy_targets_when_some_are(lb):
    good = lb.backend("users-1", "users")
    bad = lb.backend("users-2", "users", healthy=False)
    lb.wait_states("users", ["healthy", "initial"])
    assert {get(lb.port, "/api/users")[2] for _ in range(4)} == {b"users-1 /api/users"}
    assert bad.app_requests() == [] and len(good.app_requests()) == 4


def test_health_change_callback(lb):
    seen = []
    lb.do(lb.lb.on_health_change, lambda *args: seen.append((args[0], args[1].id, args[2], args[3])))
    lb.backend("users-1", "users")
    lb.wait_states("users", ["healthy"])
    assert ("users", "users-1", "initial", "healthy") in seen


def test_forwarded_headers_and_trace_id(lb):
    backend = lb.backend("mono-1", "monolith")
    _, _, body = get(lb.port, "/echo", {"X-Forwarded-For": "10.0.0.1", "X-Forwarded-Proto": "https",
                                        "Connection": "keep-alive, X-Secret", "X-Secret": "1"})  # fmt: skip
    headers = json.loads(body)["headers"]
    names = [n.lower() for n, _ in headers]
    values = {n.lower(): v for n, v in headers}
    assert values["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert values["x-forwarded-proto"] == "http" and values["x-forwarded-port"] == str(lb.port)
    assert values["host"] == f"127.0.0.1:{lb.port}"
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", values["x-amzn-trace-id"])
    assert "connection" not in names and "x-secret" not in names  # hop-by-hop
    _, _, body = get(lb.port, "/echo", {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;App=x"})
    trace = {n.lower(): v for n, v in json.loads(body)["headers"]}["x-amzn-trace-id"]
    root = "Root=1-5759e988-bd862e3fe1be46a994272793"
    assert re.fullmatch(rf"Self=1-[0-9a-f]{{8}}-[0-9a-f]{{24}};{root};App=x", trace)
    assert len(backend.app_requests()) == 2


def test_keep_alive_reuses_one_target_connection(lb):
    backend = lb.backend("mono-1", "monolith")
    conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=5)
    for i in range(20):
        conn.request("GET", f"/n{i}")
        assert conn.getresponse().read() == f"mono-1 /n{i}".encode()
    conn.close()
    assert len({r["peer"] for r in backend.app_requests()}) == 1


def test_pipelined_requests_are_answered_in_order(lb):
    lb.backend("mono-1", "monolith")
    one = b"GET /slow?s=0.2 HTTP/1.1\r\nHost: a\r\n\r\n"
    two = b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    data, closed = raw(lb.port, one + two)
    assert closed and data.index(b"mono-1 /slow") < data.index(b"mono-1 /second")


def test_streams_large_bodies_both_ways(lb):
    backend = lb.backend("mono-1", "monolith")
    size = 8 * 1024 * 1024
    status, _, body = get(lb.port, f"/big?n={size}")
    assert status == 200 and len(body) == size

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"y" * 65536

    status, _, body = get(lb.port, "/echo", method="POST", body=chunks(),
                          headers={"Transfer-Encoding": "chunked"})  # fmt: skip
    assert status == 200 and json.loads(body)["body_length"] == 64 * 65536
    assert backend.app_requests()[-1]["body_length"] == 64 * 65536


def test_an_answer_over_several_reads_is_relayed_whole(lb):
    # Its head and the first half of the body come in one read: held, then sent when the read
    # ends (exchange.release); the rest follows as it comes. One read: relayed as received.
    lb.backend("mono-1", "monolith")
    status, headers, body = get(lb.port, "/split?tens=300")
    assert status == 200 and body == b"0123456789" * 300 and headers["Content-Length"] == "3000"
    status, headers, body = get(lb.port, "/x")
    assert (status, body, headers["X-Backend"]) == (200, b"mono-1 /x", "mono-1")


def test_head_and_expect_continue(lb):
    lb.backend("mono-1", "monolith")
    status, headers, body = get(lb.port, "/x", method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "9")
    with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and b'"body": "hello"' in answer
    assert b"expect" not in answer.lower().split(b"\r\n\r\n", 1)[1]


def test_deregister_drains_in_flight_requests(lb):
    backend = lb.backend("users-1", "users")
    results = []
    slow = threading.Thread(target=lambda: results.append(get(lb.port, "/api/users/slow?s=0.5")))
    slow.start()
    deadline = time.monotonic() + 5
    while not backend.app_requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    lb.call(lb.lb.deregister("users", backend.target))
    slow.join(5)
    assert results and results[0][0] == 200  # the in-flight request finished
    assert lb.states("users") == []  # then the target is gone
    assert get(lb.port, "/api/users")[0] == 503


def test_access_log_in_albs_format(lb, tmp_path):
    lb.backend("users-1", "users")
    get(lb.port, "/api/users?x=1", {"User-Agent": "curl/8"})
    get(lb.port, "/api/threads")
    lb.call(lb.lb.close())
    lines = (tmp_path / "access.log").read_text().splitlines()
    forward = next(line for line in lines if "/api/users" in line)
    fields = re.findall(r'"[^"]*"|\S+', forward)
    assert fields[0] == "http" and fields[2] == "app/t/local"
    assert fields[4].startswith("127.0.0.1:") and fields[8:10] == ["200", "200"]
    assert fields[12] == f'"GET http://127.0.0.1:{lb.port}/api/users?x=1 HTTP/1.1"'
    assert fields[13] == '"curl/8"' and fields[20] == "1" and fields[22] == '"forward"'
    assert re.fullmatch(r'"Root=1-[0-9a-f]{8}-[0-9a-f]{24}"', fields[17])
    assert fields[27:29] == ['"-"', '"-"']  # compliant: no classification
    error = next(line for line in lines if "/api/threads" in line)
    assert " -1 -1 -1 503 - " in error


WEIGHTED = """
listener:
  default_action:
    forward:
      target_groups: [{name: users, weight: 1}, {name: posts, weight: 3}]
      stickiness: {duration: 60}
load_balancer: {idle_timeout: 1}
"""


def test_weighted_forward_with_target_group_stickiness():
    lb = Harness(stack(WEIGHTED))
    try:
        lb.backend("users-1", "users")
        lb.backend("posts-1", "posts")
        first = [get(lb.port, "/w") for _ in range(40)]
        groups = [body.split()[0] for _, _, body in first]
        assert {b"users-1", b"posts-1"} == set(groups)  # both get traffic (1:3 on average)
        _, headers, body = first[0]
        cookie = headers["Set-Cookie"].split(";")[0]
        assert cookie.startswith("AWSALBTG=") and "Expires=" in headers["Set-Cookie"]
        assert "AWSALBTGCORS=" in headers["Set-Cookie"] and "SameSite=None; Secure" in headers["Set-Cookie"]
        again = {get(lb.port, "/w", {"Cookie": cookie})[2].split()[0] for _ in range(10)}
        assert again == {body.split()[0]}  # the cookie pins the target group
    finally:
        lb.close()


def test_idle_client_connections_close_and_a_stalled_request_gets_408(lb):
    answer, closed = raw(lb.port, b"", timeout=5)
    assert (answer, closed) == (b"", True)  # idle for idle_timeout (1 s): closed
    answer, closed = raw(lb.port, b"GET / HTTP/1.1\r\nHost: a\r\n", timeout=5)
    assert answer.startswith(b"HTTP/1.1 408") and closed


def test_requests_still_in_flight_when_the_delay_ends_get_502():
    # ALB: "A request still in flight when the delay elapses gets 502" (B.3). Here the delay is
    # min(deregistration_delay 30 s, local.max_deregistration_delay 1 s).
    lb = Harness(stack("local: {max_deregistration_delay: 1}"))
    try:
        _in_flight_at_deadline(lb)
    finally:
        lb.close()


def _in_flight_at_deadline(lb: Harness) -> None:
    backend = lb.backend("users-1", "users")
    results = []
    slow = threading.Thread(target=lambda: results.append(get(lb.port, "/api/users/slow?s=30")))
    slow.start()
    deadline = time.monotonic() + 5
    while not backend.app_requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    lb.call(lb.lb.deregister("users", backend.target))  # returns at the 1 s deadline
    slow.join(10)
    assert results and results[0][0] == 502


def test_http10_clients_get_unchunked_bodies_and_keep_alive_on_request(lb):
    lb.backend("mono-1", "monolith")
    answer, closed = raw(lb.port, b"GET /big?n=10 HTTP/1.0\r\n\r\n")
    assert closed and answer.endswith(b"\r\n\r\nxxxxxxxxxx") and b"chunked" not in answer
    answer, closed = raw(lb.port, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=0.5)
    assert b"Connection: keep-alive" in answer and answer.endswith(b"mono-1 /a") and not closed
    answer, closed = raw(lb.port, b"GET /status/204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 204") and b"Content-Length" not in answer
