"""One asyncio protocol per client connection: read requests (reader.py), hand each to an
`Exchange`, keep them in order (pipelining), apply ALB's timeouts and flow control.

Per connection, requests are answered strictly in order. A request arriving while another is
in flight waits in `queue` and reading pauses until the queue drains, so a pipelining client
cannot make us buffer without bound. Every byte a target receives belongs to a request the
reader delimited and `decide` classified and routed: the head is rebuilt or forwarded as
read, the body as the reader framed it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable
from typing import Any

from microforum.lb.accesslog import LineCache, LogRecord
from microforum.lb.context import ProxyContext
from microforum.lb.decide import Decision, decide, refusal
from microforum.lb.exchange import ClientSide, Exchange
from microforum.lb.lifecycle import READ
from microforum.lb.pool import no_delay, unconnected
from microforum.lb.reader import LAST, NEXT, STOP, ReadError, RequestHead, RequestReader

_conn_ids = itertools.count(1)
log = logging.getLogger("microforum.lb")


class ClientConnection(ClientSide):
    """A client's connection to the listener (what its exchanges and their target connections
    use of it: exchange.ClientSide and pool.BatchingClient)."""

    __slots__ = (
        "closing", "conn_id", "current", "decided", "decision", "feed", "peer_ip", "peer_port",
        "queue", "reader", "send", "transport", "wbuf",
    )  # fmt: skip

    def __init__(self, ctx: ProxyContext) -> None:
        # Per-connection state
        self.ctx = self.clock = ctx  # (`clock`: the context, as a target connection reads it)
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
        self.log_lines = LineCache()
        self.log_record = LogRecord()  # each request's fields, for log_lines
        self.conn_id = next(_conn_ids)
        self.batching = False
        self.wfirst = b""  # the first piece of a batch (see `write`), then the others
        self.wbuf: list[bytes] = []
        # The request being read (its head read, its body maybe not yet)
        self.current: Exchange | None = None
        # The latest head decided and its decision: `decide` is pure, and the reader hands on
        # a head repeated byte for byte as the same object (keep-alive clients repeat theirs).
        self.decided: RequestHead | None = None
        self.decision: Decision | None = None

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
            self.feed(data)
        except ReadError as exc:
            self.fail(exc.status, exc.error_reason)
        except Exception as exc:  # a bug of ours: the client gets 500, the log the traceback
            log.error("load balancer bug while handling a request", exc_info=exc)
            self.fail(500, "InternalError")
        else:
            if self.queue and self.queue[0].out:  # (what the reader accepted, not sent yet)
                self.queue[0].flush()
        finally:
            if self.wfirst:
                self.end_batch()
            else:  # nothing gathered (as for most requests: the answer comes later)
                self.batching = False

    def eof_received(self) -> bool | None:
        # The client closed its side (ALB treats it as gone, docs/alb.md "Clients that close"):
        # a request whose body stops short is a 400, and the answers still awaited end as
        # 460 when asyncio closes the transport (connection_lost).
        current = self.current
        if current is not None and current.request != READ:
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
        """A request head was read: decide (decide.py) and start it (or queue it behind the
        one in flight). What to read next (reader.NEXT, LAST or STOP)."""
        if self.closing:
            return STOP
        decision = self.decision
        if decision is None or head is not self.decided:  # (a head repeated: decided alike)
            decision = self.decision = decide(head, self.peer_ip, self.ctx)
            self.decided = head
        exchange = Exchange(self, decision)
        self.current = exchange
        self.queue.append(exchange)
        if len(self.queue) == 1:
            exchange.start()
        else:  # pipelined behind a request still in flight: stop reading until it is done
            self.pause_reading("pipeline")
        if not exchange.close_client:
            return NEXT
        return LAST if exchange.local is None else STOP

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

    def end_batch(self) -> None:
        self.batching = False
        if self.wfirst:
            data = self.wfirst
            self.wfirst = b""
            if self.wbuf:  # (see `drop_batch`)
                data = b"".join([data, *self.wbuf])
                self.wbuf.clear()
            if self.transport is not None and not self.closing:
                self.send(data)

    def drop_batch(self) -> None:
        """Forget what the batch gathered (the connection is being cut)."""
        self.wfirst = b""
        if self.wbuf:
            self.wbuf.clear()

    def cut(self) -> None:
        """Abort the connection: what the batch gathered is not sent (an answer that cannot
        be completed is cut, never ended as if whole)."""
        self.drop_batch()
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def exchange_done(self, exchange: object) -> None:
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
        if len(self.queue) <= 1 and self.pauses:
            self.resume_reading("pipeline")

    def closing_after_current(self) -> None:
        if self.queue:
            self.queue[-1].close_client = True
        else:
            self.close()

    def fail(self, status: int, error_reason: str) -> None:
        """Answer a request the reader refused with `status`, then close; nothing more of it
        is forwarded."""
        bad = self.current
        self.current = None
        self.reader.stop()
        if bad is not None and bad.dispatched:  # refused mid-body: the target must not reuse it
            bad.abort_midway(status)
        else:
            if bad is not None:
                self.queue.remove(bad)
                bad.abandon()
            error = Exchange.refused(self, refusal(status, error_reason))
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
