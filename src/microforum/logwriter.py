"""Log output that never blocks the event loop: lines are handed to a writer thread, or dropped.

The event loop (the load balancer, the supervisor, the control API) must never wait for a
terminal, a pipe or a disk. `LogWriter.write` only appends to a bounded backlog and returns;
one thread per output does the blocking writes. When the output does not keep up (a pipe
nobody reads, `microforum up | less` paused, a terminal stopped with Ctrl-S, a full disk), the
backlog reaches its limit and further lines are dropped and counted, never waited for. Once the
output moves again the backlog is written, then (when the writer has a `notice`) one line
saying how many lines were lost.

Woken by a first block, the thread lingers up to `LINGER` (or until a quarter of the backlog's
room is used, or a `flush` asks) so that the blocks of the next few milliseconds go out in the
same write: under load it then wakes some fifty times a second rather than once per block, and
each wake costs the event loop a hand-over of the interpreter lock (docs/operations.md).

`Backlog` is the pure part (what is kept, what is dropped, the counts); `LogWriter` the thread.
See docs/operations.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Final

BACKLOG_LIMIT: Final = 256 << 10  # bytes waiting to be written at most, per output (~1000 lines)
CLOSE_TIMEOUT: Final = 1.0  # seconds `close` waits for the backlog before abandoning it
LINGER: Final = 0.02  # seconds a woken writer waits for more blocks to write with the first

# What the writer thread is doing; `write` wakes it only when IDLE (or LINGERING past the mark).
IDLE: Final = "idle"  # waiting for a first block
LINGERING: Final = "lingering"  # has blocks, gathering more for up to `linger` seconds
BUSY: Final = "busy"  # writing a block taken from the backlog

Sink = Callable[[bytes], None]


class Backlog:
    """Blocks of whole lines waiting to be written, at most `limit` bytes; no I/O, no lock."""

    def __init__(self, limit: int = BACKLOG_LIMIT) -> None:
        self.limit = limit
        self.blocks: list[bytes] = []
        self.size = 0
        self.lines = 0  # lines in `blocks`
        self.written = 0  # lines written
        self.dropped = 0  # lines dropped: no room, or the output failed
        self.noticed = 0  # dropped lines already reported by a notice

    def __repr__(self) -> str:
        return (f"<Backlog {self.size}/{self.limit} bytes written={self.written} "
                f"dropped={self.dropped}>")  # fmt: skip

    def offer(self, block: bytes, lines: int) -> bool:
        """Keep `block` (`lines` lines) if there is room; count it dropped otherwise."""
        if self.size + len(block) > self.limit:
            self.dropped += lines
            return False
        self.blocks.append(block)
        self.size += len(block)
        self.lines += lines
        return True

    def take(self) -> tuple[bytes, int]:
        """Everything waiting, as one block (b"" when nothing is), and its number of lines."""
        data, lines = b"".join(self.blocks), self.lines
        self.blocks.clear()
        self.size = self.lines = 0
        return data, lines

    def unreported(self) -> int:
        """Dropped lines no notice has reported yet; marks them reported."""
        count, self.noticed = self.dropped - self.noticed, self.dropped
        return count

    def counts(self) -> dict[str, int]:
        """For `microforum status`: lines written and lines dropped."""
        return {"written": self.written, "dropped": self.dropped}


class LogWriter:
    """Writes blocks of lines to `sink` from its own thread; `write` never blocks.

    `sink(data)` does the blocking write (an OSError counts the block's lines as dropped);
    `notice(count)`, if given, is the line written after `count` lines were dropped; `linger`
    (0: none) how long the woken thread gathers blocks before writing them.
    """

    def __init__(self, sink: Sink, *, name: str, limit: int = BACKLOG_LIMIT,
                 notice: Callable[[int], bytes] | None = None, linger: float = LINGER) -> None:  # fmt: skip
        self._sink, self._notice, self._linger = sink, notice, linger
        self._backlog = Backlog(limit)
        self._mark = limit // 4  # this much waiting ends the linger at once
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._state = IDLE
        self._hurry = False  # a `flush` waits: write without lingering
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"log writer: {name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<LogWriter {self._thread.name!r} {self._backlog!r}>"

    def write(self, block: bytes, lines: int | None = None) -> None:
        """Queue `block` (whole lines) for writing, or count it dropped; returns at once."""
        if lines is None:
            lines = block.count(b"\n") or 1
        with self._lock:
            if self._closing:
                self._backlog.dropped += lines
            elif self._backlog.offer(block, lines) and (
                self._state is IDLE or (self._state is LINGERING and self._backlog.size >= self._mark)
            ):
                self._wake.notify_all()  # all: a `flush` may be waiting on the same condition

    def counts(self) -> dict[str, int]:
        """Lines written and dropped so far."""
        with self._lock:
            return self._backlog.counts()

    def flush(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Wait (up to `timeout` s) until the backlog is written; whether it was.

        Not for the event loop's hot path: for shutdown, and for tests."""
        with self._wake:
            self._hurry = True
            self._wake.notify_all()
            try:
                return self._wake.wait_for(
                    lambda: self._state is not BUSY and not self._backlog.blocks, timeout
                )
            finally:
                self._hurry = False

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what waits if that takes under `timeout` s, then stop; later lines are dropped."""
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout)  # a thread stuck in a write is abandoned (a daemon)

    # The thread

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._backlog.blocks or self._closing)
                if not self._backlog.blocks:
                    return
                if self._linger > 0:
                    self._state = LINGERING
                    self._wake.wait_for(self._gathered, self._linger)
                self._state = BUSY
                data, lines = self._backlog.take()
            self._deliver(data, lines)

    def _gathered(self) -> bool:
        return self._hurry or self._closing or self._backlog.size >= self._mark

    def _deliver(self, data: bytes, lines: int) -> None:
        ok = self._emit(data)
        notice = b""
        with self._wake:
            if ok:
                self._backlog.written += lines
                dropped = self._backlog.unreported()
                if dropped and self._notice is not None:
                    notice = self._notice(dropped)
            else:
                self._backlog.dropped += lines
            if not notice:
                self._state = IDLE
                self._wake.notify_all()
        if notice:
            self._emit(notice)
            with self._wake:
                self._state = IDLE
                self._wake.notify_all()

    def _emit(self, data: bytes) -> bool:
        try:
            self._sink(data)
        except Exception:
            return False
        return True


def fd_sink(fd: int) -> Sink:
    """A sink writing everything to file descriptor `fd` (blocking; short writes continued)."""

    def sink(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return sink
