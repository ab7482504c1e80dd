"""One request/response exchange through the load balancer.

`route` decides (routing.py: desync classification, limits, rule match, target choice) and
prepares the bytes for the target; `start` acts once the exchange is first in its connection's queue; the
target connection's parser events (`response_head`, `response_body`, `response_done`, and the
failures) relay the answer to the client; `_finish` counts and logs it.

Errors follow ALB (docs/alb.md §A, C): no registered target 503; refused, reset, closed early or
malformed answer 502; no answer within the idle timeout (or no connection within 10 s) 504;
TRACE 405; more than 30 X-Forwarded-For addresses 463; desync Severe 400 (then close).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Final

from microforum.lb import accesslog, desync, responses, routing
from microforum.lb import headers as hdr
from microforum.lb.pool import spawn
from microforum.lb.rules import host_without_port

if TYPE_CHECKING:
    from microforum.lb.groups import GroupState
    from microforum.lb.pool import BackendConnection, TargetPool
    from microforum.lb.proxy import ClientConnection
    from microforum.lb.reader import RequestHead
    from microforum.lb.targets import Slot

CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
# How the response body is relayed to the client (Final: mypyc inlines them).
_NONE: Final = 0
_RAW: Final = 1
_CHUNKED: Final = 2
# Module-level names read per request are Final: compiled (native.py), they become C statics.
_now: Final = time.time
# On a lower-cased response head: its Content-Length, and any header we must not relay as is.
_RESP_LENGTH: Final = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)").search
_HOP_NAMES: Final = b"|".join(sorted(n for n in hdr.HOP_BY_HOP if n != b"connection"))
_RESP_HOP: Final = re.compile(
    rb"\r\n(?:%s|connection(?![ \t]*:[ \t]*keep-alive[ \t]*(?:\r|$)))[ \t]*:" % _HOP_NAMES
).search  # (headers.HOP_BY_HOP; `Connection: keep-alive` alone may pass: the client stays too)
_RESP_CHUNKED: Final = re.compile(rb"\r\ntransfer-encoding:[^\r]*chunked").search


def _split_header(line: bytes) -> tuple[bytes, bytes]:
    name, _, value = line.partition(b":")
    return name, value.strip(b" \t")


class Exchange:
    """A request from a client and the answer it gets (from a target or from the LB)."""

    # Slots: attribute access on the hot path without a per-instance dict.
    __slots__ = (
        "action_name", "body_seen", "class_reason", "classification", "client",
        "close_backend", "close_client", "conn", "created", "dispatched", "error_reason",
        "expect_continue", "group", "headers", "held_head", "held_size", "holding", "host", "is_head",
        "local", "method", "out", "out_size", "pool", "priority", "received",
        "redirect_url", "replay", "req_chunked", "req_done", "resp_at", "resp_done",
        "resp_mode", "resp_started", "retried", "sent", "sent_at", "slot", "started",
        "status", "sticky", "target_status", "tick", "trace", "until_close", "url",
        "user_agent", "version",
    )  # fmt: skip

    def __init__(self, client: ClientConnection, method: bytes, url: bytes, version: str,
                 headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:  # fmt: skip
        self.client, self.method, self.url, self.version = client, method, url, version
        self.headers = headers
        self.is_head = method == b"HEAD"
        self.close_client = not keep_alive
        self.created = _now()
        self.tick = client.ctx.tick
        self.out: list[bytes] = []
        self.started = False
        self.dispatched = False
        self.req_done = False
        self.resp_done = False
        self.resp_started = False
        self.body_seen = False
        self.req_chunked = False
        self.until_close = False
        self.expect_continue = False
        self.retried = False
        self.close_backend = False
        self.local: bytes | None = None
        self.group: GroupState | None = None
        self.slot: Slot | None = None
        self.pool: TargetPool | None = None
        self.conn: BackendConnection | None = None
        self.out_size = 0
        self.received = 0
        self.sent = 0
        self.status = 0
        self.resp_mode = _NONE
        self.sent_at = 0.0
        self.resp_at = 0.0
        self.replay: bytes | None = None
        self.sticky: list[str] | None = None
        self.target_status = b"-"
        self.priority = "-"
        self.action_name = "-"
        self.redirect_url = "-"
        self.error_reason = "-"
        self.class_reason = "-"
        self.trace = b"-"
        self.classification = desync.COMPLIANT
        self.host = ""
        self.user_agent = b""
        # An answer not relayed yet (see response_head): its head, and how many bytes of its
        # body followed it in the same read (they are still in the read: not copied).
        self.holding = False
        self.held_head = b""
        self.held_size = 0

    def __repr__(self) -> str:
        return (
            f"<Exchange {self.method.decode(errors='replace')} {self.url.decode(errors='replace')} "
            f"status={self.status or '-'} req_done={self.req_done} resp_done={self.resp_done}>"
        )

    @classmethod
    def refused(cls, client: ClientConnection, url: bytes, headers: list[tuple[bytes, bytes]],
                status: int, error_reason: str, classification: tuple[str, str]) -> Exchange:  # fmt: skip
        """An exchange for bytes the parser refused: `status`, then the connection closes."""
        ex = cls(client, b"-", url, "-", headers, keep_alive=False)
        ex.classification, ex.class_reason = classification
        ex.error_reason = error_reason or "-"
        ex.req_done = True
        ex._local(responses.error(status, client.ctx.date(), close=True), status)
        return ex

    # Deciding

    def route(self, head: RequestHead) -> None:
        """Classify, check limits, match a rule and prepare the response or the forward."""
        routing.route(self, head)

    def _local(self, data: bytes, status: int) -> None:
        self.local, self.status = data, status

    def _error(self, status: int) -> None:
        ctx = self.client.ctx
        (self.group.metrics if self.group else ctx.metrics).elb_response(status)
        data = responses.error(status, ctx.date(), close=self.close_client, head_only=self.is_head)
        self._local(data, status)

    # Acting

    def start(self) -> None:
        """Run the decision: write a local response, or get a target connection."""
        if self.started:
            return
        self.started = True
        if self.local is not None:
            self._respond_locally()
            return
        if self.pool is None:
            return
        if self.expect_continue and not self.req_done:
            self.client.write(CONTINUE)  # ALB answers 100 Continue itself (docs/alb.md §D)
        conn = self.pool.take()
        if conn is not None:
            self._attach(conn)
        else:
            spawn(self._connect())

    def _respond_locally(self) -> None:
        data = self.local or b""
        self.client.write(data)
        self.sent += len(data)
        if self.group is None and self.status < 400:
            self.client.ctx.metrics.requests += 1  # fixed-response and redirect: LB-wide count
        self._finish()

    async def _connect(self) -> None:
        assert self.pool is not None
        try:
            conn = await self.pool.connect()
        except (TimeoutError, OSError) as exc:
            if not self.resp_done:
                self.error_reason = "TargetConnectionError"
                self._target_failed(504 if isinstance(exc, asyncio.TimeoutError) else 502)
            return
        if self.resp_done:  # the client went away meanwhile
            self.pool.give_back(conn)
            return
        self._attach(conn)

    def _attach(self, conn: BackendConnection) -> None:
        self.conn = conn
        conn.exchange = self
        self.flush()

    def flush(self) -> None:
        """Send what the parser has accepted so far to the target."""
        conn = self.conn
        if conn is None or not self.out:
            return
        if self.req_chunked and not self.body_seen and not self.req_done:
            return  # hold a chunked request's head until its first chunk parsed cleanly
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()  # (the same list: no new one per request)
        self.out_size = 0
        if not self.dispatched:
            self.dispatched = True
            self.sent_at = _now()
            self.tick = self.client.ctx.tick
            if conn.reused and self.req_done:
                self.replay = data  # a stale keep-alive connection may be retried once
        conn.send(data)
        if self.client.pauses:
            self.client.resume_reading("buffer")

    def request_body(self, body: bytes) -> None:
        """A piece of the request body (de-chunked by the parser)."""
        self.received += len(body)
        if self.resp_done or self.pool is None:
            return  # answered already (or never forwarded): the rest is read and dropped
        self.body_seen = True
        self.out.append(b"%x\r\n%s\r\n" % (len(body), body) if self.req_chunked else body)
        self.out_size += len(body)
        if self.conn is None and self.out_size > 1024 * 1024:
            self.client.pause_reading("buffer")

    def request_complete(self) -> None:
        """The parser saw the end of the request."""
        self.req_done = True
        if self.req_chunked and not self.resp_done and self.pool is not None:
            self.out.append(b"0\r\n\r\n")
        if self.resp_done:
            self.client.exchange_done(self)

    # Relaying the target's answer

    def touch(self) -> None:
        self.tick = self.client.ctx.tick

    def response_head(self, conn: BackendConnection, status: int, head: bytes) -> None:
        """The target's status line and headers (`head`, as received, without the blank line)."""
        self.resp_started = True
        self.resp_at = _now()
        self.status = status
        self.target_status = accesslog.decimal(status)
        if (conn.single and not self.close_client and not self.is_head and not self.sticky
                and self.version == "1.1" and status != 204 and status != 304
                and hdr.relayable(head)):  # fmt: skip
            # Nothing in this head needs rewriting. If the whole answer is this one read, it is
            # relayed as received (response_done); if not, `release` sends it the usual way
            # when the read ends.
            self.holding = True
            self.held_head = head
            self.held_size = 0
            return
        self._send_head(conn, status, head)

    def release(self, conn: BackendConnection) -> None:
        """A target read ended with the answer held and incomplete: send its head (rebuilt)
        and the body held so far; the rest is relayed as it comes."""
        self.holding = False
        self._send_head(conn, self.status, self.held_head)
        if self.held_size:
            # Held only when the head began this read and nothing in it is rewritten (no
            # chunked framing): the body so far is the read's bytes right after the head.
            start = len(self.held_head) + 4
            self.response_body(conn.chunk[start : start + self.held_size])

    def _send_head(self, conn: BackendConnection, status: int, head: bytes) -> None:
        lower = head.lower()
        found = _RESP_LENGTH(lower)
        length = head[found.start(1) : found.end(1)] if found else None
        chunked = _RESP_HOP(lower) is not None and _RESP_CHUNKED(lower) is not None
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
        head = hdr.response_head(line, headers, b"".join(extra))
        self.client.write(head)
        self.sent += len(head)
        if self.is_head:  # llhttp would wait for a HEAD response's body: we know there is none
            conn.reset_parser = True
            self.response_done(conn, conn.parser.should_keep_alive())

    def response_body(self, body: bytes) -> None:
        if self.holding:
            self.held_size += len(body)
            return
        data = b"%x\r\n%s\r\n" % (len(body), body) if self.resp_mode == _CHUNKED else body
        self.client.write(data)
        self.sent += len(data)

    def response_done(self, conn: BackendConnection, keep_alive: bool) -> None:
        """The target's answer is complete."""
        if self.resp_done:
            return
        if self.holding:
            chunk = conn.chunk
            if len(chunk) == len(self.held_head) + 4 + self.held_size:
                self.holding = False  # the whole answer is this read: relayed as received
                self.client.write(chunk)
                self.sent += len(chunk)
            else:
                self.release(conn)
        if self.resp_mode == _CHUNKED:
            self.client.write(b"0\r\n\r\n")
            self.sent += 5
        conn.exchange = None
        self.conn = None
        if keep_alive and self.req_done and not self.close_backend and self.pool is not None:
            self.pool.give_back(conn)
        else:
            conn.close()
        if self.group is not None:
            self.group.metrics.target_response(self.status, self.resp_at - self.sent_at)
        self._finish()

    def backend_lost(self, conn: BackendConnection) -> None:
        """The target connection closed while this exchange was using it."""
        self.conn = None
        if self.resp_done:
            return
        if self.resp_started:
            if self.until_close:
                self.response_done(conn, keep_alive=False)
            else:
                self._abort_client("TargetResponseTruncated")
            return
        if conn.reused and self.replay is not None and not self.retried:
            # The target closed an idle keep-alive connection as we reused it (docs/alb.md §D.6's
            # race); the request was sent whole and nothing came back: try once more.
            self.retried, self.dispatched = True, False
            self.out = [self.replay]
            spawn(self._connect())
            return
        self.error_reason = "TargetConnectionError"
        self._target_failed(502)

    def backend_failed(self, conn: BackendConnection, why: str) -> None:
        """The target answered with something that is not HTTP (or a head over 32 K)."""
        conn.exchange = None
        self.conn = None
        if self.resp_done:
            return
        if self.resp_started:
            self._abort_client("TargetResponseMalformed")
            return
        self.error_reason = "TargetResponseMalformed"
        self._target_failed(502)

    def _target_failed(self, status: int) -> None:
        if self.conn is not None:
            self.conn.exchange = None
            self.conn.abort()
            self.conn = None
        ctx = self.client.ctx
        self.target_status = b"-"
        self.status = status
        if self.group is not None:
            self.group.metrics.elb_response(status)
        self.client.write(responses.error(status, ctx.date(), close=self.close_client,
                                          head_only=self.is_head))  # fmt: skip
        self._finish()

    def _abort_client(self, reason: str) -> None:
        """The answer had begun and cannot be completed: cut the client connection."""
        self.error_reason = reason
        self.close_client = True
        if self.group is not None:
            self.group.metrics.target_response(self.status, _now() - self.sent_at)
        client = self.client
        self._finish()
        client.drop_batch()
        client.closing = True
        if client.transport is not None:
            client.transport.abort()

    # Ending

    def sweep(self, idle_ticks: int) -> None:
        """The idle timeout: no byte from the target (or the client) for that long."""
        ctx = self.client.ctx
        if not self.started or (self.resp_done and ctx.tick - self.client.last_tick < idle_ticks):
            return
        if self.resp_done:
            self.client.close()
        elif ctx.tick - max(self.tick, self.client.last_tick) >= idle_ticks:
            if self.resp_started:
                self._abort_client("TargetTimeout")
            else:
                self.error_reason = "TargetTimeout"
                self._target_failed(504)

    def client_gone(self) -> None:
        """The client closed its connection (ALB logs 460 if we were still waiting)."""
        if self.resp_done:
            return
        if self.conn is not None:
            self.conn.exchange = None
            self.conn.abort()
            self.conn = None
        if self.started:
            self.status = 460
            self._finish(notify=False)
        else:
            self.resp_done = True
            self._release_slot()

    def client_closed_midway(self) -> None:
        """The client closed before sending the whole body: ALB's 400, logged; the target
        connection (if the request reached one) is cut, never reused; nothing is counted
        against the target group."""
        self.req_done = True
        self.close_client = True
        if self.conn is not None:
            self.conn.exchange = None
            self.conn.abort()
            self.conn = None
        if not self.resp_done:
            self.target_status = b"-"
            self.status = 400
            self._finish(notify=False)

    def abort_midway(self, status: int, classification: tuple[str, str]) -> None:
        """The parser refused the request after part of it went to the target."""
        if classification[0] != "-":
            self.classification, self.class_reason = classification
        self.close_client = True
        self.req_done = True
        if self.conn is not None:
            self.conn.exchange = None
            self.conn.abort()  # the target saw a truncated request on a connection never reused
            self.conn = None
        if self.resp_done:
            self.client.close()
        elif self.resp_started:
            self._abort_client("ClientRequestMalformed")
        else:
            self.target_status = b"-"
            self.status = status
            self.client.write(responses.error(status, self.client.ctx.date(), close=True))
            self._finish()

    def abandon(self) -> None:
        """Drop an exchange whose request the parser refused before any byte of it was sent:
        its target connection (if one was attached) goes back to the pool unused."""
        self.resp_done = True
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

    def _finish(self, notify: bool = True) -> None:
        self.resp_done = True
        slot = self.slot
        if slot is not None:
            slot.outstanding -= 1
            self.slot = None
        if self.client.ctx.log.stream is not None:
            self._log(slot.addr if slot is not None and self.dispatched else "-")
        if notify and (self.req_done or self.close_client):
            self.client.exchange_done(self)

    def _log(self, target: str) -> None:
        client = self.client
        ctx = client.ctx
        now = _now()
        if self.dispatched:
            resp_at = self.resp_at or now
            request_time = self.sent_at - self.created
            target_time = resp_at - self.sent_at
            response_time = now - resp_at
        else:
            request_time = target_time = response_time = -1.0
        if self.method == b"-":
            request = b"- - - "
        else:
            if self.host != client.log_host:  # one Host per connection, as a rule
                client.log_host = self.host
                origin = f"http://{host_without_port(self.host) or '-'}:{ctx.port}"
                client.log_origin = origin.encode("latin-1")  # the client's bytes, as sent
            protocol = b"HTTP/1.1" if self.version == "1.1" else f"HTTP/{self.version}".encode()
            request = b"%s %s%s %s" % (self.method, client.log_origin, self.url, protocol)
        # The connection's record, filled anew (allocated once: a new one per line costs more
        # than the line).
        r = client.log_record
        r.elb = ctx.elb
        r.client = client.peer
        r.target = target
        r.request_time = request_time
        r.target_time = target_time
        r.response_time = response_time
        r.elb_status = self.status
        r.target_status = self.target_status
        r.received = self.received
        r.sent = self.sent
        r.request = request
        r.user_agent = self.user_agent
        r.target_group = self.group.arn if self.group else "-"
        r.trace = self.trace
        r.priority = self.priority
        r.created = self.created
        r.sent_at = now
        r.action = self.action_name
        r.redirect_url = self.redirect_url
        r.error_reason = self.error_reason
        r.classification = self.classification
        r.classification_reason = self.class_reason
        r.conn_trace = client.conn_trace
        ctx.log.add(client.log_lines.line(ctx.log.clock, r))
