"""Connections to one target: keep-alive reuse, one request at a time per connection.

ALB multiplexes client requests over back-end keep-alive connections, never pipelines to a
target and opens connections on demand (ALB_SPEC D.6). A `TargetPool` holds the idle ones; a
`BackendConnection` parses one response at a time with httptools and hands the events to the
exchange it is bound to (exchange.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import httptools

from microforum.lb.targets import Target

if TYPE_CHECKING:
    from microforum.lb.exchange import Exchange

CONNECT_TIMEOUT = 10.0  # seconds; ALB gives 504 when a target cannot be reached in 10 s (C)
MAX_RESPONSE_HEAD = 32 * 1024  # a larger response head is a 502 (ALB_SPEC D.5)


_background: set[asyncio.Future[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any]) -> None:
    """Run `coro` as a task, keeping a reference until it is done (the loop keeps weak ones)."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


class BackendConnection(asyncio.Protocol):
    """One keep-alive connection to a target; bound to at most one exchange at a time."""

    __slots__ = (
        "closed", "exchange", "head_size", "headers", "informational", "parser", "pool",
        "reason", "reset_parser", "reused", "transport",
    )  # fmt: skip

    def __init__(self, pool: TargetPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.head_size = 0
        self.informational = False
        self.reset_parser = False
        self.reused = False
        self.closed = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self.exchange else "idle")
        return f"<BackendConnection {self.pool.target.id} {state}>"

    # Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # a target talking out of turn: this connection is unusable
            self.close()
            return
        exchange.touch()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            exchange.backend_failed(self, "malformed")
            self.close()
        if self.reset_parser:  # after a HEAD response (see exchange.response_head)
            self.reset_parser = False
            self.parser = httptools.HttpResponseParser(self)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.backend_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.pause_reading_for_backend()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.client.resume_reading_for_backend()

    # Parser callbacks

    def on_message_begin(self) -> None:
        self.headers = []
        self.head_size = 0

    def on_status(self, status: bytes) -> None:
        self.reason = status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        if self.head_size > MAX_RESPONSE_HEAD and self.exchange is not None:
            raise httptools.HttpParserError("response head too large")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        # 1xx (we answer 100 Continue ourselves and strip Expect): skip it, wait for the real one.
        self.informational = 100 <= status < 200
        if not self.informational and self.exchange is not None:
            self.exchange.response_head(self, status, self.reason, self.headers)

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None and not self.reset_parser:
            self.exchange.response_body(body)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        if self.exchange is not None and not self.reset_parser:
            self.exchange.response_done(self, self.parser.should_keep_alive())

    # Used by the exchange and the pool

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
        self.pool.forget(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()


class TargetPool:
    """Idle keep-alive connections to one target, and the busy ones (to abort on drain)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.idle: list[BackendConnection] = []
        self.busy: set[BackendConnection] = set()

    def __repr__(self) -> str:
        return f"<TargetPool {self.target.id} idle={len(self.idle)} busy={len(self.busy)}>"

    def take(self) -> BackendConnection | None:
        """An idle connection, most recently used first (None when none is left)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                self.busy.add(conn)
                return conn
        return None

    async def connect(
        self, factory: Callable[[TargetPool], BackendConnection] | None = None
    ) -> BackendConnection:
        """A new connection (raises OSError or asyncio.TimeoutError)."""
        loop = asyncio.get_running_loop()
        make: Any = factory or BackendConnection
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: make(self), self.target.host, self.target.port),
            CONNECT_TIMEOUT,
        )
        self.busy.add(conn)
        return conn  # type: ignore[no-any-return]

    def give_back(self, conn: BackendConnection) -> None:
        """Return a connection whose exchange finished cleanly to the idle list."""
        self.busy.discard(conn)
        if not conn.closed:
            self.idle.append(conn)

    def forget(self, conn: BackendConnection) -> None:
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self, *, abort_busy: bool = False) -> None:
        """Close the idle connections (and abort busy ones: their requests get 502)."""
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()
        if abort_busy:
            for conn in list(self.busy):
                conn.abort()
