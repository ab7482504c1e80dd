"""One asyncio protocol per client connection of a service: parse with httptools, answer in order.

The services' server is single-threaded on purpose: the request is parsed, handled and its
response written on the event loop's own thread, in one `transport.write`. (A server that
parses on other threads hands every request across, which costs more than the request itself
at the moderate load a replica sees behind the load balancer.)

Per connection, requests are answered strictly in order. A request arriving while another is
in flight waits in `queue`, and reading pauses until the queue drains, so a pipelining client
cannot make us buffer without bound; a request body is buffered up to `BODY_HIGH_WATER`
bytes ahead of the handler, then reading pauses too. A response is sent with
`connection: close` and the connection closed after it when the client asked for that, when
the handler did not read the whole body (the next request's start is unknown), or when the
server is draining.

`Server` holds what the connections share: the app, the time of the last sweep (the clock the
idle and head timeouts are measured on, advanced by the caller: `sweep(now)`), the Date header,
and the drain on SIGTERM.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import types
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Generator
from typing import Any, Final

import httptools

from microforum.services.app import TRACE_HEADER, App
from microforum.services.http import AsgiHeaders, HttpError, Response, problem
from microforum.services.http1 import (
    CONTINUE,
    MAX_HEAD,
    encode_head_and_body,
    header_lines,
    http_date,
    split_target,
)
from microforum.services.settings import IDLE_TIMEOUT

BODY_HIGH_WATER: Final = 256 * 1024  # body bytes buffered ahead of the handler before pausing
HEAD_TIMEOUT: Final = 30.0  # seconds a started request head may take to arrive (as granian's was)
TICK: Final = 1.0  # seconds between sweeps, at most (a short idle timeout sweeps more often)
# Reads run at once, on the parser's return, until they first wait: a cached read never does,
# and is answered without a task (~6 us less per request). They must not call asyncio.timeout
# (which needs a task) before their first wait: reads never ask another service.
EAGER_METHODS: Final = frozenset({"GET", "HEAD"})


class Server:
    """What every connection of one worker shares, and the worker's drain."""

    def __init__(self, app: App, idle_timeout: float = IDLE_TIMEOUT, now: float = 0.0) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        self.connections: set[Connection] = set()
        self.now = now  # seconds, on the caller's clock, at the last sweep
        self.date = http_date(time.time())
        self.draining = False
        self.busy = 0  # requests being answered (a handler may outlive its connection)
        self._idle = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Server {self.app.service} connections={len(self.connections)} now={self.now:.1f}>"

    @property
    def sweep_interval(self) -> float:
        """Seconds between calls to `sweep`: a connection closes within a quarter of its timeout late."""
        return min(TICK, self.idle_timeout / 4)

    def sweep(self, now: float) -> None:
        """Every `sweep_interval`: advance the clock, refresh Date, close idle or stalled connections."""
        self.now = now
        self.date = http_date(time.time())
        for conn in list(self.connections):
            conn.sweep(now)

    def drain(self) -> None:
        """Stop reusing connections: idle ones close now, busy ones after their last answer."""
        self.draining = True
        for conn in list(self.connections):
            conn.drain()
        self._check_idle()

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self._check_idle()

    def answered(self) -> None:
        self.busy -= 1
        if self.draining:
            self._check_idle()

    def _check_idle(self) -> None:
        if self.draining and not self.connections and not self.busy:
            self._idle.set()

    async def drained(self) -> None:
        """Returns once draining, every connection closed and every handler finished."""
        await self._idle.wait()


class Body:
    """A request body on its way from the parser to the handler, chunk by chunk."""

    __slots__ = ("buffered", "chunks", "complete", "conn", "expect_continue", "failed", "waiter")

    def __init__(self, conn: Connection, expect_continue: AsgiHeaders | None) -> None:
        self.conn = conn
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.failed: str | None = None  # why the body will not arrive whole
        # The headers to look for `expect: 100-continue` in when the handler first waits for
        # the body (and then None): most requests have no body to wait for, so never look.
        self.expect_continue = expect_continue
        self.waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > BODY_HIGH_WATER:
            self.conn.pause("body")
        self._wake()

    def end(self) -> None:
        self.complete = True
        if self.waiter is not None:  # most bodies end before anyone waits for them
            self._wake()

    def fail(self, reason: str = "client disconnected before sending the whole body") -> None:
        self.failed = reason
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> AsyncIterator[bytes]:
        """The chunks, as they arrive; HttpError 400 when the client leaves or errs before the end."""
        while True:
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                if self.buffered <= BODY_HIGH_WATER:
                    self.conn.resume("body")
                yield chunk
            elif self.complete:
                return
            elif self.failed is not None:
                raise HttpError(400, self.failed)
            else:
                if self.expect_continue is not None:
                    expect = self.expect_continue.get("expect")
                    self.expect_continue = None
                    if expect is not None and expect.lower() == "100-continue":
                        self.conn.write(CONTINUE)
                self.waiter = asyncio.get_running_loop().create_future()
                await self.waiter
                self.waiter = None


