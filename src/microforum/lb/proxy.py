"""One asyncio protocol per client connection: read requests (reader.py), hand each to an
`Exchange`, keep them in order (pipelining), apply ALB's timeouts and flow control.

Per connection, requests are answered strictly in order. A request arriving while another is
in flight waits in `queue` and reading pauses until the queue drains, so a pipelining client
cannot make us buffer without bound. Every byte a target receives belongs to a request the
reader delimited and the exchange classified and routed: the head is rebuilt or forwarded as
read, the body as the reader framed it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from microforum.lb import headers as hdr
from microforum.lb import responses
from microforum.lb.accesslog import LineCache, LogRecord
from microforum.lb.exchange import Exchange
from microforum.lb.headers import TraceIds
from microforum.lb.pool import no_delay, unconnected
from microforum.lb.reader import LAST, NEXT, STOP, ReadError, RequestHead, RequestReader
from microforum.spec.model import Forward

if TYPE_CHECKING:
    from microforum.lb.accesslog import AccessLog
    from microforum.lb.groups import GroupState
    from microforum.lb.metrics import Metrics
    from microforum.lb.rules import Router
    from microforum.spec.model import Action

    # (priority as logged, action, the target group of a forward to one group)
    Decision = tuple[str, Action, GroupState | None]

MAX_PENDING_BODY: Final = 1024 * 1024  # buffered while the target connection opens; then we pause
_SLASH: Final = 47
URL_CACHE_SIZE: Final = 4096  # decisions remembered per request target on a path-only listener

_conn_ids = itertools.count(1)
log = logging.getLogger("microforum.lb")


class ProxyContext:
    """What every connection shares: routing, groups, modes, log, figures, the clock tick."""

    def __init__(self, router: Router, groups: dict[str, GroupState], *, mode: str,
                 drop_invalid: bool, idle_timeout: float, log: AccessLog, metrics: Metrics,
                 elb: str, stack_name: str) -> None:  # fmt: skip
        self.router, self.groups, self.mode = router, groups, mode
        self.drop_invalid, self.idle_timeout = drop_invalid, idle_timeout
        self.log, self.metrics, self.elb, self.stack_name = log, metrics, elb, stack_name
        self.port = 0
        self.forwarded_static = b""  # X-Forwarded-Proto/-Port lines, set once the port is bound
        self.tick = 0  # advanced by the balancer's sweeper every TICK seconds
        self.trace_ids = TraceIds()
        # Forward actions with one target group, by id(): the router keeps the actions alive.
        self.single_forwards: dict[int, GroupState] = {}
        # A path-only listener's decisions by request target (see `decide`).
        self.decisions: dict[bytes, Decision] = {}
        self.connections: set[ClientConnection] = set()
        self.accepting = True
        self._date_second, self._date = -1, ""

    def decide(self, url: bytes) -> Decision:
        """(priority as logged, action, its target group if it forwards to one) for a request
        target on a path-only listener (`router.path_only`).

        The answer depends on the path alone, so it is remembered per request target: most
        requests repeat a few URLs. The cache is emptied when full, so that clients sending
        endless distinct URLs cost memory bounded by `URL_CACHE_SIZE` entries.
        """
        decision = self.decisions.get(url)
        if decision is None:
            priority, action = self.router.match_url(url)
            group = None
            if isinstance(action, Forward) and len(action.target_groups) == 1:
                group = self.groups[action.target_groups[0].name]
            decision = (str(priority), action, group)
            if len(self.decisions) >= URL_CACHE_SIZE:
                self.decisions.clear()
            self.decisions[url] = decision
        return decision

    def date(self) -> str:
        """The Date header value, formatted once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, responses.http_date(now)
        return self._date

    def bound(self, port: int) -> None:
        self.port = port
        self.forwarded_static = b"X-Forwarded-Proto: http\r\nX-Forwarded-Port: %d\r\n" % port


