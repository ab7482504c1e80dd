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
from typing import IO


class Clock:
    """ISO-8601 UTC timestamps with microseconds, the second's prefix cached."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def iso(self, epoch: float) -> str:
        second = int(epoch)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return "%s.%06dZ" % (self._prefix, (epoch - second) * 1000000)  # noqa: UP031 - fastest here


def quoted(text: str) -> str:
    """A quoted log field: `"` and `\\` escaped, "-" for empty."""
    if not text:
        return '"-"'
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def target_group_arn(stack_name: str, target_group: str) -> str:
    """A local stand-in for the target group's ARN (region `local`, account zeros)."""
    return f"arn:aws:elasticloadbalancing:local:000000000000:targetgroup/{target_group}/{stack_name}"


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
    if classification == "Compliant":
        classification = classification_reason = "-"
    return _LINE % (
        clock.iso(sent_at), elb, client, target, *times, elb_status, target_status, received,
        sent, quoted(request), quoted(user_agent), target_group, quoted(trace), priority,
        clock.iso(created), action, quoted(redirect_url), error_reason, target, target_status,
        classification, classification_reason, conn_trace,
    )


# One %-format per line: the cheapest way CPython has to build it.
_LINE = (
    "http %s %s %s %s %.3f %.3f %.3f %s %s %s %s %s %s - - %s %s \"-\" \"-\" %s %s "
    '"%s" %s "%s" "%s" "%s" "%s" "%s" %s\n'
)


class AccessLog:
    """Lines appended to a file; written in batches by `flush` (the shell calls it each second)."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.pending: list[str] = []
        self.clock = Clock()

    def add(self, text: str) -> None:
        if self.stream is not None:
            self.pending.append(text)

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