class Exchange:
    """One request of a connection, from its parsed head to its written response."""

    __slots__ = ("body", "headers", "http10", "keep_alive", "method", "refused", "url")

    def __init__(self, method: str, url: bytes, headers: AsgiHeaders, body: Body,
                 keep_alive: bool, http10: bool) -> None:  # fmt: skip
        self.method, self.url, self.headers, self.body = method, url, headers, body
        self.keep_alive, self.http10 = keep_alive, http10
        self.refused: Response | None = None  # answered without the app (a malformed request)

    def __repr__(self) -> str:
        return f"<Exchange {self.method} {self.url!r}>"


class Connection(asyncio.Protocol):
    """A client's connection to the service."""

    def __init__(self, server: Server) -> None:
        # Per-connection state
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Exchange] = deque()
        self.pauses: set[str] = set()
        self.closing = False  # no further request is read; close once the queue is answered
        self.last_used = server.now
        self.task: asyncio.Task[None] | None = None  # answering queue[0] (held: tasks are weak)
        # Per-request (parsing) state
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []  # lower-case names, as received
        self.head_size = 0
        self.in_head = False
        self.current: Exchange | None = None

    def __repr__(self) -> str:
        return f"<Connection queue={len(self.queue)} closing={self.closing} pauses={sorted(self.pauses)}>"

    # Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_used = self.server.now
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closing = True  # no protocol switch here: answer the request, then close
        except httptools.HttpParserError as exc:
            oversized = isinstance(exc.__context__, _Oversized)
            self._refuse(431 if oversized else 400, str(exc.__context__ or exc))
            return
        self._pump()

    def eof_received(self) -> bool | None:
        # The client sent all it will: answer what it asked, then close.
        if self.current is not None:
            self.current.body.fail()
        self.closing = True
        if not self.queue:
            return None  # the transport closes itself
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.transport = None
        for exchange in self.queue:
            exchange.body.fail()
        self.server.forget(self)

    # Parser callbacks

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_size = 0
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)
        if self.head_size > MAX_HEAD:
            raise _Oversized(f"request head larger than {MAX_HEAD} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self.head_size += len(name) + len(value)
        if self.head_size > MAX_HEAD:
            raise _Oversized(f"request head larger than {MAX_HEAD} bytes")

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self.parser
        http10 = parser.get_http_version() == "1.0"
        headers = AsgiHeaders(self.headers)
        raw_method = parser.get_method()
        exchange = Exchange(
            _METHODS.get(raw_method) or raw_method.decode("latin-1"), self.url, headers,
            Body(self, None if http10 else headers), parser.should_keep_alive(), http10,
        )  # fmt: skip
        self.current = exchange
        self.queue.append(exchange)
        if len(self.queue) > 1:  # pipelined behind a request in flight: stop reading for now
            self.pause("pipeline")

    def on_body(self, body: bytes) -> None:
        if self.current is not None:
            self.current.body.feed(body)

    def on_message_complete(self) -> None:
        if self.current is not None:
            self.current.body.end()
            self.current = None

    # Answering

    def _pump(self) -> None:
        """Answer the queued requests in order, for as long as answers complete at once."""
        while self.queue and self.task is None and self.transport is not None \
                and not self.transport.is_closing():  # fmt: skip
            exchange = self.queue[0]
            self.server.busy += 1
            answering = self._answer(exchange)
            if exchange.method not in EAGER_METHODS:
                self.task = asyncio.get_running_loop().create_task(self._finish(answering))
                return
            try:  # run it here until it first waits (a cached read never does)
                awaited = answering.send(None)
            except StopIteration:
                continue
            self.task = asyncio.get_running_loop().create_task(self._resume(answering, awaited))

    async def _finish(self, answering: Coroutine[Any, Any, None]) -> None:
        await answering
        self.task = None
        self._pump()

    async def _resume(self, answering: Coroutine[Any, Any, None], awaited: Any) -> None:
        # Not `await answering`: it is suspended inside its own await already (or at a bare
        # `yield`, awaited None), which only `_resume` can take over.
        await _resume(answering, awaited)
        self.task = None
        self._pump()

    async def _answer(self, exchange: Exchange) -> None:
        # One coroutine from the request to its written answer (each level of await costs).
        try:
            if exchange.refused is not None:
                self._send(exchange, exchange.refused, "")
                return
            target = _TARGETS.get(exchange.url)
            if target is None:
                try:
                    target = _remember_target(exchange.url)
                except httptools.HttpParserError:
                    refused = problem(400, f"malformed request target {exchange.url[:100]!r}")
                    self._send(exchange, refused, "")
                    return
            path, query = target
            response, trace = await self.server.app.answer(
                exchange.method, path, query, exchange.headers, exchange.body.read
            )
            self._send(exchange, response, trace)
        except Exception:  # a bug here: the client must not wait forever
            traceback.print_exc()
            self._answer_bug(exchange)
        finally:
            self.server.answered()

    def _send(self, exchange: Exchange, response: Response, trace: str) -> None:
        # Closing (no request is read any more): the last answer queued closes the connection.
        keep_alive = (exchange.keep_alive and exchange.body.complete and not self.server.draining
                      and not (self.closing and len(self.queue) == 1))  # fmt: skip
        lines = f"{TRACE_HEADER}: {trace}\r\n" if trace else ""
        if response.content_type is not None:
            lines += f"content-type: {response.content_type}\r\n"
        if response.headers:
            lines += header_lines(response.headers)
        transport = self.transport  # `write`, inline (once per request)
        if transport is not None and not transport.is_closing():
            transport.write(encode_head_and_body(
                response.status, lines, response.body, self.server.date,
                exchange.method == "HEAD", keep_alive, exchange.http10,
            ))  # fmt: skip
        self.queue.popleft()
        if not keep_alive:
            self.close()
            return
        self.last_used = self.server.now
        if len(self.queue) <= 1 and self.pauses:
            self.resume("pipeline")

    def _answer_bug(self, exchange: Exchange) -> None:
        """After a bug answering `exchange`: a 500 and close, or only close if it was answered."""
        self.closing = True
        try:
            if self.queue and self.queue[0] is exchange:
                exchange.keep_alive = False
                self._send(exchange, problem(500, "internal error; see the service's log"), "")
        except Exception:  # the bug is in sending itself: closing is all that is left
            traceback.print_exc()
        self.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer a request the parser refused after those before it, then close.

        A request whose body the parser refused is being answered already: its handler learns
        why when it reads the body, and its answer is the last.
        """
        self.closing = True
        self.pause("closing")
        current, self.current = self.current, None
        if current is not None and current is self.queue[0] and self.task is not None:
            current.body.fail(f"malformed request: {detail}")  # started: its handler reads why
            return
        if current is not None:
            self.queue.remove(current)  # not started: the refusal answers in its place
        refusal = Exchange("GET", b"/", AsgiHeaders([]), Body(self, None), False, False)
        refusal.refused = problem(status, f"malformed request: {detail}")
        self.queue.append(refusal)
        self._pump()

    # Used by the body, the sweeper and the drain

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pause(self, reason: str) -> None:
        if not self.pauses and self.transport is not None:
            self.transport.pause_reading()
        self.pauses.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.pauses:
            self.pauses.discard(reason)
            if not self.pauses and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def drain(self) -> None:
        if not self.queue and not self.in_head:
            self.close()

    def sweep(self, now: float) -> None:
        """Close the connection when idle for the idle timeout, or a head stalled for HEAD_TIMEOUT."""
        if self.queue:
            return
        server = self.server
        if should_close(now - self.last_used, in_head=self.in_head, draining=server.draining,
                        idle_timeout=server.idle_timeout):  # fmt: skip
            self.close()


def should_close(idle: float, *, in_head: bool, draining: bool, idle_timeout: float) -> bool:
    """Whether a connection with no request in flight closes, `idle` seconds after its last use.

    A connection waiting for its next request closes after `idle_timeout`, or at once when the
    server drains; one in the middle of a request head gets HEAD_TIMEOUT to finish it.
    """
    if in_head:
        return idle >= HEAD_TIMEOUT
    return draining or idle >= idle_timeout


# Targets and methods seen recently, decoded (a replica sees the same few again and again).
_TARGETS: dict[bytes, tuple[str, str]] = {}
MAX_TARGETS: Final = 1024
_METHODS: Final = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}


def _remember_target(url: bytes) -> tuple[str, str]:
    target = split_target(url)
    if len(_TARGETS) >= MAX_TARGETS:
        _TARGETS.clear()
    _TARGETS[url] = target
    return target


class _Oversized(Exception):
    """A request head beyond MAX_HEAD."""


@types.coroutine
def _resume(answering: Coroutine[Any, Any, None], awaited: Any) -> Generator[Any, Any, None]:
    """Go on with `answering`, started outside any task and now waiting for `awaited`.

    The task running this passes on what `awaited` gives, a value or an exception (a database
    call that failed, a cancellation), to `answering` at the point where it waits, as `await`
    would have, until `answering` returns. An exception must reach `answering`: raised here, it
    would end the task and leave the request unanswered and counted busy.
    """
    while True:
        try:
            value = yield awaited
        except BaseException as exc:
            try:
                awaited = answering.throw(exc)
            except StopIteration:
                return
            continue
        try:
            awaited = answering.send(value)
        except StopIteration:
            return
