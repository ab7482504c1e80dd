"""ALB access-log lines (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/
load-balancer-access-logs.html), formatted cheaply.

Fields, space-separated, in ALB's order: type time elb client:port target:port
request_processing_time target_processing_time response_processing_time elb_status_code
target_status_code received_bytes sent_bytes "request" "user_agent" ssl_cipher ssl_protocol
target_group_arn "trace_id" "domain_name" "chosen_cert_arn" matched_rule_priority
request_creation_time "actions_executed" "redirect_url" "error_reason" "target:port_list"
"target_status_code_list" "classification" "classification_reason" conn_trace_id

Processing times are -1 when the request never reached a target; target fields are `-` then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from microforum.lb import speedups
from microforum.logwriter import LogWriter

# Lines are bytes from end to end: the request, user agent and trace id are the client's bytes,
# unchanged (never decoded), and the file is written as it is built. Text the load balancer
# owns (names, rule priorities, reasons) is UTF-8.


class Clock:
    """The `YYYY-MM-DDTHH:MM:SS` part of ISO-8601 UTC timestamps, cached per second."""

    __slots__ = ("_head", "_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = self._head = b""

    def prefix(self, second: int) -> bytes:
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
            self._head = b"http " + self._prefix + b"."
        return self._prefix

    def head(self, second: int) -> bytes:
        """A line's start: its type and its time up to the fraction of the second."""
        if second != self._second:
            self.prefix(second)
        return self._head


def target_group_arn(stack_name: str, target_group: str) -> str:
    """A local stand-in for the target group's ARN (region `local`, account zeros)."""
    return f"arn:aws:elasticloadbalancing:local:000000000000:targetgroup/{target_group}/{stack_name}"


# Processing times under a second, by whole millisecond, each with the space that follows it:
# most requests take one of these, and a lookup costs a fraction of formatting a float.
_MILLIS: Final = tuple(b"0.%03d " % ms for ms in range(1000))
# Small numbers, looked up rather than formatted: status codes (three digits: llhttp refuses
# others), byte counts of most heads and small bodies.
_DECIMAL: Final = tuple(b"%d" % n for n in range(4096))
STATUS: Final = _DECIMAL[:1000]  # a target's status code as logged (three digits at most)
_DECIMAL_SPACE: Final = tuple(b"%d " % n for n in range(4096))
# Thousandths as three digits: a timestamp's microseconds are two of them.
_DIGITS3: Final = tuple(b"%03d" % n for n in range(1000))


def decimal(n: int) -> bytes:
    """A status code or a byte count as logged: `str(n)`, mostly without formatting."""
    return _DECIMAL[n] if 0 <= n < 4096 else b"%d" % n


def _decimal_space(n: int) -> bytes:
    return _DECIMAL_SPACE[n] if 0 <= n < 4096 else b"%d " % n


def _seconds_space(duration: float) -> bytes:
    """A processing time as ALB logs it, and a space: seconds with millisecond precision;
    -1 when the request never reached a target ("set to -1 if the load balancer can't
    dispatch")."""
    if duration < 0:
        return b"-1 "
    if duration < 1:
        return _MILLIS[int(duration * 1000)]
    return b"%.3f " % duration


