"""The services' HTTP/1.1 connection, as transcripts over real sockets to a running monolith.

Each test writes raw bytes to 127.0.0.1 and reads the answers back as the wire has them:
keep-alive, pipelining in order, request bodies (Content-Length, chunked, 100-continue),
HEAD and 204 framing, refusals (431, 400) that close only their own connection, the idle
timeout, and the clock the timeouts are measured on (`should_close`, `Server.sweep`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import WIRE_TIMEOUT, Service, Wire, connect, get, post, serving

from helpers import output_of
from microforum.services.connection import HEAD_TIMEOUT, should_close


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serving("monolith", tmp_path_factory.mktemp("connection")) as running:
        yield running


@pytest.fixture
def wire(service: Service) -> Iterator[Wire]:
    conn = connect(service.port)
    yield conn
    conn.file.close()
    conn.sock.close()


def test_keep_alive_answers_two_requests_on_one_connection(wire: Wire) -> None:
    wire.send(get("/api/users/1"))
    first = wire.answer()
    wire.send(get("/api/users/2"))
    second = wire.answer()
    assert (first.status, first.json["id"], second.status, second.json["id"]) == (200, 1, 200, 2)
    assert "connection" not in first.headers


def test_pipelined_requests_are_answered_in_order(wire: Wire) -> None:
    wire.send(get("/api/users/1") + get("/api/users/3") + get("/api/users/2"))
    assert [wire.answer().json["id"] for _ in range(3)] == [1, 3, 2]


def test_pipelined_write_between_reads_is_answered_in_order(wire: Wire) -> None:
    body = json.dumps({"username": "pipelined", "name": "P"}).encode()
    wire.send(get("/api/users/1") + post("/api/users", body) + get("/api/users/2"))
    answers = [wire.answer() for _ in range(3)]
    assert [a.status for a in answers] == [200, 201, 200]
    assert [answers[0].json["id"], answers[1].json["username"], answers[2].json["id"]] == [1, "pipelined", 2]


def test_content_length_body(wire: Wire) -> None:
    wire.send(post("/api/users", json.dumps({"username": "sized", "name": "S"}).encode()))
    reply = wire.answer()
    assert (reply.status, reply.json["username"]) == (201, "sized")


def test_chunked_body(wire: Wire) -> None:
    body = json.dumps({"username": "chunked", "name": "C"}).encode()
    wire.send(get("/api/users", "Content-Type: application/json", "Transfer-Encoding: chunked",
                  method="POST"))  # fmt: skip
    wire.send(b"%x\r\n%s\r\n" % (5, body[:5]))
    wire.send(b"%x;ext=1\r\n%s\r\n0\r\n\r\n" % (len(body) - 5, body[5:]))
    reply = wire.answer()
    assert (reply.status, reply.json["username"]) == (201, "chunked")
    wire.send(get("/api/users/1"))  # the connection goes on after the last chunk
    assert wire.answer().status == 200


def test_expect_100_continue_then_the_answer(wire: Wire) -> None:
    body = json.dumps({"username": "expecting", "name": "E"}).encode()
    head = post("/api/users", body, "Expect: 100-continue")[: -len(body)]
    wire.send(head)
    interim = wire.answer()
    assert (interim.status, interim.body) == (100, b"")
    wire.send(body)
    reply = wire.answer()
    assert (reply.status, reply.json["username"]) == (201, "expecting")


def test_head_has_the_length_but_no_body(wire: Wire) -> None:
    wire.send(get("/api/users/1"))
    full = wire.answer()
    wire.send(get("/api/users/1", method="HEAD") + get("/api/users/2"))
    head = wire.answer(head=True)
    after = wire.answer()  # read right after the head: no body bytes came between
    assert (head.status, head.headers["content-length"]) == (200, str(len(full.body)))
    assert (after.status, after.json["id"]) == (200, 2)


def test_204_has_no_content_length(wire: Wire) -> None:
    wire.send(post("/api/users", json.dumps({"username": "doomed", "name": "D"}).encode()))
    created = wire.answer().json["id"]
    wire.send(get(f"/api/users/{created}", method="DELETE") + get("/api/users/1"))
    deleted = wire.answer()
    after = wire.answer()
    assert (deleted.status, deleted.body) == (204, b"")
    assert "content-length" not in deleted.headers
    assert (after.status, after.json["id"]) == (200, 1)


def test_head_over_64_kib_is_431_and_closes(wire: Wire) -> None:
    wire.send(get("/api/users/1", *[f"X-Filler-{n}: {'x' * 1000}" for n in range(70)]))
    reply = wire.answer()
    assert reply.status == 431
    assert reply.headers["connection"] == "close"
    assert "request head larger than 65536 bytes" in reply.json["detail"]
    assert wire.closed()


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GARBAGE\r\n\r\n", id="no-request-line"),
        pytest.param(b"GET / HTTP/9.9\r\n\r\n", id="bad-version"),
        pytest.param(b"GET /a b HTTP/1.1\r\n\r\n", id="space-in-target"),
        pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", id="raw-utf8-target"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", id="space-in-name"),
        pytest.param(b"GET / HTTP/1.1\r\nX: \x00\r\n\r\n", id="nul-in-value"),
        pytest.param(b"POST /api/users HTTP/1.1\r\nContent-Length: abc\r\n\r\n", id="bad-length"),
        pytest.param(
            b"POST /api/users HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", id="two-lengths"
        ),
        pytest.param(
            b"POST /api/users HTTP/1.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk-size",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x16\x03\x01\x00\xa5\x01", id="tls-after-a-request"
        ),
    ],
)
def test_malformed_http_is_400_json_and_the_next_connection_works(
    service: Service, request_bytes: bytes
) -> None:
    conn = connect(service.port)
    conn.send(request_bytes)
    replies = [conn.answer()]
    if replies[0].status == 200:  # the well-formed request before the garbage
        replies.append(conn.answer())
    refused = replies[-1]
    assert refused.status == 400, refused
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.json["detail"].startswith("malformed request: ")
    assert refused.headers["connection"] == "close"
    assert conn.closed()
    following = connect(service.port)
    following.send(get("/api/users/1"))
    assert following.answer().status == 200, output_of(service.process)


def test_upgrade_is_answered_without_switching_then_closed(wire: Wire) -> None:
    wire.send(get("/api/users/1", "Connection: Upgrade", "Upgrade: websocket"))
    reply = wire.answer()
    assert (reply.status, reply.json["id"], reply.headers["connection"]) == (200, 1, "close")
    assert wire.closed()


def test_idle_timeout_closes_an_idle_connection(tmp_path: Path) -> None:
    with serving("users", tmp_path, {"IDLE_TIMEOUT": "0.5"}) as users:
        conn = connect(users.port)
        conn.send(get("/api/users/1"))
        assert conn.answer().status == 200
        conn.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # not closed before the timeout
            conn.sock.recv(1)
        conn.sock.settimeout(WIRE_TIMEOUT)  # closed soon after it (a quarter of it late at most)
        assert conn.sock.recv(1) == b""


@pytest.mark.parametrize(
    ("idle", "in_head", "draining", "closes"),
    [
        (0.0, False, False, False),
        (74.9, False, False, False),
        (75.0, False, False, True),
        (0.0, False, True, True),  # draining: an idle connection closes at once
        (HEAD_TIMEOUT - 0.1, True, False, False),  # a head on its way gets HEAD_TIMEOUT
        (HEAD_TIMEOUT - 0.1, True, True, False),  # even while draining
        (HEAD_TIMEOUT, True, False, True),
    ],
)
def test_should_close(idle: float, in_head: bool, draining: bool, closes: bool) -> None:
    assert should_close(idle, in_head=in_head, draining=draining, idle_timeout=75.0) is closes


def test_malformed_body_of_a_request_in_flight_is_its_400(wire: Wire) -> None:
    wire.send(get("/api/users", "Content-Type: application/json", "Transfer-Encoding: chunked",
                  "Expect: 100-continue", method="POST"))  # fmt: skip
    assert wire.answer().status == 100  # the handler is reading the body
    wire.send(b"2\r\n{}\r\nzz\r\n")
    reply = wire.answer()
    assert (reply.status, reply.headers["connection"]) == (400, "close")
    assert reply.json["detail"].startswith("malformed request: ")
    assert wire.closed()
