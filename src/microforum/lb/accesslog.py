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
from typing import IO, Final


class Clock:
    """The `YYYY-MM-DDTHH:MM:SS` part of ISO-8601 UTC timestamps, cached per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def prefix(self, second: int) -> str:
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix

    def iso(self, epoch: float) -> str:
        """`epoch` as ALB writes it: UTC, microseconds, `Z`."""
        second = int(epoch)
        return "%s.%06dZ" % (self.prefix(second), (epoch - second) * 1000000)  # noqa: UP031


def target_group_arn(stack_name: str, target_group: str) -> str:
    """A local stand-in for the target group's ARN (region `local`, account zeros)."""
    return f"arn:aws:elasticloadbalancing:local:000000000000:targetgroup/{target_group}/{stack_name}"


# Processing times under a second, by whole millisecond: most requests take one of these, and
# a lookup costs a fraction of formatting a float.
_MILLIS: Final = tuple("0.%03d" % ms for ms in range(1000))  # noqa: UP031


# Small numbers as text, looked up rather than formatted: status codes (three digits: llhttp
# refuses others), byte counts of most heads and small bodies.
_DECIMAL: Final = tuple(str(n) for n in range(4096))
# Thousandths as three digits: a timestamp's microseconds are two of them.
_DIGITS3: Final = tuple(f"{n:03d}" for n in range(1000))


def decimal(n: int) -> str:
    """A status code or a byte count as logged: `str(n)`, mostly without formatting."""
    return _DECIMAL[n] if 0 <= n < 4096 else str(n)


def seconds(duration: float) -> str:
    """A processing time as ALB logs it: seconds with millisecond precision; -1 when the
    request never reached a target ("set to -1 if the load balancer can't dispatch")."""
    if duration < 0:
        return "-1"
    if duration < 1:
        return _MILLIS[int(duration * 1000)]
    return "%.3f" % duration  # noqa: UP031


def line(  # one argument per log field, in ALB's order
    clock: Clock,
    elb: str,
    client: str,
    target: str,
    times: tuple[float, float, float],
    elb_status: int,
    target_status: str,
    received: int,
    sent: int,
    request: str,
    user_agent: str,
    target_group: str,
    trace: str,
    priority: str,
    created: float,
    sent_at: float,
    action: str,
    redirect_url: str,
    error_reason: str,
    classification: str,
    classification_reason: str,
    conn_trace: str,
) -> str:
    """One access-log line (with its newline). Only client-supplied text is escaped."""
    return _compose(
        clock, _source(elb, client, target), times, _statuses(elb_status, target_status), received,
        sent, request, _agent(user_agent, target_group), trace, _rule(priority), created, sent_at,
        _tail(action, redirect_url, error_reason, target, target_status, classification,
              classification_reason, conn_trace),
    )  # fmt: skip


class LineCache:
    """`line` for the requests of one client connection: the runs of fields between the
    per-request ones (source and target, statuses, user agent and target group, rule, and the
    tail) are rendered once and reused while their fields stay the same, as they mostly do."""

    __slots__ = (
        "_agent", "_agent_in", "_group_in", "_priority_in", "_rule", "_source", "_source_in",
        "_status_in", "_statuses", "_tail", "_tail_in", "_target_status_in",
    )  # fmt: skip

    def __init__(self) -> None:
        self._source_in: tuple[str, str, str] = ("", "", "")
        self._source = ""
        self._status_in = -1
        self._target_status_in = ""
        self._statuses = ""
        self._agent_in = self._group_in = ""
        self._agent = ""
        self._priority_in = ""
        self._rule = ""
        self._tail_in: tuple[str, str, str, str, str, str, str, str] = ("",) * 8
        self._tail = ""

    def line(self, clock: Clock, elb: str, client: str, target: str,
             times: tuple[float, float, float], elb_status: int, target_status: str,
             received: int, sent: int, request: str, user_agent: str, target_group: str,
             trace: str, priority: str, created: float, sent_at: float, action: str,
             redirect_url: str, error_reason: str, classification: str,
             classification_reason: str, conn_trace: str) -> str:  # fmt: skip
        """The same text as `line` with the same arguments."""
        source_in = self._source_in
        if target != source_in[2] or client != source_in[1] or elb != source_in[0]:
            self._source_in = (elb, client, target)
            self._source = _source(elb, client, target)
        if elb_status != self._status_in or target_status != self._target_status_in:
            self._status_in, self._target_status_in = elb_status, target_status
            self._statuses = _statuses(elb_status, target_status)
        if user_agent != self._agent_in or target_group != self._group_in:
            self._agent_in, self._group_in = user_agent, target_group
            self._agent = _agent(user_agent, target_group)
        if priority != self._priority_in:
            self._priority_in = priority
            self._rule = _rule(priority)
        tail_in = (action, redirect_url, error_reason, target, target_status, classification,
                   classification_reason, conn_trace)  # fmt: skip
        if tail_in != self._tail_in:
            self._tail_in = tail_in
            self._tail = _tail(*tail_in)
        return _compose(clock, self._source, times, self._statuses, received, sent, request,
                        self._agent, trace, self._rule, created, sent_at, self._tail)  # fmt: skip