class LogRecord:
    """One request's access-log fields, in ALB's order (`line` formats them): the load
    balancer's names, addresses and reasons as text, the client's bytes as bytes, the three
    processing times in seconds (-1 when the request never reached a target), `created` and
    `sent_at` as epoch seconds."""

    __slots__ = (
        "action", "classification", "classification_reason", "client", "conn_trace", "created",
        "elb", "elb_status", "error_reason", "key", "priority", "received", "redirect_url", "request",
        "request_time", "response_time", "sent", "sent_at", "target", "target_group",
        "target_status", "target_time", "trace", "user_agent",
    )  # fmt: skip

    def __init__(  # (positional too: compiled, a call with 23 keywords costs more than the line)
        self,
        elb: str = "-",
        client: str = "-",
        target: str = "-",
        request_time: float = -1.0,
        target_time: float = -1.0,
        response_time: float = -1.0,
        elb_status: int = 0,
        target_status: bytes = b"-",
        received: int = 0,
        sent: int = 0,
        request: bytes = b"- - - ",
        user_agent: bytes = b"",
        target_group: str = "-",
        trace: bytes = b"-",
        priority: str = "-",
        created: float = 0.0,
        sent_at: float = 0.0,
        action: str = "-",
        redirect_url: str = "-",
        error_reason: str = "-",
        classification: str = "-",
        classification_reason: str = "-",
        conn_trace: str = "-",
        key: object = None,
    ) -> None:
        self.elb = elb
        self.client = client
        self.target = target
        self.request_time = request_time
        self.target_time = target_time
        self.response_time = response_time
        self.elb_status = elb_status
        self.target_status = target_status
        self.received = received
        self.sent = sent
        self.request = request
        self.user_agent = user_agent
        self.target_group = target_group
        self.trace = trace
        self.priority = priority
        self.created = created
        self.sent_at = sent_at
        self.action = action
        self.redirect_url = redirect_url
        self.error_reason = error_reason
        self.classification = classification
        self.classification_reason = classification_reason
        self.conn_trace = conn_trace
        self.key = key  # stands for the `KEYED` fields' values (see LineCache); None: nothing


def line(clock: Clock, r: LogRecord) -> bytes:
    """One access-log line (with its newline). Only client-supplied text is escaped."""
    return _compose(
        clock, _source(r.elb, r.client, r.target), r.request_time, r.target_time, r.response_time,
        _statuses(r.elb_status, r.target_status), r.received, r.sent, r.request,
        _agent(r.user_agent, r.target_group), r.trace,
        _rule(r.priority) + clock.prefix(int(r.created)) + b".", r.created, r.sent_at,
        _tail(r.action, r.redirect_url, r.error_reason, r.target, r.target_status,
              r.classification, r.classification_reason, r.conn_trace),
    )  # fmt: skip


# The fields a request brings with it, keyed by `LogRecord.key` (see LineCache).
KEYED: Final = ("elb", "client", "request", "user_agent", "priority", "action", "redirect_url",
                "classification", "classification_reason", "conn_trace")  # fmt: skip


class LineCache:
    """`line` for the requests of one client connection: the runs of fields between the
    per-request ones (source and target, statuses, user agent and target group, rule and the
    creation second, and the tail) are rendered once and reused while the fields they come
    from stay the same, as they mostly do.

    Which stay the same is said by `r.key` for the fields a request brings with it (`KEYED`):
    a record whose key is the last one's object (not None) has the same values in them (the
    load balancer keys them with the request's decision: the same decision, the same fields).
    The other fields the runs hold are compared, and the creation second."""

    __slots__ = ("_agent", "_created", "_error", "_group", "_key", "_rule", "_source", "_status",
                 "_statuses", "_tail", "_target", "_target_status")  # fmt: skip

    def __init__(self) -> None:
        self._key: object = None
        self._target = self._group = self._error = ""
        self._status = -1
        self._target_status = b""
        self._created = -1
        self._source = self._statuses = self._agent = self._rule = self._tail = b""

    def line(self, clock: Clock, r: LogRecord) -> bytes:
        """The same bytes as `line(clock, r)`."""
        key = r.key
        if (key is not self._key or key is None or r.target != self._target
                or r.elb_status != self._status or r.target_status != self._target_status
                or r.target_group != self._group or r.error_reason != self._error):  # fmt: skip
            self._render(r)
        created_second = int(r.created)
        if created_second != self._created:
            self._created = created_second
            self._rule = _rule(r.priority) + clock.prefix(created_second) + b"."
        return _compose(clock, self._source, r.request_time, r.target_time, r.response_time,
                        self._statuses, r.received, r.sent, r.request, self._agent, r.trace,
                        self._rule, r.created, r.sent_at, self._tail)  # fmt: skip

    def _render(self, r: LogRecord) -> None:
        """Render the runs from `r` and remember what they were rendered from."""
        self._key, self._target, self._group, self._error = r.key, r.target, r.target_group, r.error_reason
        self._status, self._target_status = r.elb_status, r.target_status
        self._created = -1  # (the rule holds the priority: rendered anew too)
        self._source = _source(r.elb, r.client, r.target)
        self._statuses = _statuses(r.elb_status, r.target_status)
        self._agent = _agent(r.user_agent, r.target_group)
        self._tail = _tail(r.action, r.redirect_url, r.error_reason, r.target, r.target_status,
                           r.classification, r.classification_reason, r.conn_trace)  # fmt: skip


