"""One request/response exchange through the load balancer: the shell around `decide`.

`decide` (decide.py) has read, judged and matched the request head; the exchange acts on that
`Decision`: it prepares the load balancer's own answer, or picks the target and the head it
receives (forward.py); `start` runs it once the exchange is first in its connection's queue;
the target connection's events (`response_head`, `response_body`, `response_done`, and the
failures) relay the answer to the client; `_finish` counts and logs it. Its life cycle is two
phases, the request's and the response's, moved by the transition tables of lifecycle.py.

Errors follow ALB (docs/alb.md §A, C): no registered target 503; refused, reset, closed early or
malformed answer 502; no answer within the idle timeout (or no connection within 10 s) 504;
a client that leaves while waiting 460, one that cuts its body short 400.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Final

from microforum.lb import accesslog, forward, responses
from microforum.lb import headers as hdr
from microforum.lb.decide import ERROR, FIXED, FORWARD, REDIRECT, Decision
from microforum.lb.lifecycle import (
    CONNECTING,
    DONE,
    E_ANSWER,
    E_BODY,
    E_COMPLETE,
    E_CUT,
    E_DONE,
    E_DROP,
    E_GONE,
    E_HEAD,
    E_HOLD,
    E_RELEASE,
    E_RETRY,
    E_SEND,
    E_START,
    E_WHOLE,
    HEAD,
    HELD,
    READ,
    RELAYING,
    REQUEST_PHASES,
    RESPONSE_PHASES,
    WAITING,
    request_step,
    response_step,
)  # fmt: skip
from microforum.lb.pool import BatchingClient, ExchangeEvents, spawn
from microforum.lb.rules import host_without_port
from microforum.spec.model import FixedResponse, Forward

if TYPE_CHECKING:
    from microforum.lb.accesslog import LineCache, LogRecord
    from microforum.lb.context import ProxyContext
    from microforum.lb.groups import GroupState
    from microforum.lb.pool import BackendConnection, TargetPool
    from microforum.lb.targets import Slot

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_PENDING_BODY: Final = 1024 * 1024  # buffered while the target connection opens; then we pause
# How the response body is relayed to the client (Final: mypyc inlines them).
_NONE: Final = 0
_RAW: Final = 1
_CHUNKED: Final = 2
# Module-level names read per request are Final: compiled (native.py), they become C statics.
_now: Final = time.time
# On a lower-cased response head: its Content-Length, and a chunked Transfer-Encoding (a
# hop-by-hop field: headers.hop_field).
_RESP_LENGTH: Final = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)").search
_RESP_CHUNKED: Final = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked").search


def _split_header(line: bytes) -> tuple[bytes, bytes]:
    name, _, value = line.partition(b":")
    return name, value.strip(b" \t")


class ClientSide(BatchingClient):
    """What an exchange uses of its client connection (proxy.ClientConnection plays it), and
    its target connection through it (pool.BatchingClient): a native base class, as pool.py's
    roles are (see there)."""

    __slots__ = ("conn_trace", "ctx", "forwarded", "last_tick", "log_lines", "log_record", "pauses", "peer")
    ctx: ProxyContext
    peer: str
    forwarded: bytes
    conn_trace: str
    last_tick: int
    pauses: set[str]
    log_record: LogRecord
    log_lines: LineCache

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def exchange_done(self, exchange: object) -> None:
        raise NotImplementedError

    def pause_reading(self, reason: str) -> None:
        raise NotImplementedError

    def resume_reading(self, reason: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def cut(self) -> None:
        raise NotImplementedError


class Exchange(ExchangeEvents):
    """A request from a client and the answer it gets (from a target or from the LB)."""

    # Slots: attribute access on the hot path without a per-instance dict.
    __slots__ = (
        "as_is", "client", "close_backend", "close_client", "conn", "created", "d", "error_reason",
        "group", "held_head", "held_size", "is_head", "local", "out", "out_size", "pool", "received",
        "replay", "request", "resp_at", "resp_mode", "sent", "sent_at", "slot", "status",
        "sticky", "target_status", "trace", "until_close", "version",
    )  # fmt: skip

    def __init__(self, client: ClientSide, d: Decision) -> None:
        # The request, as decided (decide.py), and its connection (`writer`: as the target
        # connection sees it)
        self.client, self.d = client, d
        self.writer: BatchingClient = client
        self.version, self.is_head = d.version, d.method == b"HEAD"
        self.close_client, self.close_backend = d.close_client, d.close_backend
        self.created = _now()
        # Its life cycle (lifecycle.py) and the clock tick of its latest progress
        self.request, self.response = HEAD, WAITING
        self.tick = client.ctx.tick
        # Where it goes: the load balancer's own answer, or a target's
        self.local: bytes | None = None
        self.group: GroupState | None = None
        self.slot: Slot | None = None
        self.pool: TargetPool | None = None
        self.conn: BackendConnection | None = None
        self.replay: bytes | None = None  # sent on a reused connection: may be sent once more
        # What goes to the target, not sent yet (and how much of it is body)
        self.out: list[bytes] = []
        self.out_size = 0
        # The answer: how its body is relayed, an answer not relayed yet (see response_head:
        # its head, and how many bytes of its body followed it in the same read, still in the
        # read: not copied), the cookies of a sticky forward
        self.resp_mode = _NONE
        self.until_close = False
        self.held_head = b""
        self.held_size = 0
        self.sticky: list[str] | None = None
        # For the access log
        self.status, self.error_reason = d.status, d.error_reason
        self.target_status = b"-"
        self.received, self.sent = d.size, 0
        self.sent_at = self.resp_at = 0.0
        self.trace = b"-"
        if d.answer == FORWARD:
            self._forward(d)
        else:
            self._prepare_answer(d)
        # Whether a target's answer can reach this client as received (response_head,
        # whole_answer): an HTTP/1.1 client, not HEAD, no stickiness cookie to add (and, checked
        # when the answer comes, no Connection: close to add).
        self.as_is = self.version == "1.1" and not self.is_head and not self.sticky

    def __repr__(self) -> str:
        return (
            f"<Exchange {self.d.method.decode(errors='replace')} {self.d.url.decode(errors='replace')} "
            f"request={REQUEST_PHASES[self.request]} response={RESPONSE_PHASES[self.response]} "
            f"status={self.status or '-'}>"
        )

    @classmethod
    def refused(cls, client: ClientSide, d: Decision) -> Exchange:
        """An exchange for bytes the reader refused: `d.status`, then the connection closes."""
        ex = cls(client, d)
        ex.request = READ
        return ex

    @property
    def dispatched(self) -> bool:
        """Whether bytes of the request went to a target (for this attempt)."""
        return self.sent_at != 0.0

    # Preparing what `start` will do

    def _prepare_answer(self, d: Decision) -> None:
        """Prepare the load balancer's own answer (an error, a fixed response, a redirect)."""
        ctx = self.client.ctx
        if d.answer == ERROR:
            self._error(d.status)
        elif d.answer == FIXED:
            assert isinstance(d.action, FixedResponse)
            self.local = responses.fixed(
                d.action, ctx.date(), close=self.close_client, head_only=self.is_head
            )
        elif d.answer == REDIRECT:
            self.local = responses.redirect(d.status, d.redirect_url, ctx.date(), close=self.close_client,
                                            head_only=self.is_head)  # fmt: skip

    def _error(self, status: int) -> None:
        ctx = self.client.ctx
        (self.group.metrics if self.group else ctx.metrics).elb_response(status)
        self.status = status
        self.local = responses.error(status, ctx.date(), close=self.close_client, head_only=self.is_head)

    def _forward(self, d: Decision) -> None:
        """Pick the target and prepare the head it receives."""
        ctx = self.client.ctx
        group = d.group
        if group is None:
            assert isinstance(d.action, Forward)
            group, self.sticky = forward.target_group(ctx, d.action, d.cookie)
        self.group = group
        picked = group.pick()
        if picked is None:  # "The target groups for the load balancer have no registered targets."
            self._error(503)
            return
        self.slot, self.pool = picked
        self.slot.outstanding += 1
        # (the usual request, with no trace id of its own and nothing to rewrite, prepared
        # here: forward.trace and forward.target_head do the same for it)
        if d.trace_in is None:
            self.trace = ctx.trace_ids.root(int(self.created))
        else:
            self.trace = forward.trace(ctx, d, self.created)
        if d.raw is not None:
            self.out.append(hdr.forward_raw(d.raw, self.client.forwarded, self.trace))
        else:
            self.out.append(forward.target_head(ctx, d, self.client.forwarded, self.trace))

    # Acting

    def start(self) -> None:
        """Run the decision: write a local response, or get a target connection."""
        if self.response != WAITING:
            return
        if self.local is not None:
            self._respond_locally()
            return
        if self.pool is None:
            return
        self.response = response_step(self.response, E_START)
        if self.d.expect_continue and self.request != READ:
            self.client.write(CONTINUE)  # ALB answers 100 Continue itself (docs/alb.md §D)
        conn = self.pool.take()
        if conn is None:
            spawn(self._connect())
            return
        self.conn = conn  # (`_attach`, without the call)
        conn.exchange = self
        self.flush()

    def _respond_locally(self) -> None:
        data = self.local or b""
        self.client.write(data)
        self.sent += len(data)
        if self.group is None and self.status < 400:
            self.client.ctx.metrics.requests += 1  # fixed-response and redirect: LB-wide count
        self._finish(E_ANSWER)

    async def _connect(self) -> None:
        assert self.pool is not None
        try:
            conn = await self.pool.connect()
        except (TimeoutError, OSError) as exc:
            if self.response != DONE:
                self.error_reason = "TargetConnectionError"
                self._target_failed(504 if isinstance(exc, asyncio.TimeoutError) else 502)
            return
        if self.response == DONE:  # the client went away meanwhile
            self.pool.give_back(conn)
            return
        self._attach(conn)

    def _attach(self, conn: BackendConnection) -> None:
        self.conn = conn
        conn.exchange = self
        self.flush()

    def flush(self) -> None:
        """Send what the reader has accepted so far to the target."""
        conn = self.conn
        if conn is None or not self.out:
            return
        if self.d.chunked and self.request == HEAD:
            return  # hold a chunked request's head until its first chunk parsed cleanly
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()  # (the same list: no new one per request)
        self.out_size = 0
        if self.response == CONNECTING:
            self.sent_at = _now()
            self.tick = self.client.ctx.tick
            if conn.reused and self.request == READ:
                self.replay = data  # a stale keep-alive connection may be retried once
        self.response = response_step(self.response, E_SEND)
        if not conn.closed:  # (attached: connected, its `send_bytes` the transport's write)
            conn.send_bytes(data)
        if self.client.pauses:
            self.client.resume_reading("buffer")

    def request_body(self, body: bytes) -> None:
        """A piece of the request body (de-chunked by the reader)."""
        self.received += len(body)
        self.request = request_step(self.request, E_BODY)
        if self.response == DONE or self.pool is None:
            return  # answered already (or never forwarded): the rest is read and dropped
        self.out.append(b"%x\r\n%s\r\n" % (len(body), body) if self.d.chunked else body)
        self.out_size += len(body)
        if self.conn is None and self.out_size > MAX_PENDING_BODY:
            self.client.pause_reading("buffer")

    def request_complete(self) -> None:
        """The reader saw the end of the request."""
        self.request = request_step(self.request, E_COMPLETE)
        if self.d.chunked and self.response != DONE and self.pool is not None:
            self.out.append(b"0\r\n\r\n")
        if self.response == DONE:
            self.client.exchange_done(self)

    # Relaying the target's answer

    def response_head(self, conn: BackendConnection, status: int, head: bytes) -> None:
        """The target's status line and headers (`head`, as received, without the blank line)."""
        self.resp_at = _now()
        self.status = status
        self.target_status = accesslog.STATUS[status]  # (llhttp reads three digits)
        if (self.as_is and not self.close_client and conn.single and status != 204 and status != 304
                and hdr.relayable(head)):  # fmt: skip
            # Nothing in this head needs rewriting. If the whole answer is this one read, it is
            # relayed as received (response_done); if not, `release` sends it the usual way
            # when the read ends.
            self.response = response_step(self.response, E_HOLD)
            self.held_head = head
            self.held_size = 0
            return
        self.response = response_step(self.response, E_HEAD)
        self._send_head(conn, status, head)

    def release(self, conn: BackendConnection) -> None:
        """A target read ended with the answer held and incomplete: send its head (rebuilt)
        and the body held so far; the rest is relayed as it comes."""
        self.response = response_step(self.response, E_RELEASE)
        self._send_head(conn, self.status, self.held_head)
        if self.held_size:
            # Held only when the head began this read and nothing in it is rewritten (no
            # chunked framing): the body so far is the read's bytes right after the head.
            start = len(self.held_head) + 4
            self.response_body(conn.chunk[start : start + self.held_size])

    def _send_head(self, conn: BackendConnection, status: int, head: bytes) -> None:
        data = self._client_head(status, head)
        self.client.write(data)
        self.sent += len(data)
        if self.is_head:  # llhttp would wait for a HEAD response's body: we know there is none
            conn.reset_parser = True
            self.response_done(conn, conn.parser.should_keep_alive())

    def _client_head(self, status: int, head: bytes) -> bytes:
        """The target's head as the client gets it: hop-by-hop fields out, the framing the
        client can read, stickiness cookies, Connection as we keep it (sets `resp_mode`)."""
        lower = head.lower()
        found = _RESP_LENGTH(lower)
        length = head[found.start(1) : found.end(1)] if found else None
        chunked = hdr.hop_field(lower) is not None and _RESP_CHUNKED(lower) is not None
        line, _, rest = head.partition(b"\r\n")
        headers = [_split_header(h) for h in rest.split(b"\r\n")] if rest else []
        reason = line.split(b" ", 2)[2] if line.count(b" ") >= 2 else b""
        extra: list[bytes] = []
        if self.is_head or status in (204, 304):
            if length is not None and status != 204:  # RFC 9110 §8.6: never on a 204
                extra.append(b"Content-Length: %s\r\n" % length)
        elif chunked and self.version == "1.1":
            self.resp_mode = _CHUNKED
            extra.append(b"Transfer-Encoding: chunked\r\n")
        elif chunked:  # an HTTP/1.0 client cannot read chunks: de-chunked, then close
            self.resp_mode = _RAW
            self.close_client = True
        elif length is not None:
            self.resp_mode = _RAW
            extra.append(b"Content-Length: %s\r\n" % length)
        else:  # delimited by the target closing: re-chunk for HTTP/1.1 clients
            self.until_close = True
            if self.version == "1.1":
                self.resp_mode = _CHUNKED
                extra.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.resp_mode = _RAW
                self.close_client = True
        if self.sticky:
            extra.extend(b"Set-Cookie: %s\r\n" % c.encode("latin-1") for c in self.sticky)
        if self.close_client:
            extra.append(b"Connection: close\r\n")
        elif self.version == "1.0":
            extra.append(b"Connection: keep-alive\r\n")
        extra.append(b"\r\n")
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        return hdr.response_head(line, headers, b"".join(extra))

    def response_body(self, body: bytes) -> None:
        if self.response == HELD:
            self.held_size += len(body)
            return
        data = b"%x\r\n%s\r\n" % (len(body), body) if self.resp_mode == _CHUNKED else body
        self.client.write(data)
        self.sent += len(data)

    def response_done(self, conn: BackendConnection, keep_alive: bool) -> None:
        """The target's answer is complete."""
        if self.response == DONE:
            return
        if self.response == HELD:
            chunk = conn.chunk
            if len(chunk) == len(self.held_head) + 4 + self.held_size:
                # the whole answer is this read: relayed as received
                self.client.write(chunk)
                self.sent += len(chunk)
            else:
                self.release(conn)
        if self.resp_mode == _CHUNKED:
            self.client.write(b"0\r\n\r\n")
            self.sent += 5
        self._answered(conn, keep_alive, E_DONE)

    def whole_answer(self, conn: BackendConnection, data: bytes, status: int) -> bool:
        """A read from the target that is its whole answer, plain (`status`: headers.whole_response
        said so): relayed as received, as `response_head` would hold it and `response_done` send
        it, unless the client's side needs it rewritten (then False: the parser reads it)."""
        if not self.as_is or self.close_client:
            return False
        self.resp_at = _now()
        self.status = status
        self.target_status = accesslog.STATUS[status]
        self.client.write(data)
        self.sent += len(data)
        self._answered(conn, True, E_WHOLE)
        return True

    def _answered(self, conn: BackendConnection, keep_alive: bool, event: int) -> None:
        """The target's answer was relayed whole: its connection goes back to the pool (or is
        closed), the answer is counted, the exchange ends."""
        conn.exchange = None
        self.conn = None
        if keep_alive and self.request == READ and not self.close_backend and self.pool is not None:
            self.pool.give_back(conn)
        else:
            conn.close()
        if self.group is not None:
            self.group.metrics.target_response(self.status, self.resp_at - self.sent_at)
        self._finish(event)

    def backend_lost(self, conn: BackendConnection) -> None:
        """The target connection closed while this exchange was using it."""
        self.conn = None
        response = self.response
        if response == DONE:
            return
        if response in (HELD, RELAYING):
            if self.until_close:
                self.response_done(conn, keep_alive=False)
            else:
                self._abort_client("TargetResponseTruncated")
            return
        if conn.reused and self.replay is not None:
            # The target closed an idle keep-alive connection as we reused it (docs/alb.md §D.6's
            # race); the request was sent whole and nothing came back: try once more (on a new
            # connection, never reused: so only once).
            self.response = response_step(response, E_RETRY)
            self.out, self.replay, self.sent_at = [self.replay], None, 0.0
            spawn(self._connect())
            return
        self.error_reason = "TargetConnectionError"
        self._target_failed(502)

    def backend_failed(self, conn: BackendConnection, why: str) -> None:
        """The target answered with something that is not HTTP (or a head over 32 K)."""
        conn.exchange = None
        self.conn = None
        if self.response == DONE:
            return
        if self.response == HELD or self.response == RELAYING:
            self._abort_client("TargetResponseMalformed")
            return
        self.error_reason = "TargetResponseMalformed"
        self._target_failed(502)

    def _target_failed(self, status: int) -> None:
        self._cut_backend()
        ctx = self.client.ctx
        self.target_status = b"-"
        self.status = status
        if self.group is not None:
            self.group.metrics.elb_response(status)
        self.client.write(responses.error(status, ctx.date(), close=self.close_client,
                                          head_only=self.is_head))  # fmt: skip
        self._finish(E_ANSWER)

    def _abort_client(self, reason: str) -> None:
        """The answer had begun and cannot be completed: cut the client connection."""
        self.error_reason = reason
        self.close_client = True
        if self.group is not None:
            self.group.metrics.target_response(self.status, _now() - self.sent_at)
        client = self.client
        self._finish(E_CUT)
        client.cut()

    def _cut_backend(self) -> None:
        """Abort the target connection (never reused: it may hold part of this request)."""
        conn = self.conn
        if conn is not None:
            conn.exchange = None
            conn.abort()
            self.conn = None

    # Ending

    def sweep(self, idle_ticks: int) -> None:
        """The idle timeout: no byte from the target (or the client) for that long."""
        ctx = self.client.ctx
        response = self.response
        if response == WAITING or (response == DONE and ctx.tick - self.client.last_tick < idle_ticks):
            return
        if response == DONE:
            self.client.close()
        elif ctx.tick - max(self.tick, self.client.last_tick) >= idle_ticks:
            if response in (HELD, RELAYING):
                self._abort_client("TargetTimeout")
            else:
                self.error_reason = "TargetTimeout"
                self._target_failed(504)

    def client_gone(self) -> None:
        """The client closed its connection (ALB logs 460 if we were still waiting)."""
        if self.response == DONE:
            return
        self._cut_backend()
        if self.response != WAITING:
            self.status = 460
            self._finish(E_GONE, notify=False)
        else:
            self.response = response_step(self.response, E_DROP)
            self._release_slot()

    def client_closed_midway(self) -> None:
        """The client closed before sending the whole body: ALB's 400, logged; the target
        connection (if the request reached one) is cut, never reused; nothing is counted
        against the target group."""
        self.request = request_step(self.request, E_COMPLETE)
        self.close_client = True
        self._cut_backend()
        response = self.response
        if response != DONE:
            self.target_status = b"-"
            self.status = 400
            self._finish(E_CUT if response in (HELD, RELAYING) else E_ANSWER, notify=False)

    def abort_midway(self, status: int) -> None:
        """The reader refused the request after part of it went to the target."""
        self.close_client = True
        self.request = request_step(self.request, E_COMPLETE)
        self._cut_backend()  # the target saw a truncated request on a connection never reused
        response = self.response
        if response == DONE:
            self.client.close()
        elif response in (HELD, RELAYING):
            self._abort_client("ClientRequestMalformed")
        else:
            self.target_status = b"-"
            self.status = status
            self.client.write(responses.error(status, self.client.ctx.date(), close=True))
            self._finish(E_ANSWER)

    def abandon(self) -> None:
        """Drop an exchange whose request the reader refused before any byte of it was sent:
        its target connection (if one was attached) goes back to the pool unused."""
        if self.response != DONE:
            self.response = response_step(self.response, E_DROP)
        self.out = []
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.exchange = None
            if self.pool is not None:
                self.pool.give_back(conn)
        self._release_slot()

    def pause_backend(self) -> None:
        if self.conn is not None:
            self.conn.pause_reading()

    def resume_backend(self) -> None:
        if self.conn is not None:
            self.conn.resume_reading()

    def _release_slot(self) -> None:
        if self.slot is not None:
            self.slot.outstanding -= 1
            self.slot = None

    def _finish(self, event: int, notify: bool = True) -> None:
        """The exchange ends (`event`: how, lifecycle.py): the slot is given back, the line
        logged, and the connection moves on to its next exchange."""
        self.response = response_step(self.response, event)
        slot = self.slot
        if slot is not None:
            slot.outstanding -= 1
            self.slot = None
        if self.client.ctx.log.stream is not None:
            self._log(slot.addr if slot is not None and self.sent_at != 0.0 else "-")
        if notify and (self.request == READ or self.close_client):
            self.client.exchange_done(self)

    def _log(self, target: str) -> None:
        client = self.client
        ctx = client.ctx
        now = _now()
        # The connection's record (allocated once: a new one per line costs more than the
        # line). The fields the request brings are filled when its decision is not the last
        # line's, and keyed by it (accesslog.LineCache): `decide` is pure, a decision never
        # changes.
        r = client.log_record
        d = self.d
        if r.key is not d:
            _log_request(r, d, client)
        sent_at = self.sent_at
        if sent_at != 0.0:
            resp_at = self.resp_at or now
            r.request_time = sent_at - self.created
            r.target_time = resp_at - sent_at
            r.response_time = now - resp_at
        else:
            r.request_time = r.target_time = r.response_time = -1.0
        r.target = target
        r.elb_status = self.status
        r.target_status = self.target_status
        r.received = self.received
        r.sent = self.sent
        r.target_group = self.group.arn if self.group else "-"
        r.trace = self.trace
        r.created = self.created
        r.sent_at = now
        r.error_reason = self.error_reason
        ctx.log.add(client.log_lines.line(ctx.log.clock, r))


def _log_request(r: LogRecord, d: Decision, client: ClientSide) -> None:
    """Fill the access-log fields that come with the request (accesslog.KEYED), keyed by `d`."""
    r.key = d
    r.elb = client.ctx.elb
    port = client.ctx.port
    if d.method == b"-":
        r.request = b"- - - "
    else:
        origin = f"http://{host_without_port(d.host) or '-'}:{port}".encode("latin-1")
        protocol = b"HTTP/1.1" if d.version == "1.1" else f"HTTP/{d.version}".encode()
        r.request = b"%s %s%s %s" % (d.method, origin, d.url, protocol)  # the client's bytes, as sent
    r.client = client.peer
    r.user_agent = d.user_agent
    r.priority = d.priority
    r.action = d.action_name
    r.redirect_url = d.redirect_url
    r.classification = d.classification
    r.classification_reason = d.class_reason
    r.conn_trace = client.conn_trace
