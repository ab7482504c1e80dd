"""The latest access-log lines, parsed and filtered for the console (pure, but `tail`).

Lines are ALB's access-log format (`lb/accesslog.py` writes them; fields and their order are
AWS's, https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html).
The console shows when, the trace id, the request, the load balancer's and the target's status
codes, the target, the target group (the last part but one of the target group's ARN) and the
target's processing time. A line that does not parse is left out, never guessed at.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FIELDS = (
    "type", "time", "elb", "client", "target", "request_processing_time",
    "target_processing_time", "response_processing_time", "elb_status_code",
    "target_status_code", "received_bytes", "sent_bytes", "request", "user_agent", "ssl_cipher",
    "ssl_protocol", "target_group_arn", "trace_id", "domain_name", "chosen_cert_arn",
    "matched_rule_priority", "request_creation_time", "actions_executed", "redirect_url",
    "error_reason", "target_port_list", "target_status_code_list", "classification",
    "classification_reason", "conn_trace_id",
)  # fmt: skip
_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"|(\S+)')
# Status filters the page offers: a class of the status sent to the client, or "elb" for
# answers the load balancer made itself (no target status).
STATUS_FILTERS = ("2xx", "3xx", "4xx", "5xx", "elb")
TAIL_BYTES = 256 * 1024


def parse_line(line: bytes) -> dict[str, Any] | None:
    """The console's view of one access-log line; None when it is not one."""
    tokens = [m[1] if m[1] is not None else m[2] for m in _TOKEN.finditer(line)]
    if len(tokens) < len(FIELDS):
        return None
    raw = dict(zip(FIELDS, (t.decode("utf-8", "replace") for t in tokens), strict=False))
    if not raw["elb_status_code"].isdigit():
        return None
    arn = raw["target_group_arn"]
    method, _, rest = raw["request"].partition(" ")
    url = urllib.parse.urlsplit(rest.rpartition(" ")[0] or rest)
    return {
        "time": raw["time"],
        "trace_id": raw["trace_id"],
        "request": raw["request"],
        "short": f"{method} {url.path or '/'}" + (f"?{url.query}" if url.query else ""),
        "status": int(raw["elb_status_code"]),
        "target_status": raw["target_status_code"],
        "target": raw["target"],
        "group": arn.split("/")[-2] if arn.count("/") >= 2 else "",
        "target_time": raw["target_processing_time"],
        "rule": raw["matched_rule_priority"],
        "error": raw["error_reason"],
    }


def matches(entry: dict[str, Any], group: str = "", status: str = "") -> bool:
    """Whether `entry` passes the page's filters (empty: no filter)."""
    if group and entry["group"] != group:
        return False
    if status == "elb":
        return entry["target_status"] == "-"
    return not status or str(entry["status"]).startswith(status[0])


def select(
    lines: Iterable[bytes], group: str = "", status: str = "", limit: int = 50
) -> list[dict[str, Any]]:
    """The newest `limit` parsed lines passing the filters, newest first."""
    out: list[dict[str, Any]] = []
    for line in reversed(list(lines)):
        entry = parse_line(line)
        if entry is not None and matches(entry, group, status):
            out.append(entry)
            if len(out) == limit:
                break
    return out


def tail(path: Path, size: int = TAIL_BYTES) -> Sequence[bytes]:
    """The whole lines among the last `size` bytes of `path` (none when it does not exist)."""
    try:
        with path.open("rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, end - size))
            data = fh.read(size)
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if end > size:
        lines = lines[1:]  # the first is cut
    return [line for line in lines if line]