# The runs of fields between the per-request ones, each with its separators.


def _source(elb: str, client: str, target: str) -> bytes:
    return f"Z {elb} {client} {target} ".encode()


def _statuses(elb_status: int, target_status: bytes) -> bytes:
    return b"%s %s " % (decimal(elb_status), target_status)


def _agent(user_agent: bytes, target_group: str) -> bytes:
    return b'" "%s" - - %s "' % (_escaped(user_agent), target_group.encode())


def _rule(priority: str) -> bytes:
    return f'" "-" "-" {priority} '.encode()


# ALB's documented error_reason codes (load-balancer-access-logs, "Error reason codes"; see
# docs/operations.md). The load balancer's own reasons for an answer (a target timing out...)
# are not among them: ALB says those with the status codes, and so does this log ("-").
ERROR_REASONS: Final = frozenset((
    "AuthInvalidCookie", "AuthInvalidGrantError", "AuthInvalidIdToken", "AuthInvalidStateParam",
    "AuthInvalidTokenResponse", "AuthInvalidUserinfoResponse", "AuthMissingCodeParam",
    "AuthMissingHostHeader", "AuthMissingStateParam", "AuthTokenEpRequestFailed",
    "AuthTokenEpRequestTimeout", "AuthUnhandledException", "AuthUserinfoEpRequestFailed",
    "AuthUserinfoEpRequestTimeout", "AuthUserinfoResponseSizeExceeded",
    "AWSALBTGCookieInvalid", "WeightedTargetGroupsUnhandledException",
    "LambdaAccessDenied", "LambdaBadRequest", "LambdaConnectionTimeout",
    "LambdaEC2AccessDeniedException", "LambdaEC2ThrottledException",
    "LambdaEC2UnexpectedException", "LambdaENILimitReachedException", "LambdaInvalidResponse",
    "LambdaInvalidRuntimeException", "LambdaInvalidSecurityGroupIDException",
    "LambdaInvalidSubnetIDException", "LambdaInvalidZipFileException",
    "LambdaKMSAccessDeniedException", "LambdaKMSDisabledException",
    "LambdaKMSInvalidStateException", "LambdaKMSNotFoundException", "LambdaRequestTooLarge",
    "LambdaResourceNotFound", "LambdaResponseTooLarge", "LambdaServiceException",
    "LambdaSubnetIPAddressLimitReachedException", "LambdaThrottling", "LambdaUnhandled",
    "LambdaUnhandledException",
    "WAFConnectionError", "WAFConnectionTimeout", "WAFResponseReadTimeout", "WAFServiceError",
    "WAFUnhandledException",
))  # fmt: skip


def logged_error_reason(reason: str) -> str:
    """The `error_reason` field for `reason`: itself if ALB documents it, else "-"."""
    return reason if reason in ERROR_REASONS else "-"


def _tail(action: str, redirect_url: str, error_reason: str, target: str, target_status: bytes,
          classification: str, classification_reason: str, conn_trace: str) -> bytes:  # fmt: skip
    if classification == "Compliant":
        classification = classification_reason = "-"
    error_reason = logged_error_reason(error_reason)
    redirect = _escaped(redirect_url.encode()) if redirect_url != "-" else b"-"
    return b'Z "%s" "%s" "%s" "%s" "%s" "%s" "%s" %s\n' % (
        action.encode(),
        redirect,
        error_reason.encode(),
        target.encode(),
        target_status,
        classification.encode(),
        classification_reason.encode(),
        conn_trace.encode(),
    )


