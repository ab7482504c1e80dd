"""Flushing a SQLite write-ahead log to the disk off the event loop, answered on the loop.

A SQLite batch commits on the event loop with `synchronous=NORMAL`: its frames are written to
the `-wal` file (the page cache: microseconds) and no fsync is made. `Syncer.sync(fd)` then
has a thread of its own flush the file (fdatasync) and answers on the loop once it is on the
disk; the batch's writes are answered only then (docs/store.md, "Group commit on SQLite").

The thread is C (`_walsync.c`, built at install time) when it is built, so that it never
needs Python's interpreter lock, which a busy event loop holds: a Python thread waits for it
after each blocking call, up to the switch interval each time. `serve` is the same thread in
Python, used when the C one is not built, and the reference the tests hold both to.

The protocol, one pipe each way: a request is a file descriptor, an answer the outcome of its
flush (0 or an errno), both native 32-bit ints, answered in the order asked. The thread owns
the request pipe's read end and the answer pipe's write end and closes them when the request
pipe ends (`Syncer.close` closes its write end).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import os
import struct
import threading
from collections.abc import Callable

RECORD = struct.Struct("=i")  # a request (a file descriptor) or an answer (0 or an errno)
Start = Callable[[int, int], None]  # start(requests, done): the thread, owning both


def flush_to_disk(fd: int) -> int:
    """Flush `fd`'s file to the disk: 0, or the errno of the failure."""
    try:
        os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)
    except OSError as exc:
        return exc.errno or 1
    return 0


def serve(requests: int, done: int) -> None:
    """The syncing thread's loop (the C one's reference): flush each requested descriptor,
    answer its outcome, until the request pipe ends; then close both descriptors."""
    try:
        while len(request := _read_exactly(requests, RECORD.size)) == RECORD.size:
            (fd,) = RECORD.unpack(request)
            try:
                os.write(done, RECORD.pack(flush_to_disk(fd)))
            except OSError:  # the reader is gone
                break
    finally:
        os.close(requests)
        os.close(done)


def _read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes from `fd`, or fewer at its end (or on an error)."""
    data = b""
    while len(data) < size:
        try:
            chunk = os.read(fd, size - len(data))
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def start_in_python(requests: int, done: int) -> None:
    threading.Thread(target=serve, args=(requests, done), name="wal-sync", daemon=True).start()


def native_start() -> Start | None:
    """The C thread's `start`, or None when `_walsync.c` is not built."""
    try:
        module = importlib.import_module("microforum.services._walsync")
    except ImportError:
        return None
    start: Start = module.start
    return start


class Syncer:
    """A syncing thread and the event loop's side of it: `sync(fd)` is a future resolved on
    `loop` once `fd`'s file is on the disk (or failed with the flush's OSError)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, start: Start | None = None) -> None:
        requests_in, self._requests = os.pipe()
        self._answers, answers_out = os.pipe()
        try:
            (start or native_start() or start_in_python)(requests_in, answers_out)
        except BaseException:
            for fd in (requests_in, self._requests, self._answers, answers_out):
                os.close(fd)
            raise
        os.set_blocking(self._answers, False)
        os.set_blocking(self._requests, False)  # a full pipe (a disk stuck) fails, never waits
        self.loop = loop
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._partial = b""
        loop.add_reader(self._answers, self._on_answers)

    def __repr__(self) -> str:
        return f"Syncer(waiting={len(self._waiting)})"

    def sync(self, fd: int) -> asyncio.Future[None]:
        """A future resolved once `fd`'s file is flushed to the disk, in the order asked."""
        future = self.loop.create_future()
        try:
            os.write(self._requests, RECORD.pack(fd))  # a pipe's buffer holds 16k requests
        except OSError as exc:  # the thread is gone (closed), or 16k flushes wait already
            future.set_exception(exc)
            return future
        self._waiting.append(future)
        return future

    def _on_answers(self) -> None:
        try:
            data = os.read(self._answers, 4096)
        except BlockingIOError:
            return
        if not data:  # the thread ended: nothing asked will be answered
            self.loop.remove_reader(self._answers)
            self._fail_waiting(BrokenPipeError("the WAL's syncing thread ended"))
            return
        data = self._partial + data
        whole = len(data) - len(data) % RECORD.size
        self._partial = data[whole:]
        for (outcome,) in RECORD.iter_unpack(data[:whole]):
            future = self._waiting.popleft()
            if future.done():  # its waiter was cancelled
                continue
            if outcome:
                future.set_exception(OSError(outcome, os.strerror(outcome)))
            else:
                future.set_result(None)

    def _fail_waiting(self, exc: Exception) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def close(self) -> None:
        """End the thread after the flushes asked for, then close the pipes. Waits for a flush
        in progress; anything still waiting fails."""
        if self._requests < 0:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self.loop.remove_reader(self._answers)
        os.close(self._requests)
        self._requests = -1
        os.set_blocking(self._answers, True)
        while os.read(self._answers, 4096):  # until the thread closed its end
            pass
        os.close(self._answers)
        self._fail_waiting(BrokenPipeError("the WAL's syncing thread was closed"))
