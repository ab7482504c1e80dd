"""Databases: SQLite (default, embedded) and PostgreSQL (psycopg 3), behind one small interface.

Storage functions are plain synchronous functions `fn(conn, *, ...)` written once with `?`
placeholders; a `Database` runs them:

- `await db.read(fn, **kw)` runs `fn` outside any explicit transaction (one statement sees
  one consistent snapshot). SQLite reads run inline on the event loop on their own connection:
  a prepared SELECT on a local file takes microseconds, less than a thread hop. In WAL mode a
  read never waits for a writer and always sees every transaction committed before it started,
  by any connection of any process, so a write acknowledged by one replica is seen by the next
  read on every replica without any cache to invalidate.
- `await db.read_json(key, fn, **kw)` answers `fn` encoded as JSON. SQLite keeps the answers
  it gave while the database's wal-index header (`WalIndex`, a memory read) stays the same: any
  commit by any connection of any process changes it, so a cached answer is never stale.
  PostgreSQL keeps them until a change is notified (LISTEN/NOTIFY, `pgcache.py`).
- `await db.write(fn, **kw)` runs `fn` in one transaction, answered once that committed;
  writes queued while one commits share the next commit, each in its own savepoint
  (groupcommit.py). SQLite: `BEGIN IMMEDIATE`, the statements and the COMMIT on the event
  loop when the write lock is free at once (else the whole batch on the writer thread, so
  replicas on one file queue on the busy timeout instead of failing), the WAL flushed to the
  disk by a thread of its own before any write of the batch is answered (walsync.py); a read
  too waits for the flush of what it shows. PostgreSQL: on a database thread, BEGIN and COMMIT
  by hand (pgconn.run_transaction), or a batch of inserts on the loop (pgloop.py).

Foreign exceptions are translated here, once: a unique-constraint violation becomes
`Conflict`, an unreachable or locked database becomes `StorageUnavailable` (the HTTP layer
answers 409 and 503).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import msgspec

from microforum.logfiles import create_private
from microforum.services.groupcommit import (
    BATCH_SAVEPOINT,
    GroupCommit,
    Outcome,
    Write,
    apply_each,
    opening,
)
from microforum.services.pgcache import MISSING, ChangeListener, ReadCache
from microforum.services.pgconn import (
    RECONNECT_PAUSE,
    Breaker,
    CommitLost,
    connect_options,
    run_transaction,
    stale,
)
from microforum.services.pgloop import BUSY, HAND_OVER, LoopBatches, LoopConnection, LoopReads
from microforum.services.settings import sqlite_path
from microforum.services.walindex import WalIndex
from microforum.services.walsync import Syncer, flush_to_disk

T = TypeVar("T")
_encode = msgspec.json.Encoder().encode
MAX_CACHED = 4096  # answers kept per database; the cache empties when it would grow past this
Row = tuple[Any, ...]
SQLITE_BUSY_TIMEOUT_MS = 5000
# WAL frames (pages) past which a checkpoint is started: SQLite's default wal_autocheckpoint
# (https://www.sqlite.org/pragma.html#pragma_wal_autocheckpoint), which ours stands in for.
CHECKPOINT_FRAMES = 1000
PG_MAINTENANCE_DATABASE = "postgres"  # exists on every server (RDS included); used to create ours
PG_THREADS = 4
PG_CREATE_DATABASE_LOCK = 0x6D666F72_00DB  # advisory lock key: "mfor", creating a database
# The wal-index header at the start of a WAL database's `-shm` file, twice (walformat.html 2.2).


class Conflict(Exception):
    """A write would break a uniqueness rule; the message is for the client.

    `cause` is the database's own error when there was one: for the log, never for the client.
    """

    def __init__(self, detail: str, *, cause: str = "") -> None:
        super().__init__(detail)
        self.cause = cause


class StorageUnavailable(Exception):
    """The database cannot be reached or stayed locked past the busy timeout.

    The message (the cause, which may name hosts and ports) is for the log; `public_detail()`
    is what the client is told. `outcome_unknown`: the connection was lost while a transaction
    was being committed, so the write may or may not have been applied.
    """

    def __init__(self, cause: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(cause)
        self.outcome_unknown = outcome_unknown

    def public_detail(self) -> str:
        """What a 503 says about this (docs/store.md): never a host, a port or a URL."""
        if self.outcome_unknown:
            return ("the database became unavailable while committing; the write may or may not"
                    " have been applied; retry later")  # fmt: skip
        return "the database is unavailable; nothing was written; retry later"


# Unique indexes (schema.py) by the field a client is told about when one is violated.
_UNIQUE_FIELDS = {"users_username": "username"}


def unique_taken(cause: str) -> Conflict:
    """The Conflict for a unique-constraint violation the database reported as `cause`."""
    field = next((f for index, f in _UNIQUE_FIELDS.items() if index in cause), None)
    what = f"the {field}" if field else "a value that must be unique"
    return Conflict(f"{what} is taken (by a request made at the same time)", cause=cause)


class Conn(Protocol):
    """What a storage function may do with its connection."""

    dialect: str

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Run a query and return every row."""
        ...

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        """Run a query and return its first row, or None."""
        ...

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement and return the number of rows it changed."""
        ...


# A write that is one statement, described without running it: its SQL, its parameters, and
# what makes the write's result of the row the statement returns.
Statement = tuple[str, tuple[Any, ...], Callable[[Row | None], Any]]
# Writes that may be one statement, by the function that describes it from the write's
# keywords (None: not one statement with these): PostgreSQL sends those of a batch together,
# in pipeline mode (docs/store.md, "Group commit").
ONE_STATEMENT: dict[Callable[..., Any], Callable[..., Statement | None]] = {}
# Reads of one statement, by the function that describes it from the read's keywords:
# PostgreSQL runs them on the event loop, no thread hop (pgloop.py, docs/store.md).
ONE_READ: dict[Callable[..., Any], Callable[..., Statement]] = {}


def one_statements(batch: Sequence[Write]) -> list[Statement] | None:
    """Each write of a batch of several as its one statement (ONE_STATEMENT), or None when
    the batch is of one write or one of them is not a single statement."""
    if len(batch) < 2:
        return None
    statements = []
    for fn, kw in batch:
        describe = ONE_STATEMENT.get(fn)
        statement = None if describe is None else describe(**kw)
        if statement is None:
            return None
        statements.append(statement)
    return statements


class Database(Protocol):
    """A service's database: reads and transactional writes of storage functions."""

    dialect: str

    async def read(self, fn: Callable[..., T], /, **kw: Any) -> T:
        """Run `fn(conn, **kw)` as a read."""
        ...

    async def write(self, fn: Callable[..., T], /, **kw: Any) -> T:
        """Run `fn(conn, **kw)` in one transaction, off the event loop."""
        ...

    async def read_json(self, key: Hashable, fn: Callable[..., Any], /, **kw: Any) -> bytes | None:
        """`fn(conn, **kw)` encoded as JSON (None stays None), possibly from a cache under
        `key` that is valid only while no write has been committed since it was filled."""
        ...

    def write_now(self, fn: Callable[..., T], /, **kw: Any) -> T:
        """Run `fn(conn, **kw)` in one transaction on the calling thread (start-up only)."""
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


