"""The life cycle of one exchange (exchange.py) as two small state machines: pure, tables only.

Theory of operation
-------------------
An exchange is a request read from a client and the answer it gets. Its request side and its
response side move on independently (a target may answer before the body is read whole), so
each has its own phase. The exchange calls `request_step` / `response_step` with the event
that happened and keeps the phase returned; an event a phase has no row for is a bug of ours
and raises `IllegalTransition` (while a client's bytes are read, the proxy answers a bug 500
and closes; in a target's or the clock's event, asyncio logs it).

Request side (what the client sent):

    phase  event     next   when
    -----  --------  -----  ------------------------------------------------------------
    HEAD   body      BODY   a piece of the body was read (a chunked one framed cleanly)
    HEAD   complete  READ   the request ended with its head (no body, or refused)
    BODY   body      BODY   more of the body
    BODY   complete  READ   the body's end was read, or the client cut it (400) or the
                            reader refused the rest
    READ   -         -      (nothing more is read for this request)

Response side (what the client gets):

    phase       event    next        when
    ----------  -------  ----------  -------------------------------------------------------
    WAITING     start    CONNECTING  first in its connection's queue, forwarded: a target
                                     connection is taken from the pool or opened
    WAITING     answer   DONE        the load balancer answers itself (fixed response,
                                     redirect, 4xx/5xx of its own), logged
    WAITING     drop     DONE        the client left, or the reader refused the request,
                                     before it started: nothing logged
    CONNECTING  send     SENT        the first bytes went to the target
    CONNECTING  answer   DONE        no connection to the target (502, 504)
    CONNECTING  drop     DONE        refused before any byte was sent: the connection goes
                                     back to the pool unused
    CONNECTING  gone     DONE        the client left while we connected (460)
    SENT        send     SENT        more of the request went to the target
    SENT        retry    CONNECTING  a reused keep-alive connection closed under the request:
                                     sent once more on a new one (docs/alb.md §D.6)
    SENT        whole    DONE        the target's whole answer arrived in one read and needs
                                     no rewriting: relayed as received
    SENT        hold     HELD        the target's head arrived, needs no rewriting: held in
                                     case the whole answer is in this read
    SENT        head     RELAYING    the target's head arrived and was relayed (rewritten)
    SENT        answer   DONE        the target failed before answering (502, 504), or the
                                     request was refused midway (400)
    SENT        gone     DONE        the client left (460)
    HELD        release  RELAYING    the read ended before the answer: the head is relayed
    HELD        done     DONE        the answer was whole in the read: relayed as received
    HELD        cut      DONE        the answer cannot be completed: the client is cut
    HELD        send     HELD        (the request's body still flows to the target)
    RELAYING    done     DONE        the answer's end was relayed
    RELAYING    cut      DONE        truncated, malformed or timed out midway: client cut
    RELAYING    gone     DONE        the client left (460)
    RELAYING    send     RELAYING    (the request's body still flows to the target)
    DONE        -        -           counted, logged, the slot given back

`SENT gone` and `RELAYING gone` log 460 as ALB does; `HELD gone` cannot happen (a held answer
is released or relayed before the read that holds it ends). The phases are Final ints: compiled
(native.py), each comparison is a C constant.
"""

from __future__ import annotations

import functools
from typing import Final, NoReturn

from microforum.lb import speedups

# Request side
HEAD: Final = 0
BODY: Final = 1
READ: Final = 2
REQUEST_PHASES: Final = ("HEAD", "BODY", "READ")
# Response side
WAITING: Final = 0
CONNECTING: Final = 1
SENT: Final = 2
HELD: Final = 3
RELAYING: Final = 4
DONE: Final = 5
RESPONSE_PHASES: Final = ("WAITING", "CONNECTING", "SENT", "HELD", "RELAYING", "DONE")

# Events
E_BODY: Final = 0
E_COMPLETE: Final = 1
E_START: Final = 2
E_ANSWER: Final = 3
E_DROP: Final = 4
E_SEND: Final = 5
E_RETRY: Final = 6
E_HOLD: Final = 7
E_HEAD: Final = 8
E_RELEASE: Final = 9
E_DONE: Final = 10
E_CUT: Final = 11
E_GONE: Final = 12
E_WHOLE: Final = 13
EVENTS: Final = ("body", "complete", "start", "answer", "drop", "send", "retry", "hold", "head",
                 "release", "done", "cut", "gone", "whole")  # fmt: skip

