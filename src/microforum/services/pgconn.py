"""PostgreSQL connections that survive the server: restarts, failovers, outages (docs/store.md).

A service keeps one connection per database thread and reuses it. When the server restarts
(an RDS reboot, patch or Multi-AZ failover) every such connection is dead, though nothing on
our side knows until it is used. Three things keep that from hanging or failing requests:

- `stale(conn)`: before each use, a zero-timeout poll of the connection's socket. An idle
  connection in autocommit mode is never sent anything unasked, except the server's goodbye
  (FATAL 57P01 on shutdown) and the end of the stream: readable means dead, so it is replaced
  before the request touches it.
- `run_transaction`: BEGIN, the work, COMMIT by hand, so that a connection lost before COMMIT
  is known to have written nothing (the server rolls back) and may be retried, while one lost
  during COMMIT is reported as an unknown outcome, never retried.
- `Breaker`: after a connect fails, requests fail at once for `RECONNECT_PAUSE` seconds
  instead of each waiting up to the connect timeout in the few database threads, so that
  every request is answered within a bound while the server is down.

Connections are opened with TCP keepalives and a TCP user timeout (libpq's parameters; the
URL's own values win), so that even a server that vanished without closing anything (a
failover to another host) is noticed within about ten seconds, not the kernel's fifteen minutes.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

PG_CONNECT_TIMEOUT: Final = 5  # seconds (libpq's connect_timeout, per host)
# https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
PG_TCP_OPTIONS: Final = {
    "keepalives": "1",
    "keepalives_idle": "5",  # seconds of silence before the first probe
    "keepalives_interval": "2",
    "keepalives_count": "3",  # dead after 5 + 3 * 2 = 11 s without an answer
    "tcp_user_timeout": "10000",  # ms data sent may stay unacknowledged
}
RECONNECT_PAUSE: Final = 0.5  # seconds after a failed connect during which requests fail at once


def connect_options(given: dict[str, Any]) -> dict[str, Any]:
    """libpq parameters to add to a URL whose own parameters are `given`: ours, unless set."""
    ours: dict[str, Any] = {"connect_timeout": str(PG_CONNECT_TIMEOUT), **PG_TCP_OPTIONS}
    return {key: value for key, value in ours.items() if key not in given}


def stale(conn: Any) -> bool:
    """True when a pooled, idle connection must not be used: closed, broken, or something is
    waiting to be read on it (the server's goodbye, or the end of the stream)."""
    if conn.closed or conn.broken:
        return True
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class CommitLost(Exception):
    """The connection was lost while COMMIT was on its way: the write may have been applied."""


def run_transaction(conn: Any, work: Callable[[], T], lost: type[Exception], begin: str = "BEGIN") -> T:
    """`work()` in one transaction on an autocommit `conn`, opened by `begin` (BEGIN, maybe
    followed by statements without parameters: one round trip; empty: `work` sends its own
    BEGIN first); CommitLost when the connection (`lost`: psycopg's OperationalError) fails
    during COMMIT."""
    if begin:
        conn.execute(begin)
    try:
        result = work()
    except BaseException:
        if not conn.broken:
            with contextlib.suppress(lost):  # the work's own error is the one to report
                conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except lost as exc:
        if conn.broken:
            raise CommitLost(str(exc).strip()) from exc
        raise
    return result


class Breaker:
    """Whether to try connecting now, after the last connect failed at `failed_at` (pure)."""

    def __init__(self, pause: float = RECONNECT_PAUSE) -> None:
        self.pause = pause
        self.failed_at: float | None = None
        self.cause = ""

    def __repr__(self) -> str:
        return f"<Breaker failed_at={self.failed_at} cause={self.cause!r}>"

    def refuses(self, now: float) -> str | None:
        """The last failure's cause while within `pause` of it, else None (try to connect)."""
        if self.failed_at is not None and now - self.failed_at < self.pause:
            return self.cause
        return None

    def failed(self, now: float, cause: str) -> None:
        self.failed_at, self.cause = now, cause

    def succeeded(self) -> None:
        self.failed_at, self.cause = None, ""
