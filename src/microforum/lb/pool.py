"""Connections to one target: keep-alive reuse, one request at a time per connection.

ALB multiplexes client requests over back-end keep-alive connections, never pipelines to a
target and opens connections on demand (docs/alb.md §D.6). A `TargetPool` holds the idle ones; a
`BackendConnection` reads one response at a time for the exchange it is bound to (exchange.py):
a read that is the whole, plain answer (headers.whole_response: the usual one) is handed on at
once; any other is parsed with httptools, whose events it hands on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Final

import httptools

from microforum.lb.headers import HOP_BY_HOP, head_of, whole_response
from microforum.lb.lifecycle import HELD, SENT
from microforum.lb.targets import Target

CONNECT_TIMEOUT: Final = 10.0  # seconds; ALB gives 504 when a target cannot be reached in 10 s (C)
MAX_RESPONSE_HEAD: Final = 32 * 1024  # a larger response head is a 502 (docs/alb.md §D.5)


# The roles below are native base classes, not Protocols: compiled (native.py), mypyc reads a
# Protocol's attribute or calls its method by name (a dictionary lookup, 150-450 instructions)
# and a base class's from the object's struct or vtable. The classes that play them
# (context.ProxyContext, proxy.ClientConnection, exchange.Exchange) inherit them, so that this
# module need not import theirs (there is no import circle: tests/test_import_graph.py).


class Ticking:
    """The load balancer's clock, as a target connection reads it (context.ProxyContext)."""

    __slots__ = ("tick",)
    tick: int  # the sweeper's tick: an exchange notes the one of its latest progress


class BatchingClient(asyncio.Protocol):
    """What a target connection uses of the client connection its exchange belongs to
    (proxy.ClientConnection, through exchange.ClientSide)."""

    __slots__ = ("batching", "clock", "wfirst")
    clock: Ticking  # (its context)
    batching: bool  # set: what is written is gathered until `end_batch` sends it at once
    wfirst: bytes  # the batch's first piece (empty: nothing gathered, `end_batch` has no work)

    def end_batch(self) -> None:
        raise NotImplementedError

    def pause_reading_for_backend(self) -> None:
        raise NotImplementedError

    def resume_reading_for_backend(self) -> None:
        raise NotImplementedError


class ExchangeEvents:
    """What a target connection reports to the exchange bound to it (exchange.Exchange)."""

    __slots__ = ("response", "tick", "writer")
    writer: BatchingClient  # its client connection
    response: int  # its response phase (lifecycle.py)
    tick: int  # the clock tick of its latest progress (idle timeout)

    def whole_answer(self, conn: BackendConnection, data: bytes, status: int) -> bool:
        raise NotImplementedError

    def response_head(self, conn: BackendConnection, status: int, head: bytes) -> None:
        raise NotImplementedError

    def response_body(self, body: bytes) -> None:
        raise NotImplementedError

    def response_done(self, conn: BackendConnection, keep_alive: bool) -> None:
        raise NotImplementedError

    def release(self, conn: BackendConnection) -> None:
        raise NotImplementedError

    def backend_lost(self, conn: BackendConnection) -> None:
        raise NotImplementedError

    def backend_failed(self, conn: BackendConnection, why: str) -> None:
        raise NotImplementedError


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle: heads and bodies are written whole, and waiting for an ACK of the
    previous segment (delayed ACK) would add up to 200 ms per exchange."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_background: set[asyncio.Future[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any]) -> None:
    """Run `coro` as a task, keeping a reference until it is done (the loop keeps weak ones)."""
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


