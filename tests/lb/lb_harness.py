"""A load balancer and small real HTTP backends on 127.0.0.1, on a uvloop loop in a thread.

Tests talk to the balancer with real sockets (http.client or raw bytes) from the test thread.
Backends record every request they received, so a test can prove a request never reached one.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httptools
import uvloop

from microforum.lb.balancer import LoadBalancer
from microforum.lb.pool import spawn
from microforum.lb.targets import Target
from microforum.spec.model import Stack

T = TypeVar("T")


class _BackendConnection(asyncio.Protocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.backend.connections += 1

    def data_received(self, data: bytes) -> None:
        self.backend.raw.append(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.backend.parse_errors += 1
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", [], bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode(), value.decode()))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        request = {
            "method": self.parser.get_method().decode(), "url": self.url.decode(),
            "headers": self.headers, "body_length": len(self.body),
            "peer": self.transport.get_extra_info("peername")[1] if self.transport else 0,
        }  # fmt: skip
        self.backend.requests.append(request)
        spawn(self.backend.answer(self, request, bytes(self.body)))


class Backend:
    """A tiny HTTP/1.1 server: `/` health, `/echo`, `/slow?s=N`, `/big?n=N`, `/status/N`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.healthy = True
        self.requests: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.connections = 0
        self.parse_errors = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def target(self) -> Target:
        return Target("127.0.0.1", self.port, self.name)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _BackendConnection(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    def app_requests(self) -> list[dict[str, Any]]:
        """Requests other than health checks."""
        return [r for r in self.requests if not any(v == "ELB-HealthChecker/2.0" for _, v in r["headers"])]

    async def answer(self, conn: _BackendConnection, request: dict[str, Any], body: bytes) -> None:
        parts = urlsplit(request["url"])
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        transport = conn.transport
        assert transport is not None
        status, payload = 200, f"{self.name} {parts.path}".encode()
        if parts.path == "/":
            status = 200 if self.healthy else 503
        elif parts.path == "/echo":
            payload = json.dumps({**request, "backend": self.name, "body": body.decode("latin-1")}).encode()
        elif parts.path.endswith("/slow"):
            await asyncio.sleep(float(query.get("s", "5")))
        elif parts.path.startswith("/status/"):
            status = int(parts.path.rsplit("/", 1)[1])
        elif parts.path == "/big":
            n = int(query.get("n", "0"))
            transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            while n > 0:
                piece = chunk[: min(n, len(chunk))]
                transport.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                n -= len(piece)
                await asyncio.sleep(0)
            transport.write(b"0\r\n\r\n")
            return
        elif parts.path == "/split":  # a Content-Length answer over two reads: head + half, rest
            payload = b"0123456789" * int(query.get("tens", "100"))
            half = len(payload) // 2
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload)
            transport.write(head + payload[:half])
            await asyncio.sleep(0.05)
            transport.write(payload[half:])
            return
        elif parts.path == "/garbage":
            transport.write(b"this is not http\r\n\r\n")
            return
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\nX-Backend: {self.name}\r\n\r\n"
        transport.write(head.encode() + (b"" if request["method"] == "HEAD" else payload))


class _LenientConnection(asyncio.Protocol):
    """A connection to `LenientTarget`: every byte recorded, requests read loosely."""

    def __init__(self, target: LenientTarget) -> None:
        self.target = target
        self.buffer = b""
        self.seen = bytearray()  # every byte this connection received
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.target.streams.append(self.seen)

    def data_received(self, data: bytes) -> None:
        self.seen += data
        self.buffer += data
        while True:
            # As lenient servers do: blank lines skipped, LF alone ends a line, Content-Length
            # taken from the first header that looks like one, no validation at all.
            text = self.buffer.lstrip(b"\r\n")
            end = text.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = text[:end], text[end + 4 :]
            lines = head.split(b"\r\n")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length" and value.strip().isdigit():
                    length = int(value.strip())
                    break
                if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    end = rest.find(b"0\r\n\r\n")  # (no chunk data ends so in these tests)
                    length = len(rest) + 1 if end < 0 else end + 5
                    break
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            if b"ELB-HealthChecker" not in head:
                self.target.lines.append(lines[0])
            body = lines[0]
            assert self.transport is not None
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            self.transport.write(head if body.startswith(b"HEAD ") else head + body)


class LenientTarget(Backend):
    """A target that accepts anything that looks like a request and records every byte it
    receives (`streams`, one per connection) and every request line it answered (`lines`,
    health checks left out): what a careless `command` service does with bytes a proxy lets
    through."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.streams: list[bytearray] = []
        self.lines: list[bytes] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _LenientConnection(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def received(self) -> list[bytes]:
        """What each connection other than a health check's received."""
        return [bytes(s) for s in self.streams if s and b"ELB-HealthChecker" not in s]


class JumpClock:
    """Real monotonic time plus jumps a test makes (health intervals without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Harness:
    """A uvloop loop in a thread holding a LoadBalancer and backends."""

    def __init__(self, stack: Stack, access_log: Path | None = None) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.clock = JumpClock()
        self.lb = LoadBalancer(stack, access_log=access_log, clock=self.clock)
        self.access_log_path = access_log
        self.port = self.call(self.lb.start(port=0))
        self.backends: list[Backend] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def do(self, fn: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return fn(*args)

        return self.call(wrapper())

    def backend(self, name: str, group: str | None = None, *, healthy: bool = True,
                kind: type[Backend] = Backend) -> Backend:  # fmt: skip
        backend = kind(name)
        backend.healthy = healthy
        self.call(backend.start())
        self.backends.append(backend)
        if group is not None:
            self.do(self.lb.register, group, backend.target)
        return backend

    def access_log(self) -> list[str]:
        """The access log's lines so far (written out first)."""
        self.do(self.lb.ctx.log.flush)
        writer = self.lb.ctx.log.stream
        if writer is not None:
            writer.flush()  # the writer thread has written what it was handed
        path = self.access_log_path
        return path.read_text("latin-1").split("\n")[:-1] if path is not None and path.exists() else []

    def states(self, group: str) -> list[str]:
        return [h.state for h in self.do(self.lb.target_health, group)]

    def wait_states(self, group: str, expected: list[str], timeout: float = 10.0) -> None:
        """Poll until the group's target states are `expected` (jumping the clock 1 s a step)."""
        deadline = time.monotonic() + timeout
        while self.states(group) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"{group}: {self.states(group)} != {expected}")
            self.clock.advance(1.0)
            time.sleep(0.05)

    def close(self) -> None:
        self.call(self.lb.close())
        for backend in self.backends:
            self.call(backend.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
