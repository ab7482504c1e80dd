"""Group commit for SQLite: the writes waiting while one transaction commits share the next.

With `synchronous=FULL` every commit waits for an fsync (milliseconds of wall time, and about
a hundred microseconds of CPU, on an ordinary disk), and one connection commits one
transaction at a time, so writes queue behind each other's fsyncs. `GroupCommit` runs the
storage functions queued meanwhile in one transaction on the writer thread, each inside its
own savepoint, and commits once: each keeps its own all-or-nothing (a function that raises
is rolled back to its savepoint alone, and its caller gets the exception), and none is
answered before the commit that holds it is on disk. A failed commit fails every write in it.
Under no concurrency a batch holds one write, as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

MAX_BATCH = 64  # writes per transaction at most
Item = tuple[Callable[..., Any], dict[str, Any], "asyncio.Future[Any]"]


class GroupCommit:
    """Queues writes from the event loop; runs them in batches on `executor` over `conn`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        executor: Executor,
        wrap: Callable[[sqlite3.Connection], Any],
        translate: Callable[[sqlite3.Error], Exception],
    ) -> None:
        self.conn = conn
        self.executor = executor
        self.wrap = wrap  # the Conn a storage function is given
        self.translate = translate  # sqlite3 errors -> the storage module's exceptions
        self.queue: list[Item] = []
        self.running = False

    def __repr__(self) -> str:
        return f"GroupCommit(queued={len(self.queue)}, running={self.running})"

    async def write(self, fn: Callable[..., Any], kw: dict[str, Any]) -> Any:
        """Run `fn(conn, **kw)` in the next transaction; its result once that committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.append((fn, kw, future))
        if not self.running:
            self._start()
        return await future

    def _start(self) -> None:
        batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
        self.running = True
        done = asyncio.get_running_loop().run_in_executor(self.executor, self._run, batch)
        done.add_done_callback(lambda finished: self._finish(batch, finished))

    def _finish(self, batch: list[Item], finished: asyncio.Future[list[tuple[bool, Any]]]) -> None:
        self.running = False
        error = finished.exception()
        for index, (_, _, future) in enumerate(batch):
            if future.done():  # its caller was cancelled
                continue
            if error is not None:
                future.set_exception(error)
                continue
            ok, value = finished.result()[index]
            future.set_result(value) if ok else future.set_exception(value)
        if self.queue:
            self._start()

    def _run(self, batch: list[Item]) -> list[tuple[bool, Any]]:
        """On the writer thread: one transaction, a savepoint per write."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [self._one(fn, kw) for fn, kw, _ in batch]
            conn.execute("COMMIT")
            return results
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self.translate(exc) from exc

    def _one(self, fn: Callable[..., Any], kw: dict[str, Any]) -> tuple[bool, Any]:
        conn = self.conn
        conn.execute("SAVEPOINT write")
        try:
            value = fn(self.wrap(conn), **kw)
        except Exception as exc:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            translated = self.translate(exc) if isinstance(exc, sqlite3.Error) else exc
            return False, translated
        conn.execute("RELEASE write")
        return True, value