# --- SQLite ---------------------------------------------------------------------------------


class _SqliteConn:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        # fetchall, not fetchone: a statement left half-stepped cannot be reused from the
        # statement cache, and the next call would compile it again.
        rows = self._conn.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return self._conn.execute(sql, params).rowcount


def _sqlite_connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
    )
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    # A batch's savepoints nest (groupcommit.py): past 64 KiB their journal would spill to a
    # temporary file, opened, written and deleted per batch (docs/store.md, "Group commit").
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL mode. The switch needs the file to itself and SQLite answers "database is
    locked" at once, without its busy handler, while another replica starting beside this one
    holds it: so retry, within the same busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _begin_at_once(conn: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE without waiting: False (nothing begun) when another connection holds
    the write lock. The connection's busy timeout is set back as it was."""
    (waits,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return False
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(waits)}")
    return True


@contextlib.contextmanager
def _undone_on_error(conn: sqlite3.Connection) -> Iterator[None]:
    """Whatever the block raises rolls back the open transaction; sqlite3's errors come out
    as the storage module's (`_sqlite_errors`)."""
    try:
        yield
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise _sqlite_errors(exc) from exc
        raise


def _sqlite_errors(exc: Exception) -> Exception:
    """The storage module's exception for one of sqlite3's (others are returned as they are)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return unique_taken(f"sqlite: {exc}")
    if isinstance(exc, sqlite3.OperationalError):
        return StorageUnavailable(f"sqlite: {exc}")
    return exc


class SqliteDatabase:
    """One SQLite file in WAL mode: a reader connection for the loop, a writer connection whose
    batches commit on the loop and are flushed to the disk by a syncing thread (walsync.py),
    and a writer thread for what cannot run on the loop."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        if path != ":memory:" and not path.startswith("file:"):
            # A new database is readable by its owner only (SQLite gives its -wal and -shm
            # files the database's mode).
            create_private(Path(path))
        self._writer = _sqlite_connect(path)
        self._reader = _SqliteConn(_sqlite_connect(path))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._group = GroupCommit(self._pool, self._run_batch, on_loop=self._commit_on_loop)
        self._cache: dict[Hashable, bytes | None] = {}
        self._cache_version: Hashable = ()  # no version is (): the first read fills the cache
        self._wal = WalIndex.open(path)  # opened after the reader: its connection keeps it valid
        self._wal_fd = self._open_wal() if self._wal is not None else None
        if self._wal_fd is not None:  # commits flushed by us, checkpoints run by us
            self._writer.execute("PRAGMA synchronous = NORMAL")
            self._writer.execute("PRAGMA wal_autocheckpoint = 0")
        self._syncer: Syncer | None = None  # made on the first loop that commits
        # What reads wait for (`_unflushed`): the version of the database the last finished
        # flush covered, and the flush asked last with the version it covers.
        self._flushed_version: Hashable = None
        self._asked: tuple[Hashable, asyncio.Future[None]] | None = None
        self._checkpoint_at = 0  # the WAL's frames at the last checkpoint left unfinished

    def __repr__(self) -> str:
        return f"SqliteDatabase({self.path!r})"

    def _open_wal(self) -> int | None:
        """A descriptor of the `-wal` file to flush after each commit, or None without one
        (then synchronous=FULL and every batch on the writer thread, as SQLite alone does)."""
        try:
            return os.open(self.path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def _version(self) -> Hashable:
        """A value that changes whenever any connection of any process commits; None: unknown."""
        if self._wal is not None:
            return self._wal.version()
        # Without a wal-index (not WAL mode): `PRAGMA data_version` changes whenever another
        # connection commits (https://www.sqlite.org/pragma.html#pragma_data_version).
        return self._reader.one("PRAGMA data_version")[0]  # type: ignore[index]

    async def read_json(self, key: Hashable, fn: Callable[..., Any], /, **kw: Any) -> bytes | None:
        # The version is read before the answer, which is therefore at least as new as the
        # version it is filed under: while the version stays the same, nothing was committed
        # since, and the cached answer is the one a query would give now.
        try:
            version = self._version()
            if version is None:  # a writer is rewriting the header right now: ask the database
                value = fn(self._reader, **kw)
                if (flush := self._unflushed(None)) is not None:
                    await flush
                return None if value is None else _encode(value)
            if version != self._cache_version or len(self._cache) >= MAX_CACHED:
                self._cache.clear()
                self._cache_version = version
            elif key in self._cache:
                # (`_unflushed`'s own first test, here without a call: the hottest path)
                if version != self._flushed_version and (flush := self._unflushed(version)) is not None:
                    await flush
                return self._cache[key]
            value = fn(self._reader, **kw)
        except sqlite3.Error as exc:
            raise _sqlite_errors(exc) from exc
        body = None if value is None else _encode(value)
        self._cache[key] = body
        if (flush := self._unflushed_now()) is not None:  # the answer may be newer than `version`
            await flush
        return body

    async def read(self, fn: Callable[..., T], /, **kw: Any) -> T:
        try:
            value = fn(self._reader, **kw)
        except sqlite3.Error as exc:
            raise _sqlite_errors(exc) from exc
        if (flush := self._unflushed_now()) is not None:
            await flush
        return value

    def _unflushed(self, version: Hashable) -> Awaitable[None] | None:
        """What a read that saw `version` must await before it answers, or None when every
        commit up to it is on the disk already: a commit is visible as soon as it is in the
        WAL, before its flush, and no answer may show a write that a power cut could still
        undo (docs/store.md, "Group commit on SQLite"). None costs one comparison when nothing
        was committed since the last flush; reads that find the same new version share one
        flush. `version` None (a header being rewritten): always a flush."""
        if self._wal_fd is None or (version is not None and version == self._flushed_version):
            return None
        asked = self._asked
        if version is None or asked is None or asked[0] != version or asked[1].done():
            asked = self._ask_flush()
        return self._read_flushed(asked[1])

    def _unflushed_now(self) -> Awaitable[None] | None:
        """`_unflushed` for the version read now (after an answer)."""
        return None if self._wal_fd is None else self._unflushed(self._version())

    @staticmethod
    async def _read_flushed(flush: asyncio.Future[None]) -> None:
        try:
            await asyncio.shield(flush)  # a cancelled reader leaves the flush to the others
        except OSError as exc:
            raise StorageUnavailable(f"sqlite: flushing the WAL: {exc}") from exc

    async def write(self, fn: Callable[..., T], /, **kw: Any) -> T:
        result: T = await self._group.write(fn, kw)  # concurrent writes share a commit
        return result

    def _run_batch(self, batch: list[Write]) -> list[Outcome]:
        """On the writer thread: one transaction for the batch (groupcommit.py), waiting within
        the busy timeout for another connection's write lock; on the disk when it returns, and
        the WAL checkpointed after it when due."""
        conn = self._writer
        with _undone_on_error(conn):
            conn.execute("BEGIN IMMEDIATE")
            outcomes = apply_each(batch, conn.execute, _SqliteConn(conn), _sqlite_errors)
            conn.execute("COMMIT")
        self._flush_here()
        self._checkpoint_if_due()
        return outcomes

    def _commit_on_loop(self, batch: list[Write]) -> Awaitable[list[Outcome]] | None:
        """On the event loop: the batch in a transaction begun only if the write lock is free
        at once (the loop never waits on another connection's lock), committed to the WAL
        there, and its outcomes once the syncing thread flushed the WAL to the disk. None
        (the writer thread runs it) when another connection holds the lock, when a checkpoint
        is due, or without a WAL of our own to flush."""
        if self._wal_fd is None or self._checkpoint_due():
            return None
        conn = self._writer
        with _undone_on_error(conn):
            if not _begin_at_once(conn):
                return None
            outcomes = apply_each(batch, conn.execute, _SqliteConn(conn), _sqlite_errors)
            conn.execute("COMMIT")  # synchronous=NORMAL: in the WAL, not yet on the disk
        return self._flushed(outcomes, self._ask_flush()[1])

    async def _flushed(self, outcomes: list[Outcome], flush: Awaitable[None]) -> list[Outcome]:
        try:
            await flush
        except OSError as exc:  # committed, visible, maybe not on the disk: answered unknown
            raise StorageUnavailable(f"sqlite: flushing the WAL: {exc}", outcome_unknown=True) from exc
        return outcomes

    def _ask_flush(self) -> tuple[Hashable, asyncio.Future[None]]:
        """Have the syncing thread flush the WAL: everything committed by now, whatever the
        connection or process (one file, one page cache), which is the version read here."""
        version = self._version()
        future = self._syncer_of(asyncio.get_running_loop()).sync(self._wal_fd)  # type: ignore[arg-type]
        self._asked = (version, future)
        if version is not None:
            future.add_done_callback(functools.partial(self._on_flushed, version))
        return self._asked

    def _on_flushed(self, version: Hashable, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            self._flushed_version = version

    def _syncer_of(self, loop: asyncio.AbstractEventLoop) -> Syncer:
        if self._syncer is None or self._syncer.loop is not loop:
            if self._syncer is not None:  # a loop run before this one (tests run several)
                self._syncer.close()
            self._syncer = Syncer(loop)
        return self._syncer

    def _flush_here(self) -> None:
        """Flush the WAL to the disk on this thread, after a COMMIT made with NORMAL."""
        if self._wal_fd is None:  # synchronous=FULL: the COMMIT flushed it
            return
        failed = flush_to_disk(self._wal_fd)
        if failed:
            raise StorageUnavailable(f"sqlite: flushing the WAL: {os.strerror(failed)}", outcome_unknown=True)

    def _checkpoint_due(self) -> bool:
        """Whether the WAL we flush ourselves is due a checkpoint of ours (without one of our
        own to flush, SQLite's automatic checkpoints were left on)."""
        frames = self._wal.frames() if self._wal is not None and self._wal_fd is not None else None
        return frames is not None and checkpoint_due(frames, self._checkpoint_at)

    def _checkpoint_if_due(self) -> None:
        """On the writer thread, after a commit: a passive checkpoint when due (SQLite's own
        would run in the event loop's COMMIT and wait for the disk there). A batch that finds
        one due runs here, so that no commit adds frames meanwhile and the next one restarts
        the WAL from its start. A failure is left for the next one."""
        if not self._checkpoint_due():
            return
        try:
            _, frames, copied = self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return
        # All copied: the next commit starts the WAL again. Else a reader still needs its
        # frames: try again when as many more were added.
        self._checkpoint_at = 0 if copied == frames else frames

    def write_now(self, fn: Callable[..., T], /, **kw: Any) -> T:
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(_SqliteConn(conn), **kw)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _sqlite_errors(exc) from exc
        self._flush_here()
        self._checkpoint_if_due()
        return result

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.close()
        self._pool.shutdown(wait=True)
        self._writer.close()
        self._reader._conn.close()
        # After the connections, as the wal-index: closing a descriptor of a file drops this
        # process's POSIX locks on it (see walindex.py).
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._wal is not None:
            self._wal.close()
            self._wal = None


def checkpoint_due(frames: int, last: int) -> bool:
    """Whether to checkpoint a WAL of `frames` frames: at SQLite's own threshold, and, when the
    last checkpoint could not copy them all (`last`: the frames then; else 0), once as many
    more were added (not on every commit), or once the WAL started again anyway."""
    if frames < CHECKPOINT_FRAMES:
        return False
    return frames < last or frames - last >= CHECKPOINT_FRAMES


# --- PostgreSQL -----------------------------------------------------------------------------


class _PgConn:
    """Statements on one cursor, kept with its connection: a fresh cursor per statement costs
    about a third of a prepared statement's client time (psycopg 3)."""

    dialect = "postgresql"
    _converted: dict[str, str] = {}  # noqa: RUF012 - a process-wide cache of rewritten SQL

    def __init__(self, cursor: Any, spare: list[Any] | None = None) -> None:
        self._cursor = cursor
        self._spare = [] if spare is None else spare  # more cursors of its connection, kept

    @classmethod
    def _sql(cls, sql: str) -> str:
        converted = cls._converted.get(sql)
        if converted is None:
            converted = cls._converted[sql] = sql.replace("?", "%s")
        return converted

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return list(self._cursor.execute(self._sql(sql), params, prepare=True).fetchall())

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        row: Row | None = self._cursor.execute(self._sql(sql), params, prepare=True).fetchone()
        return row

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        return int(self._cursor.execute(self._sql(sql), params, prepare=True).rowcount)

    def plain(self, sql: str) -> None:
        """Run a statement with no parameters, unprepared (SAVEPOINT and the like)."""
        self._cursor.execute(sql)

    def pipelined(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Row | None]:
        """Run `statements` in pipeline mode (sent together, their results read after, one
        round trip) and return the first row of each (None when it returns none); the first
        error raises (the others are then not run: the server skips them)."""
        conn = self._cursor.connection
        self._spare.extend(conn.cursor() for _ in range(len(statements) - len(self._spare)))
        cursors = self._spare[: len(statements)]
        with conn.pipeline():
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(self._sql(sql), params, prepare=bool(params))  # not BEGIN
        return [cursor.fetchone() if cursor.description else None for cursor in cursors]


def _together(conn: _PgConn, statements: list[Statement], batch: Sequence[Write]) -> list[Any]:
    """The first pass of a batch of single statements (`one_statements(batch)`): its BEGIN, its
    savepoint and every write's statement sent in one pipeline, one round trip instead of two
    plus one per write."""
    opening = [("BEGIN", ()), (BATCH_SAVEPOINT, ())]
    rows = conn.pipelined([*opening, *((sql, params) for sql, params, _ in statements)])
    return [make(row) for (_, _, make), row in zip(statements, rows[2:], strict=True)]


class PostgresDatabase:
    """A PostgreSQL database reached by a few threads, each with its own connection."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(PG_THREADS, thread_name_prefix="pg")
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._breaker = Breaker()
        self._options = connect_options(conninfo_to_dict(url))
        self._cache = ReadCache(MAX_CACHED)  # pgcache.py: kept fresh by LISTEN/NOTIFY
        self._listener: ChangeListener | None = None
        self._pipeline = psycopg.Pipeline.is_supported()  # libpq >= 14
        self._group = GroupCommit(self._pool, self._run_batch, on_loop=self._batch_on_loop)
        self._loop_reads = LoopReads(self._loop_connection())  # pgloop.py
        self._loop_batches = LoopBatches(self._loop_connection())

    def _loop_connection(self) -> LoopConnection:
        return LoopConnection(self._connect_async, self._psycopg)

    def __repr__(self) -> str:
        return f"PostgresDatabase({_redact(self.url)!r})"

    def _connect(self) -> Any:
        self._refuse_if_failing()
        try:
            conn = self._open()
        except self._psycopg.OperationalError as exc:
            self._breaker.failed(time.monotonic(), str(exc).strip())
            raise
        self._breaker.succeeded()
        return conn

    async def _connect_async(self) -> Any:
        """An autocommit AsyncConnection for the event loop's work (pgloop.py); the database
        exists by then (a thread's connect made it at start-up)."""
        self._refuse_if_failing()
        try:
            connect = self._psycopg.AsyncConnection.connect
            conn = await connect(self.url, autocommit=True, **self._options)
        except self._psycopg.OperationalError as exc:
            self._breaker.failed(time.monotonic(), str(exc).strip())
            raise
        self._breaker.succeeded()
        return conn

    def _refuse_if_failing(self) -> None:
        refused = self._breaker.refuses(time.monotonic())
        if refused is not None:  # it failed a moment ago: do not make every request wait
            raise StorageUnavailable(f"postgresql (not retried for {RECONNECT_PAUSE} s): {refused}")

    def _open(self) -> Any:
        connect = self._psycopg.connect
        try:
            return connect(self.url, autocommit=True, **self._options)
        except self._psycopg.OperationalError as exc:
            # Each service owns its database, but a server (RDS) starts with only its default
            # one: create ours, once, then connect again. (A failed connect carries no SQLSTATE
            # in psycopg; the server's message for 3D000 is the one sign.)
            if "does not exist" not in str(exc) or not self._create_database():
                raise
            return connect(self.url, autocommit=True, **self._options)

    def _create_database(self) -> bool:
        """CREATE DATABASE for the database the URL (or libpq's PGDATABASE) names, if any."""
        from psycopg import sql
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        name = conninfo_to_dict(self.url).get("dbname") or os.environ.get("PGDATABASE")
        if not name:
            return False
        maintenance = make_conninfo(self.url, dbname=PG_MAINTENANCE_DATABASE)
        with self._psycopg.connect(maintenance, autocommit=True, **self._options) as conn:
            # Replicas starting together on a new server all get here: one at a time, and only
            # the first creates it (CREATE DATABASE cannot run in a transaction, so the lock is
            # the session's, released when the connection closes).
            conn.execute("SELECT pg_advisory_lock(%s)", (PG_CREATE_DATABASE_LOCK,))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(name))))
        return True

    def _conn(self) -> tuple[Any, bool]:
        """This thread's connection, replaced when stale (pgconn.stale); and whether it is new."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and not stale(conn):
            return conn, False
        if conn is not None:
            with self._lock:
                self._all.remove(conn)
            conn.close()
            self._local.conn = None
        conn = self._connect()
        self._local.conn, self._local.cursor, self._local.spare = conn, conn.cursor(), []
        with self._lock:
            self._all.append(conn)
        return conn, True

    def _call(self, fn: Callable[..., T], kw: dict[str, Any], begin: str | None) -> T:
        """`fn` on this thread's connection: in a transaction opened by `begin`, or (None) not."""
        try:
            return self._on_a_connection(fn, kw, begin)
        except CommitLost as exc:
            raise StorageUnavailable(f"postgresql: {exc}", outcome_unknown=True) from exc
        except self._psycopg.Error as exc:
            self._raise(exc)

    def _raise(self, exc: Exception) -> NoReturn:
        """Raise `exc` as the storage module's exception for it (`_translate`), if any."""
        translated = self._translate(exc)
        if translated is exc:
            raise exc
        raise translated from exc

    def _translate(self, exc: Exception) -> Exception:
        """The storage module's exception for one of psycopg's (others are returned as they are)."""
        if isinstance(exc, self._psycopg.errors.UniqueViolation):
            return unique_taken(f"postgresql: {str(exc).strip()}")
        if isinstance(exc, self._psycopg.OperationalError):
            return StorageUnavailable(f"postgresql: {str(exc).strip()}")
        return exc

    def _batch_on_loop(self, batch: list[Write]) -> Awaitable[list[Outcome]] | None:
        """A batch of single INSERTs runs on the event loop (pgloop.py); others: None."""
        statements = one_statements(batch) if self._pipeline else None
        if statements is None:
            return None
        return self._run_on_loop(
            batch, [(_PgConn._sql(sql), params, make) for sql, params, make in statements]
        )

    async def _run_on_loop(self, batch: list[Write], statements: list[Statement]) -> list[Outcome]:
        try:
            values = await self._loop_batches.run(statements)
        except CommitLost as exc:
            raise StorageUnavailable(f"postgresql: {exc}", outcome_unknown=True) from exc
        except self._psycopg.Error as exc:  # a connect or a COMMIT that failed: nothing written
            self._raise(exc)
        if values is HAND_OVER:  # nothing was committed: the thread runs it as it always did
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._run_batch, batch)
        return [(True, value) for value in values]

    def _run_batch(self, batch: list[Write]) -> list[Outcome]:
        """On a database thread: one transaction for the batch (groupcommit.py)."""
        statements = one_statements(batch) if self._pipeline else None
        if statements is not None:  # BEGIN goes in the writes' pipeline
            return self._call(self._apply, {"batch": batch, "statements": statements}, "")
        first = opening(batch)  # sent with BEGIN: one round trip less per batch
        begin = "BEGIN" if first is None else f"BEGIN; {first}"
        return self._call(self._apply, {"batch": batch, "statements": None}, begin)

    def _apply(
        self, conn: _PgConn, *, batch: list[Write], statements: list[Statement] | None
    ) -> list[Outcome]:
        together = None if statements is None else functools.partial(_together, conn, statements)
        return apply_each(batch, conn.plain, conn, self._translate, opened=True, together=together)

    def _on_a_connection(self, fn: Callable[..., T], kw: dict[str, Any], begin: str | None) -> T:
        conn, new = self._conn()
        try:
            return self._run(conn, fn, kw, begin)
        except self._psycopg.OperationalError:
            if new or not conn.broken:
                raise
        # A pooled connection the server had closed unnoticed (it died between the check and
        # the query): nothing was committed on it, so once more on a new one.
        conn, _ = self._conn()
        return self._run(conn, fn, kw, begin)

    def _run(self, conn: Any, fn: Callable[..., T], kw: dict[str, Any], begin: str | None) -> T:
        if begin is None:
            return fn(_PgConn(self._local.cursor), **kw)
        wrapped = _PgConn(self._local.cursor, self._local.spare)
        return run_transaction(conn, lambda: fn(wrapped, **kw), self._psycopg.OperationalError, begin)

    async def read(self, fn: Callable[..., T], /, **kw: Any) -> T:
        describe = ONE_READ.get(fn)
        if describe is not None:  # on the event loop, unless its connection is in use
            sql, params, make = describe(**kw)
            try:
                value = await self._loop_reads.read((_PgConn._sql(sql), params, make))
            except self._psycopg.Error as exc:
                self._raise(exc)
            if value is not BUSY:
                return value  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn, kw, None)

    async def write(self, fn: Callable[..., T], /, **kw: Any) -> T:
        try:
            result: T = await self._group.write(fn, kw)  # concurrent writes share a commit
            return result
        finally:  # before the write is acknowledged: this process reads it at once
            self._cache.changed()

    async def read_json(self, key: Hashable, fn: Callable[..., Any], /, **kw: Any) -> bytes | None:
        cache = self._cache
        body = cache.get(key)
        if body is not MISSING:
            return body  # type: ignore[no-any-return]
        if self._listener is None:
            self._listen(asyncio.get_running_loop())
        version = cache.version
        value = await self.read(fn, **kw)
        body = None if value is None else _encode(value)
        cache.put(key, body, version)
        return body  # type: ignore[no-any-return]

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        def report(trusted: bool | None) -> None:  # on the listener's thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                loop.call_soon_threadsafe(self._cache.changed, trusted)

        self._listener = ChangeListener(self._open, report)
        self._listener.start()

    def write_now(self, fn: Callable[..., T], /, **kw: Any) -> T:
        return self._call(fn, kw, "BEGIN")

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._loop_reads.connection.close()
        self._loop_batches.connection.close()
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def open_database(url: str) -> Database:
    """Open the database a (validated) `sqlite:///...` or `postgresql://...` URL names."""
    if url.startswith("sqlite:"):
        return SqliteDatabase(sqlite_path(url))
    return PostgresDatabase(url)


def redact(url: str) -> str:
    """`url` with its password hidden, for messages and logs."""
    return _redact(url)