def _compose(clock: Clock, source: bytes, request_time: float, target_time: float,
             response_time: float, statuses: bytes, received: int, sent: int, request: bytes,
             agent: bytes, trace: bytes, rule: bytes, created: float, sent_at: float,
             tail: bytes) -> bytes:  # fmt: skip
    second = int(sent_at)
    # Microseconds as two runs of three digits, looked up.
    at_us = int((sent_at - second) * 1000000)
    created_us = int((created - int(created)) * 1000000)
    # One bytes template of plain %s pieces: compiled (native.py), a single join.
    return b'%s%s%s%s%s%s%s%s%s%s "%s%s%s%s%s%s%s' % (
        clock.head(second),
        _DIGITS3[at_us // 1000],
        _DIGITS3[at_us % 1000],
        source,
        _seconds_space(request_time),
        _seconds_space(target_time),
        _seconds_space(response_time),
        statuses,
        _decimal_space(received),
        decimal(sent),
        _escaped(request),
        agent,
        _escaped(trace),
        rule,
        _DIGITS3[created_us // 1000],
        _DIGITS3[created_us % 1000],
        tail,
    )


compose_py: Final = _compose  # the reference of the C helper (tests/lb/test_speedups.py)


# Bytes written as they are inside a quoted field: printable ASCII but the quote and the
# backslash. Translated through `_PLAIN_OR_NUL`, every other byte becomes NUL: for the usual
# all-plain field, one table pass and one memchr say so (a third of the cost of deleting them).
_PLAIN: Final = bytes(b for b in range(0x20, 0x7F) if b not in b'"\\')
_PLAIN_OR_NUL: Final = bytes(b if b in _PLAIN else 0 for b in range(256))
# What each byte is written as: itself, or `\xhh` (two lower-case hex digits).
_WRITTEN: Final = tuple(bytes((b,)) if b in _PLAIN else b"\\x%02x" % b for b in range(256))


def escaped_py(text: bytes) -> bytes:
    """`text` for inside a quoted field; "-" for empty.

    As ALB writes it (docs/operations.md, "The access log"): printable ASCII as it is; every
    other byte (a control, DEL, any byte of a non-ASCII character, UTF-8 or not) and the quote
    and the backslash as `\\xhh`, so a line is one line of ASCII and no client forges a field."""
    if not text:
        return b"-"
    if 0 not in text.translate(_PLAIN_OR_NUL):
        return text
    written = _WRITTEN
    return b"".join([written[byte] for byte in text])


# `escaped_py`, in C when built (lb/_speedups.c: one pass over the bytes).
escaped: Final[Callable[[bytes], bytes]] = speedups.helper("escaped") or escaped_py
_escaped: Final = escaped
# Interpreted, `_compose` is `compose_py` in C when built (lb/_speedups.c: the line in one
# buffer, where the interpreter pays per field). Compiled it stays the Python function: mypyc
# calls it natively with unboxed numbers, which costs less than a call into the C helper.
if __file__.endswith(".py") and speedups.helper("compose") is not None:
    globals()["_compose"] = speedups.helper("compose")


# Lines handed to the writer per batch at most: fewer, larger hand-overs cost less, and a quiet
# load balancer's lines still go out each second (`flush`).
BATCH_LINES: Final = 256


class AccessLog:
    """Lines for the access-log file, handed in batches of `BATCH_LINES` (and by `flush`, which
    the shell calls each second) to a `LogWriter`: the event loop never waits for the disk, and
    a batch the disk cannot take in time is dropped and counted (`counts`)."""

    def __init__(self, stream: LogWriter | None) -> None:
        self.stream = stream  # where lines go; None: not logging
        self.pending: list[bytes] = []
        self.clock = Clock()

    def add(self, text: bytes) -> None:
        if self.stream is not None:
            pending = self.pending
            pending.append(text)
            if len(pending) >= BATCH_LINES:
                self.flush()

    def flush(self) -> None:
        if self.stream is not None and self.pending:
            self.stream.write(b"".join(self.pending), len(self.pending))
            self.pending.clear()

    def counts(self) -> dict[str, int]:
        """Lines written to the file and lines dropped (for `microforum status`)."""
        if self.stream is None:
            return {"written": 0, "dropped": 0}
        return self.stream.counts()

    def close(self) -> None:
        self.flush()
        if self.stream is not None:
            self.stream.close()
            self.stream = None