# The tables of the module docstring, row by row.
REQUEST_TRANSITIONS: Final[dict[tuple[int, int], int]] = {
    (HEAD, E_BODY): BODY,
    (HEAD, E_COMPLETE): READ,
    (BODY, E_BODY): BODY,
    (BODY, E_COMPLETE): READ,
}
RESPONSE_TRANSITIONS: Final[dict[tuple[int, int], int]] = {
    (WAITING, E_START): CONNECTING,
    (WAITING, E_ANSWER): DONE,
    (WAITING, E_DROP): DONE,
    (CONNECTING, E_SEND): SENT,
    (CONNECTING, E_ANSWER): DONE,
    (CONNECTING, E_DROP): DONE,
    (CONNECTING, E_GONE): DONE,
    (SENT, E_SEND): SENT,
    (SENT, E_RETRY): CONNECTING,
    (SENT, E_WHOLE): DONE,
    (SENT, E_HOLD): HELD,
    (SENT, E_HEAD): RELAYING,
    (SENT, E_ANSWER): DONE,
    (SENT, E_GONE): DONE,
    (HELD, E_RELEASE): RELAYING,
    (HELD, E_DONE): DONE,
    (HELD, E_CUT): DONE,
    (HELD, E_SEND): HELD,
    (RELAYING, E_DONE): DONE,
    (RELAYING, E_CUT): DONE,
    (RELAYING, E_GONE): DONE,
    (RELAYING, E_SEND): RELAYING,
}


class IllegalTransition(Exception):
    """An event in a phase that has no row for it: a bug in the exchange, never a client's."""


def _flat(table: dict[tuple[int, int], int], phases: int) -> list[int]:
    """The table as a list indexed by phase * len(EVENTS) + event (-1: no row)."""
    flat = [-1] * (phases * len(EVENTS))
    for (phase, event), after in table.items():
        flat[phase * len(EVENTS) + event] = after
    return flat


_REQUEST: Final = _flat(REQUEST_TRANSITIONS, len(REQUEST_PHASES))
_RESPONSE: Final = _flat(RESPONSE_TRANSITIONS, len(RESPONSE_PHASES))
_N: Final = 14  # len(EVENTS), as a constant
if len(EVENTS) != _N:
    raise RuntimeError("lifecycle._N must be len(EVENTS)")


def request_step(phase: int, event: int) -> int:
    """The request side's next phase (raises IllegalTransition when the table has no row)."""
    after = _REQUEST[phase * _N + event]
    if after == -1:
        _illegal_request(phase, event)
    return after


def response_step(phase: int, event: int) -> int:
    """The response side's next phase (raises IllegalTransition when the table has no row)."""
    after = _RESPONSE[phase * _N + event]
    if after == -1:
        _illegal_response(phase, event)
    return after


def _illegal_request(phase: int, event: int) -> NoReturn:
    raise IllegalTransition(f"request {REQUEST_PHASES[phase]}: no transition on {EVENTS[event]}")


def _illegal_response(phase: int, event: int) -> NoReturn:
    raise IllegalTransition(f"response {RESPONSE_PHASES[phase]}: no transition on {EVENTS[event]}")


# The references of the C helper `step` (tests/lb/test_speedups.py).
request_step_py: Final = request_step
response_step_py: Final = response_step
# Interpreted, the two steps are the C helper `step` bound to the same flat tables when it is
# built (lb/_speedups.c): a call into C costs the interpreter a fraction of a Python call, and
# an exchange steps five times per request. Compiled, they stay these native functions.
if __file__.endswith(".py") and speedups.helper("step") is not None:
    globals()["request_step"] = functools.partial(speedups.helper("step"), _REQUEST, _N, _illegal_request)
    globals()["response_step"] = functools.partial(speedups.helper("step"), _RESPONSE, _N, _illegal_response)
