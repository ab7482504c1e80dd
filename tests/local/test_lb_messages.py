"""The load balancer's own messages go into the stack's log stream (never straight to stderr,
which can block as stdout can), prefixed as the supervisor's lines are."""

from __future__ import annotations

import io
import logging

from microforum.local.processes import LogStream
from microforum.local.stack import _route_messages, _unroute_messages


def test_load_balancer_messages_are_lines_of_the_log_stream() -> None:
    out = io.StringIO()
    log = LogStream(out, colour=False)
    handler = _route_messages(log)
    try:
        try:
            raise ValueError("boom")
        except ValueError as exc:
            logging.getLogger("microforum.lb").error("load balancer bug", exc_info=exc)
    finally:
        _unroute_messages(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "microforum  | load balancer bug"
    assert lines[-1] == "microforum  | ValueError: boom"
    assert all(line.startswith("microforum  | ") for line in lines)
    assert log.counts() == {"written": len(lines), "dropped": 0}
