"""Group commit, for both stores: the writes waiting while one transaction commits share the next.

A commit costs more than the statements before it: on SQLite an fsync of its write-ahead log,
on PostgreSQL a round trip to the server and a flush of its write-ahead log, and in both a
transaction's BEGIN and COMMIT. `GroupCommit` queues the writes of one process on the event
loop and runs those waiting in one transaction on a database thread, then commits once. Its
two parts:

- `GroupCommit` (the event loop's side): the queue, one batch in flight at a time, every
  write answered from its batch's outcome. A batch whose transaction fails as a whole (its
  BEGIN or COMMIT, a lost connection) fails every write in it with that error: none of them
  was committed, and none is answered as if it were.
- `apply_each` (inside the open transaction): every write runs as it is, after one savepoint
  for the whole batch. When one raises, the batch goes back to that savepoint (then released)
  and runs again, each write in a savepoint of its own, so that the one that raises is rolled
  back alone and its caller gets the exception, while the others go on. Writes rarely fail (a
  409, a 412), so a batch usually costs one savepoint, not one per write: on PostgreSQL each
  statement is a round trip to the server, which a savepoint per write doubled. A batch of one
  needs no savepoint: its write's failure is the transaction's, which the store rolls back. In
  the second pass, a write that succeeded leaves its savepoint open (one statement less per
  write): the next one nests inside it, a rollback goes to the latest savepoint of the name,
  and COMMIT ends them all. Both stores keep an older savepoint of the same name
  (https://www.postgresql.org/docs/current/sql-savepoint.html,
  https://www.sqlite.org/lang_savepoint.html). At most `MAX_BATCH` (64) of them: PostgreSQL
  caches 64 subtransactions per transaction in shared memory and slows other sessions past that.

Or a store may run a whole batch on the event loop (`on_loop`: an awaitable of its outcomes, or
None to use the executor). SQLite does (its statements and COMMIT on a local file take
microseconds, and a thread of its own flushes the WAL; sent to a database thread, each of them
would hand the interpreter's lock back and forth with the event loop), and PostgreSQL for a
batch of single INSERTs on a connection of the loop's own; both hand the batch to the executor
whenever that path meets anything unusual (docs/store.md, "Group commit").

Under no concurrency a batch holds one write, as without group commit. No write is answered
before the commit that holds it succeeded (docs/store.md, "Group commit").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any, Final

MAX_BATCH: Final = 64  # writes per transaction at most
SAVEPOINT: Final = "SAVEPOINT write"
ROLLBACK_TO: Final = "ROLLBACK TO SAVEPOINT write"
RELEASE: Final = "RELEASE SAVEPOINT write"
BATCH_SAVEPOINT: Final = "SAVEPOINT batch"
ROLLBACK_BATCH: Final = "ROLLBACK TO SAVEPOINT batch"
RELEASE_BATCH: Final = "RELEASE SAVEPOINT batch"
Write = tuple[Callable[..., Any], dict[str, Any]]  # a storage function and its keywords
Outcome = tuple[bool, Any]  # (True, its result) or (False, the exception it raised)
OnLoop = Callable[[list[Write]], Awaitable[list[Outcome]] | None]


def opening(batch: Sequence[Write]) -> str | None:
    """The statement a batch starts with in its transaction (`apply_each` runs it unless told
    it ran): a store may send it with its BEGIN, in one round trip to the server."""
    return BATCH_SAVEPOINT if len(batch) > 1 else None


def apply_each(
    batch: Sequence[Write],
    execute: Callable[[str], object],
    conn: Any,
    translate: Callable[[Exception], Exception],
    *,
    opened: bool = False,
    together: Callable[[Sequence[Write]], list[Any]] | None = None,
) -> list[Outcome]:
    """Run every write of `batch` as `fn(conn, **kw)` in the open transaction: all at once
    after one savepoint, or, when one of them raises, again from that savepoint, each in its
    own (`execute` runs the savepoint statements); errors of the database's driver are passed
    through `translate`. A failing savepoint statement fails the batch. `opened`: the caller
    ran `opening(batch)` already. `together`: runs the first pass (all the writes, each
    result in order, or an exception) in a way of the store's own (PostgreSQL: pipelined)."""
    if len(batch) == 1:
        fn, kw = batch[0]
        return [(True, fn(conn, **kw))]
    if not opened:
        execute(BATCH_SAVEPOINT)
    try:
        if together is not None:
            return [(True, value) for value in together(batch)]
        return [(True, fn(conn, **kw)) for fn, kw in batch]
    except Exception:  # the writes go again, each on its own: the failing one alone is undone
        execute(ROLLBACK_BATCH)
        execute(RELEASE_BATCH)  # so the writes' savepoints do not nest in it: 64 at most
    return _each_alone(batch, execute, conn, translate)


