"""The access log's way to stdout: lines gathered and written in batches, not one write per request.

Writing each request's line with its own write(2) costs the service a system call per request and
wakes whoever reads the pipe (`microforum up`'s supervisor) once per request. Lines are
gathered instead and written together, at the latest `FLUSH_DELAY` seconds after the first of
them (a timer on the running event loop), so a burst of requests costs a few writes.

Each write holds whole lines and at most `PIPE_BUF` bytes (unless one line alone is longer):
POSIX makes such writes to a pipe atomic, so lines from several workers sharing stdout never
interleave. What is pending is written at shutdown (`flush`, called by the app's shutdown hooks,
and at interpreter exit), so the last requests' lines are not lost on SIGTERM.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import select

FLUSH_DELAY = 0.05  # seconds a line may wait for company; unnoticeable in a terminal
# Tests set a long delay to show that shutdown, not the timer, writes the last lines.
_DELAY_ENV = "MICROFORUM_ACCESS_LOG_DELAY"
PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # 4096 on Linux; POSIX guarantees at least 512


class AccessLog:
    """Gathers log lines and writes them to `fd` in whole-line batches of at most `PIPE_BUF`."""

    def __init__(self, fd: int = 1, delay: float = FLUSH_DELAY) -> None:
        self._fd, self._delay = fd, delay
        self._pending: list[bytes] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<AccessLog fd={self._fd} pending={len(self._pending)} lines, {self._size} bytes>"

    def write(self, line: str) -> None:
        """Queue one newline-terminated line; written within `delay` (at once without a loop)."""
        data = line.encode()
        if self._size + len(data) > PIPE_BUF:
            self.flush()
        self._pending.append(data)
        self._size += len(data)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on an event loop: nothing would flush later
                self.flush()
                return
            self._timer = loop.call_later(self._delay, self.flush)

    def flush(self) -> None:
        """Write what is pending now, in one write(2)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        with contextlib.suppress(OSError):  # a closed stdout must not fail the service
            while data:
                data = data[os.write(self._fd, data) :]


def _delay_from_env() -> float:
    with contextlib.suppress(KeyError, ValueError):
        return max(0.0, float(os.environ[_DELAY_ENV]))
    return FLUSH_DELAY


ACCESS_LOG = AccessLog(delay=_delay_from_env())
atexit.register(ACCESS_LOG.flush)