class ClientConnection(asyncio.Protocol):
    """A client's connection to the listener."""

    __slots__ = (
        "batching", "closing", "conn_id", "conn_trace", "ctx", "current", "feed", "forwarded",
        "host_sent", "host_text", "last_tick", "log_host", "log_lines", "log_origin", "log_record",
        "pauses", "peer", "peer_ip", "peer_port", "queue", "reader", "send", "transport", "wbuf",
        "wfirst",
    )  # fmt: skip

    def __init__(self, ctx: ProxyContext) -> None:
        # Per-connection state
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.send: Callable[[bytes], None] = unconnected  # transport.write, bound once
        self.reader = RequestReader(self)
        self.feed: Callable[[bytes], None] = self.reader.feed  # bound once: cheaper calls
        self.peer_ip, self.peer_port = "-", 0
        self.peer = "-"
        # The X-Forwarded-For/-Proto/-Port lines for a request that brings no X-Forwarded-For
        self.forwarded = b"X-Forwarded-For: -\r\n" + ctx.forwarded_static
        # A list, not a deque: it holds one exchange, two while a pipelined one waits (reading
        # pauses then), and compiled, list operations are direct C calls.
        self.queue: list[Exchange] = []
        self.pauses: set[str] = set()
        self.closing = False
        self.last_tick = ctx.tick
        self.conn_trace = f"TID_{os.urandom(16).hex()}"
        self.log_host, self.log_origin = "", b"http://-:0"  # the last Host logged, as logged
        self.host_sent, self.host_text = b"", ""  # the last Host received, and as text
        self.log_lines = LineCache()
        self.log_record = LogRecord()  # each request's fields, for log_lines
        self.conn_id = next(_conn_ids)
        self.batching = False
        self.wfirst = b""  # the first piece of a batch (see `write`), then the others
        self.wbuf: list[bytes] = []
        # The request being read (its head read, its body maybe not yet)
        self.current: Exchange | None = None

    def __repr__(self) -> str:
        return f"<ClientConnection #{self.conn_id} {self.peer_ip}:{self.peer_port} queue={len(self.queue)}>"

    # Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send = transport.write  # type: ignore[attr-defined]
        no_delay(transport)
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_ip, self.peer_port = peer[0], peer[1]
            self.peer = f"{peer[0]}:{peer[1]}"
            self.forwarded = b"X-Forwarded-For: %s\r\n%s" % (self.peer_ip.encode(), self.ctx.forwarded_static)
        self.ctx.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_tick = self.ctx.tick
        self.batching = True
        try:
            self._feed(data)
        finally:
            self.end_batch()

    def _feed(self, data: bytes) -> None:
        try:
            self.feed(data)
        except ReadError as exc:
            self.fail(exc.status, exc.error_reason)
            return
        except Exception as exc:  # a bug of ours: the client gets 500, the log the traceback
            log.error("load balancer bug while handling a request", exc_info=exc)
            self.fail(500, "InternalError")
            return
        if self.queue:
            self.queue[0].flush()

    def eof_received(self) -> bool | None:
        # The client closed its side (ALB treats it as gone, docs/alb.md "Clients that close"):
        # a request whose body stops short is a 400, and the answers still awaited end as
        # 460 when asyncio closes the transport (connection_lost).
        current = self.current
        if current is not None and not current.req_done:
            self.current = None
            self.reader.stop()
            current.client_closed_midway()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.ctx.connections.discard(self)
        while self.queue:
            self.queue.pop(0).client_gone()
        if self.current is not None:
            self.current.client_gone()
            self.current = None

    def pause_writing(self) -> None:
        if self.queue:
            self.queue[0].pause_backend()

    def resume_writing(self) -> None:
        if self.queue:
            self.queue[0].resume_backend()

    # Reader callbacks

    def on_head(self, head: RequestHead) -> int:
        """A request head was read: classify, route and start it (or queue it behind the
        one in flight). What to read next (reader.NEXT, LAST or STOP)."""
        if self.closing:
            return STOP
        url = head.target
        if not url or url[0] != _SLASH:
            url = self._origin_form(head)
        exchange = Exchange(self, head.method, url, head.version_text, head.headers, head.keep_alive)
        self.current = exchange
        self.queue.append(exchange)
        exchange.route(head)
        if len(self.queue) == 1:
            exchange.start()
        else:  # pipelined behind a request still in flight: stop reading until it is done
            self.pause_reading("pipeline")
        if not exchange.close_client:
            return NEXT
        return LAST if exchange.local is None else STOP

    def _origin_form(self, head: RequestHead) -> bytes:
        """An absolute-form target (`GET http://host/path`) as the path that rules match and
        the target receives, with the Host header taken from it (docs/alb.md, "Request
        target"); an empty one as `/`; any other target as it is."""
        split = hdr.origin_form(head.target)
        if split is None:
            return head.target or b"/"
        path, authority = split
        if authority:
            head.headers = hdr.with_host(head.headers, authority)
        head.plain = False  # the head is rebuilt, never forwarded as received
        return path

    def on_body(self, body: bytes) -> None:
        if self.current is not None:
            self.current.request_body(body)

    def on_complete(self) -> None:
        exchange, self.current = self.current, None
        if exchange is not None:
            exchange.request_complete()

    # Used by exchanges

    def write(self, data: bytes) -> None:
        """Send `data`; inside a batch it is gathered so a head and body leave in one syscall."""
        if self.batching:
            # Most batches are one piece: it waits alone, and the list (whose storage is
            # allocated on the first append and freed on `clear`) is only for the others.
            if not self.wfirst:
                self.wfirst = data
            else:
                self.wbuf.append(data)
        elif self.transport is not None and not self.closing:
            self.send(data)

    def begin_batch(self) -> None:
        self.batching = True

    def end_batch(self) -> None:
        self.batching = False
        if self.wfirst:
            data = self.wfirst if not self.wbuf else b"".join([self.wfirst, *self.wbuf])
            self.drop_batch()
            if self.transport is not None and not self.closing:
                self.send(data)

    def drop_batch(self) -> None:
        """Forget what the batch gathered (the connection is being cut)."""
        self.wfirst = b""
        if self.wbuf:
            self.wbuf.clear()

    def exchange_done(self, exchange: Exchange) -> None:
        """`exchange` answered (and, unless closing, read whole): move on to the next."""
        if not self.queue or self.queue[0] is not exchange:
            return
        self.queue.pop(0)
        if exchange.close_client:
            self.close()
            return
        if self.queue:
            self.queue[0].start()
            if self.queue:
                self.queue[0].flush()
        if len(self.queue) <= 1:
            self.resume_reading("pipeline")

    def closing_after_current(self) -> None:
        if self.queue:
            self.queue[-1].close_client = True
        else:
            self.close()

    def fail(self, status: int, error_reason: str) -> None:
        """Answer a request the reader refused with `status`, then close; nothing more of it
        is forwarded."""
        classification = ("-", "-")
        bad = self.current
        self.current = None
        self.reader.stop()
        if bad is not None and bad.dispatched:  # refused mid-body: the target must not reuse it
            bad.abort_midway(status, classification)
        else:
            if bad is not None:
                self.queue.remove(bad)
                bad.abandon()
            error = Exchange.refused(self, b"", [], status, error_reason, classification)
            self.queue.append(error)
            if len(self.queue) == 1:
                error.start()
        self.pause_reading("closing")

    def pause_reading(self, reason: str) -> None:
        if not self.pauses and self.transport is not None:
            self.transport.pause_reading()
        self.pauses.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason in self.pauses:
            self.pauses.discard(reason)
            if not self.pauses and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    def pause_reading_for_backend(self) -> None:
        self.pause_reading("backend")

    def resume_reading_for_backend(self) -> None:
        self.resume_reading("backend")

    def close(self) -> None:
        self.end_batch()
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()

    def sweep(self, idle_ticks: int) -> None:
        """Called by the sweeper: enforce the idle timeout on the connection and its exchange."""
        if self.queue:
            self.queue[0].sweep(idle_ticks)
        elif self.ctx.tick - self.last_tick >= idle_ticks:
            if self.reader.buffer or self.current is not None:  # a request began and stalled: 408
                self.fail(408, "")
            else:
                self.close()


def protocol_factory(ctx: ProxyContext) -> Any:
    """The factory `loop.create_server` calls per accepted connection."""
    return lambda: ClientConnection(ctx)
