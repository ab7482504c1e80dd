"""The services' client for calls to each other: pooled keep-alive connections, a stale pooled
connection replaced, chunked answers, timeouts; and, end to end, a POST's calls carrying its
trace id as ALB would (same Root, a Self of their own) on reused connections."""

from __future__ import annotations

import asyncio
import http.server
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from service_helpers import serving

from microforum.services.client import Origin
from microforum.services.refs import outgoing_trace

Answer = Callable[[int], bytes]  # the n-th request on a connection -> the bytes to send
JSON_OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n{"id":1}'


async def _with_server(
    answer: Answer, test: Callable[[Origin, list[int]], Awaitable[None]], close_after: int = 0
) -> None:
    """Run `test` against a server answering each request with `answer(n)`; the list it gets
    counts the requests seen on each connection accepted."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(0)
        me = len(connections) - 1
        while await reader.readuntil(b"\r\n\r\n"):
            connections[me] += 1
            writer.write(answer(connections[me]))
            await writer.drain()
            if close_after and connections[me] == close_after:
                writer.close()
                return

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    origin = Origin(f"http://127.0.0.1:{port}")
    try:
        await test(origin, connections)
    finally:
        origin.close()
        server.close()


def test_calls_reuse_one_connection() -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        for _ in range(5):
            assert await origin.get("/api/users/1", [], 2.0) == (200, b'{"id":1}')
        assert connections == [5]

    asyncio.run(_with_server(lambda n: JSON_OK, test))


def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        for _ in range(3):
            assert (await origin.get("/", [], 2.0))[0] == 200
            await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        assert connections == [1, 1, 1]

    asyncio.run(_with_server(lambda n: JSON_OK, test, close_after=1))


def test_chunked_answers_and_closing_answers() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"4\r\n[1,2\r\n2;ext=1\r\n,3\r\n1\r\n]\r\n0\r\n\r\n"
    )
    closing = b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"

    async def test(origin: Origin, connections: list[int]) -> None:
        assert await origin.get("/", [], 2.0) == (200, b"[1,2,3]")
        assert await origin.get("/", [], 2.0) == (404, b"")
        assert await origin.get("/", [], 2.0) == (200, b"[1,2,3]")
        assert connections == [2, 1]  # `connection: close` was honoured

    asyncio.run(_with_server(lambda n: chunked if n == 1 else closing, test))


def test_a_silent_peer_times_out_and_its_connection_is_not_reused() -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        with pytest.raises(TimeoutError):
            await origin.get("/", [], 0.1)
        assert origin.idle == []

    asyncio.run(_with_server(lambda n: b"", test))


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("Root=1-5759e988-bd862e3fe1be46a994272793", "Root=1-5759e988-bd862e3fe1be46a994272793"),
        (
            "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;CalledFrom=app",
            "Root=1-5759e988-bd862e3fe1be46a994272793;CalledFrom=app",
        ),
    ],
)
def test_outgoing_trace_keeps_root_and_adds_self(incoming: str, kept: str) -> None:
    out = outgoing_trace(incoming)
    match = re.fullmatch(r"Self=(1-[0-9a-f]{8}-[0-9a-f]{24});(.*)", out)
    assert match and match.group(2) == kept
    assert outgoing_trace(incoming) != out  # a new Self per call


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A users/threads stand-in: every id exists; it records trace ids and connections."""

    protocol_version = "HTTP/1.1"
    traces: list[str] = []  # noqa: RUF012
    peers: set[int] = set()  # noqa: RUF012

    def do_GET(self) -> None:
        type(self).traces.append(self.headers.get("x-amzn-trace-id", ""))
        type(self).peers.add(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "8")
        self.end_headers()
        self.wfile.write(b'{"id":1}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.traces, _Recorder.peers = [], set()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_posts_calls_share_its_trace_and_connections(tmp_path: Path, recorder: str) -> None:
    root = "Root=1-5759e988-bd862e3fe1be46a994272793"
    with serving("posts", tmp_path, {"API_URL": recorder}) as posts:
        for _ in range(3):
            made = posts.call(
                "POST",
                "/api/posts",
                {"thread": 1, "text": "hi", "user": 1},
                headers={"X-Amzn-Trace-Id": root},
            )
            assert made.status == 201 and made.headers["x-amzn-trace-id"] == root
    # The first POST asks about its thread and user before and after writing; the next ones
    # take the first check from that recent answer and ask only after writing.
    assert len(_Recorder.traces) == 4 + 2 + 2
    for trace in _Recorder.traces:
        assert re.fullmatch(rf"Self=1-[0-9a-f]{{8}}-[0-9a-f]{{24}};{root}", trace), trace
    assert len(set(_Recorder.traces)) == 8  # each call its own Self
    assert len(_Recorder.peers) <= 2  # pooled: one connection per concurrent check