# The runs of fields between the per-request ones, each with its separators.


def _source(elb: str, client: str, target: str) -> str:
    return f"{elb} {client} {target} "


def _statuses(elb_status: int, target_status: str) -> str:
    return f"{decimal(elb_status)} {target_status} "


def _agent(user_agent: str, target_group: str) -> str:
    return f'{_escaped(user_agent) if user_agent else "-"}" - - {target_group} "'


def _rule(priority: str) -> str:
    return f'" "-" "-" {priority} '


def _tail(action: str, redirect_url: str, error_reason: str, target: str, target_status: str,
          classification: str, classification_reason: str, conn_trace: str) -> str:  # fmt: skip
    if classification == "Compliant":
        classification = classification_reason = "-"
    redirect = _escaped(redirect_url) if redirect_url != "-" else "-"
    return (
        f' "{action}" "{redirect}" "{error_reason}" "{target}" "{target_status}" '
        f'"{classification}" "{classification_reason}" {conn_trace}\n'
    )


def _compose(clock: Clock, source: str, times: tuple[float, float, float], statuses: str,
             received: int, sent: int, request: str, agent: str, trace: str, rule: str,
             created: float, sent_at: float, tail: str) -> str:  # fmt: skip
    second, created_second = int(sent_at), int(created)
    t0, t1, t2 = times
    # Microseconds as two runs of three digits, looked up.
    at_us = int((sent_at - second) * 1000000)
    created_us = int((created - created_second) * 1000000)
    # One f-string of plain pieces: compiled (native.py) it is a single join, no format parsing.
    return (
        f"http {clock.prefix(second)}.{_DIGITS3[at_us // 1000]}{_DIGITS3[at_us % 1000]}Z "
        f"{source}{seconds(t0)} {seconds(t1)} {seconds(t2)} {statuses}{decimal(received)} "
        f'{decimal(sent)} "{_escaped(request)}" "{agent}{_escaped(trace)}{rule}'
        f"{clock.prefix(created_second)}.{_DIGITS3[created_us // 1000]}"
        f"{_DIGITS3[created_us % 1000]}Z{tail}"
    )


def _escaped(text: str) -> str:
    """`text` for inside a quoted field; "-" for empty."""
    if '"' in text or "\\" in text:
        return text.replace("\\", "\\\\").replace('"', '\\"')
    return text or "-"


# Lines written per batch at most: a second's worth under load (megabytes) written at once would
# stall the event loop for milliseconds, and show in the tail latency.
BATCH_LINES: Final = 256


class AccessLog:
    """Lines appended to a file; written in batches of `BATCH_LINES`, and by `flush` (the shell
    calls it each second, so a quiet load balancer's lines are out within a second)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.pending: list[str] = []
        self.clock = Clock()

    def add(self, text: str) -> None:
        if self.stream is not None:
            pending = self.pending
            pending.append(text)
            if len(pending) >= BATCH_LINES:
                self.flush()

    def flush(self) -> None:
        if self.stream is not None and self.pending:
            self.stream.write("".join(self.pending))
            self.stream.flush()
            self.pending.clear()

    def close(self) -> None:
        self.flush()
        if self.stream is not None:
            self.stream.close()
            self.stream = None