class BackendConnection(asyncio.Protocol):
    """One keep-alive connection to a target; bound to at most one exchange at a time."""

    __slots__ = (
        "chunk", "closed", "exchange", "feed", "fresh", "head_first", "head_more",
        "in_head", "informational", "next_offset", "parser", "pool", "reset_parser",
        "reused", "send_bytes", "single", "transport",
    )  # fmt: skip

    def __init__(self, pool: TargetPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.send_bytes: Callable[[bytes], None] = unconnected  # transport.write, bound once
        self.parser = httptools.HttpResponseParser(self)
        self.feed: Callable[[bytes], None] = self.parser.feed_data  # bound once: cheaper calls
        self.exchange: ExchangeEvents | None = None
        self.informational = False
        self.reset_parser = False
        self.reused = False
        self.closed = False
        # The response head as received: where it starts, and the reads that continue it.
        self.chunk = b""
        self.fresh = False  # no message ended yet in `chunk`
        self.in_head = False
        self.head_first = b""
        self.head_more: list[bytes] = []
        self.next_offset = -1
        self.single = False  # the head began `chunk` and ended inside it

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("busy" if self.exchange else "idle")
        return f"<BackendConnection {self.pool.target.id} {state}>"

    # Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send_bytes = transport.write  # type: ignore[attr-defined]
        no_delay(transport)

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # a target talking out of turn: this connection is unusable
            self.close()
            return
        client = exchange.writer
        exchange.tick = client.clock.tick
        client.batching = True  # the client gets this read's head and body in one write
        if self.in_head:
            self.head_more.append(data)
        self.chunk, self.fresh = data, True
        try:
            # Between two answers, a read that is a whole, plain one (headers.whole_response) is
            # relayed at once, past the parser (which stays between answers); any other is parsed.
            status = (
                whole_response(data, HOP_BY_HOP, MAX_RESPONSE_HEAD)
                if exchange.response == SENT and not self.in_head
                else 0
            )
            if status and exchange.whole_answer(self, data, status):
                self.fresh = False
            else:
                self.feed(data)
        except httptools.HttpParserError:
            exchange.backend_failed(self, "malformed")
            self.close()
        else:
            if exchange.response == HELD:  # the answer goes on in a later read
                exchange.release(self)
        finally:
            if client.wfirst:
                client.end_batch()
            else:  # nothing gathered (a read that ends no head)
                client.batching = False
        if self.reset_parser:  # after a HEAD response (see exchange.response_head)
            self.reset_parser = False
            self.parser = httptools.HttpResponseParser(self)
            self.feed = self.parser.feed_data

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
            self.exchange.writer.pause_reading_for_backend()

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.writer.resume_reading_for_backend()

    # Parser callbacks
    # No on_header: the head is taken from the bytes received (most answers are relayed as
    # received; a Python call per header would be the largest per-request cost).

    def on_message_begin(self) -> None:
        self.in_head = True
        if self.head_more:
            self.head_more = []
        if self.fresh:
            self.head_first = self.chunk
        elif self.next_offset >= 0:  # right after a 1xx answer in the same read
            self.head_first = self.chunk[self.next_offset :]
        else:  # bytes beyond the answer we asked for: a target that cannot be trusted
            raise httptools.HttpParserError("unexpected bytes after a response")
        self.next_offset = -1

    def on_headers_complete(self) -> None:
        self.in_head = False
        raw = self.head_first if not self.head_more else b"".join([self.head_first, *self.head_more])
        head = head_of(raw)
        if head is None or len(head) > MAX_RESPONSE_HEAD:
            raise httptools.HttpParserError("response head too large")  # ALB: 502
        status = self.parser.get_status_code()
        # 1xx (we answer 100 Continue ourselves and strip Expect): skip it, wait for the real one.
        self.informational = 100 <= status < 200
        if self.informational:
            if not self.head_more:
                self.next_offset = len(self.chunk) - len(raw) + len(head) + 4
            return
        if self.exchange is not None:
            self.single = not self.head_more and self.head_first is self.chunk
            self.exchange.response_head(self, status, head)

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None and not self.reset_parser:
            exchange.response_body(body)

    def on_message_complete(self) -> None:
        self.fresh = False
        if self.informational:
            self.informational = False
            return
        if self.exchange is not None and not self.reset_parser:
            self.exchange.response_done(self, self.parser.should_keep_alive())

    # Used by the exchange and the pool

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


def unconnected(data: bytes) -> None:
    """What a connection's bound `write` is before its transport exists."""
    raise RuntimeError("no transport yet")


class TargetPool:
    """Idle keep-alive connections to one target, and all its open ones (to abort on drain)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.idle: list[BackendConnection] = []
        # Every open connection, idle or busy: added when made, dropped when closed (not per
        # request: a busy one is an open one that is not idle).
        self.conns: set[BackendConnection] = set()

    def __repr__(self) -> str:
        return f"<TargetPool {self.target.id} idle={len(self.idle)} busy={len(self.busy)}>"

    @property
    def busy(self) -> list[BackendConnection]:
        """The open connections bound to an exchange now."""
        return [conn for conn in self.conns if conn not in self.idle]

    def take(self) -> BackendConnection | None:
        """An idle connection, most recently used first (None when none is left)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
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
        self.conns.add(conn)
        return conn  # type: ignore[no-any-return]

    def give_back(self, conn: BackendConnection) -> None:
        """Return a connection whose exchange finished cleanly to the idle list."""
        if not conn.closed:
            self.idle.append(conn)

    def forget(self, conn: BackendConnection) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self, *, abort_busy: bool = False) -> None:
        """Close the idle connections (and abort busy ones: their requests get 502)."""
        busy = self.busy
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()
        if abort_busy:
            for conn in busy:
                conn.abort()