def _each_alone(
    batch: Sequence[Write],
    execute: Callable[[str], object],
    conn: Any,
    translate: Callable[[Exception], Exception],
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for fn, kw in batch:
        execute(SAVEPOINT)
        try:
            value = fn(conn, **kw)
        except Exception as exc:
            execute(ROLLBACK_TO)
            execute(RELEASE)
            outcomes.append((False, translate(exc)))
            continue
        outcomes.append((True, value))  # its savepoint is left open: COMMIT ends them all
    return outcomes


class GroupCommit:
    """Queues writes from the event loop; `run_batch` runs each batch in one transaction on
    `executor` and returns an outcome per write, or raises when the transaction failed.
    With `on_loop`, a batch is first offered to it (see the module's docstring)."""

    def __init__(
        self,
        executor: Executor,
        run_batch: Callable[[list[Write]], list[Outcome]],
        on_loop: OnLoop | None = None,
    ) -> None:
        self.executor = executor
        self.run_batch = run_batch
        self.on_loop = on_loop
        self.queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None  # runs the batches while writes wait
        self.batches = 0  # transactions started so far

    def __repr__(self) -> str:
        return f"GroupCommit(queued={len(self.queue)}, running={self.running}, batches={self.batches})"

    @property
    def running(self) -> bool:
        """Whether a batch is in flight (or about to be)."""
        return self._drainer is not None

    async def write(self, fn: Callable[..., Any], kw: dict[str, Any]) -> Any:
        """Run `fn(conn, **kw)` in the next transaction; its result once that committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.append(((fn, kw), future))
        if self._drainer is None:  # kept: a task is only weakly held by the loop
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        """Run batches one after another while writes wait, each taken one turn of the event
        loop after the last one's answers (or the first write): in that turn the requests
        already received queue their writes beside those waiting, and share their batch
        (docs/store.md, "Group commit")."""
        batch: list[tuple[Write, asyncio.Future[Any]]] = []
        try:
            while self.queue:
                await asyncio.sleep(0)
                batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                self.batches += 1
                try:
                    outcomes = await self._run([write for write, _ in batch])
                except Exception as exc:  # the transaction failed as a whole: every write
                    _answer(batch, exc, [])
                else:
                    _answer(batch, None, outcomes)
                batch = []
        except BaseException:  # cancelled: the loop is closing, nobody waits any more
            for _, future in [*batch, *self.queue]:
                future.cancel()
            raise
        finally:
            self._drainer = None

    async def _run(self, writes: list[Write]) -> list[Outcome]:
        """One batch's outcomes: run on the loop, or on the executor."""
        running = self.on_loop(writes) if self.on_loop is not None else None
        if running is not None:
            return await running
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.run_batch, writes)


def _answer(batch: list[tuple[Write, asyncio.Future[Any]]], error: Exception | None,
            outcomes: list[Outcome]) -> None:  # fmt: skip
    """Answer each write of a batch: the batch's error, or its own outcome."""
    for index, (_, future) in enumerate(batch):
        if future.done():  # its caller was cancelled
            continue
        if error is not None:
            future.set_exception(error)
            continue
        ok, value = outcomes[index]
        future.set_result(value) if ok else future.set_exception(value)
