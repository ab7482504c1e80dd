"""PostgreSQL on the event loop: reads of one statement, and batches of single INSERTs.

Work sent to one of the database threads costs the process a hop each way (a queue and a
futex to wake the thread, a self-pipe write to wake the loop) and hands the interpreter's lock
back and forth with a busy loop. Measured here (`bench/pg_loop_cost.py`, a prepared SELECT by
primary key, one at a time, the client's own CPU): about 120 µs a query through a thread,
about 60 µs on the loop with psycopg's AsyncConnection. Through the whole stack a batch of
post inserts spent about 2 ms in flight, of which 0.5 ms in its thread's work.

Two kinds of work run here, each on an AsyncConnection of its own (`LoopConnection`):

- `LoopReads`: the reads that decide whether a record may be referred to
  (`store.referable_user`, `store.referable_thread`): never cached (docs/consistency.md),
  asked by other services for every create, one statement each. One at a time: a read asked
  while another is in flight returns `BUSY` and goes to a thread as before.
- `LoopBatches`: a group-commit batch whose writes are single INSERTs (storage.ONE_STATEMENT):
  its BEGIN, the INSERTs and COMMIT in one pipeline, one round trip. Only the usual case runs
  here: when an INSERT fails, the server skips the rest (COMMIT too) and the transaction is
  rolled back, then the batch is handed to a database thread, which runs it as it always did
  (each write in its own savepoint). A COMMIT the server refused fails the batch, as on a
  thread; a connection lost during the round trip is an unknown outcome (`CommitLost`), as a
  thread's lost during its COMMIT.

Each connection is replaced as the threads' are (pgconn.py): a stale one before use; a read
that met a connection broken meanwhile runs once more on a new one (a read wrote nothing); a
connection whose work was cancelled is closed, since an answer may still be on its way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from microforum.services.pgconn import CommitLost, stale

BUSY: Final = object()  # `LoopReads.read`'s answer when its connection is in use: use a thread
HAND_OVER: Final = object()  # `LoopBatches.run`'s answer: nothing committed, run it on a thread

Statement = tuple[str, tuple[Any, ...], Callable[[Any], Any]]  # sql (%s), params, make(first row)


class LoopConnection:
    """One autocommit psycopg AsyncConnection of the event loop's, with cursors kept.

    `connect()` opens it (or raises); `psycopg` is the module (imported by the caller)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], psycopg: Any) -> None:
        self._connect = connect
        self.error: type[Exception] = psycopg.Error
        self.lost: type[Exception] = psycopg.OperationalError  # the connection failed
        self.in_error = psycopg.pq.TransactionStatus.INERROR  # a statement failed in a transaction
        self.conn: Any = None
        self._cursors: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it was opened in
        self.busy = False

    def __repr__(self) -> str:
        return f"<LoopConnection busy={self.busy} conn={self.conn!r}>"

    async def ready(self, cursors: int = 1) -> bool:
        """Make sure a usable connection with `cursors` cursors is open; whether it is new."""
        loop = asyncio.get_running_loop()
        new = self.conn is None or self._loop is not loop or stale(self.conn)
        if new:  # (a connection waits on the loop it was opened in: a service has one loop)
            self.close()
            self.conn, self._loop = await self._connect(), loop
        self._cursors.extend(self.conn.cursor() for _ in range(cursors - len(self._cursors)))
        return new

    def cursors(self, count: int) -> list[Any]:
        return self._cursors[:count]

    def close(self) -> None:
        """Close the connection (synchronously: libpq's own close, no goodbye awaited)."""
        conn, self.conn, self._cursors = self.conn, None, []
        if conn is not None:
            with contextlib.suppress(Exception):  # already closed, or never fully opened
                conn.pgconn.finish()


class LoopReads:
    """Single-statement reads on the loop's connection, one at a time."""

    def __init__(self, connection: LoopConnection) -> None:
        self.connection = connection
        self.reads = 0  # reads answered here (for tests)

    async def read(self, statement: Statement) -> Any:
        """The statement's result (`make` of its first row), or `BUSY`."""
        connection = self.connection
        if connection.busy:
            return BUSY
        connection.busy = True
        try:
            sql, params, make = statement
            new = await connection.ready()
            try:
                row = await self._run(sql, params)
            except connection.lost:
                if new or not connection.conn.broken:
                    raise
                connection.close()  # closed by the server unnoticed: once more on a new one
                await connection.ready()
                row = await self._run(sql, params)
            self.reads += 1
            return make(row)
        finally:
            connection.busy = False

    async def _run(self, sql: str, params: tuple[Any, ...]) -> Any:
        connection = self.connection
        (cursor,) = connection.cursors(1)
        try:
            await cursor.execute(sql, params, prepare=True)
            return await cursor.fetchone()
        except BaseException as exc:  # a broken one is replaced by the caller, or by `ready`
            if not isinstance(exc, Exception):
                connection.close()  # cancelled mid-read: its answer may still come
            raise


class LoopBatches:
    """Batches of single INSERTs on the loop's connection: the usual case only (see above)."""

    def __init__(self, connection: LoopConnection) -> None:
        self.connection = connection
        self.batches = 0  # batches committed here (for tests)
        self.handed_over = 0  # batches whose INSERT failed here, handed to a thread (for tests)

    async def run(self, statements: list[Statement]) -> Any:
        """Each statement's result (`make` of its row), all committed; or `HAND_OVER`."""
        connection = self.connection
        if connection.busy:
            return HAND_OVER
        connection.busy = True
        try:
            return await self._run(statements)
        finally:
            connection.busy = False

    async def _run(self, statements: list[Statement]) -> Any:
        connection = self.connection
        await connection.ready(1 + len(statements))  # a connect that fails: the batch fails
        transaction, *cursors = connection.cursors(1 + len(statements))
        conn = connection.conn
        try:
            async with conn.pipeline():  # one round trip: BEGIN, the INSERTs, COMMIT, Sync
                await transaction.execute("BEGIN")
                for cursor, (sql, params, _) in zip(cursors, statements, strict=True):
                    await cursor.execute(sql, params, prepare=True)
                await transaction.execute("COMMIT")
            rows = [await cursor.fetchone() for cursor in cursors]
        except connection.lost as exc:
            if conn.broken:  # COMMIT was sent with the rest: it may have been applied
                connection.close()
                raise CommitLost(str(exc).strip()) from exc
            return await self._refused(exc)
        except connection.error as exc:
            return await self._refused(exc)
        except BaseException:
            connection.close()  # a bug, or cancelled with COMMIT on its way
            raise
        self.batches += 1
        return [make(row) for row, (_, _, make) in zip(rows, statements, strict=True)]

    async def _refused(self, exc: Exception) -> Any:
        """An INSERT failed (the server skipped the rest, COMMIT too, and the transaction is
        aborted): roll it back and hand the batch over. Or the COMMIT itself was refused (the
        transaction is over, nothing applied): the batch fails, as on a thread."""
        connection = self.connection
        if connection.conn.info.transaction_status != connection.in_error:
            raise exc
        try:
            await connection.conn.execute("ROLLBACK")
        except Exception:
            connection.close()  # the server rolls back a transaction whose connection closed
        except BaseException:
            connection.close()
            raise
        self.handed_over += 1
        return HAND_OVER
