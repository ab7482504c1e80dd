"""Group commit on SQLite: concurrent writes share a commit, each keeps its own all-or-nothing,
and each is answered only once the commit that holds it is done."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from service_helpers import first_alone, refused_at_commit

from microforum.services import store
from microforum.services.groupcommit import Outcome, Write
from microforum.services.idempotency import create_keeping
from microforum.services.model import NewPost, NewUser, User
from microforum.services.schema import migrate
from microforum.services.storage import Conflict, Conn, PostgresDatabase, SqliteDatabase, StorageUnavailable


def _create_then_fail(conn: Conn, *, name: str) -> None:
    store.create_user(conn, new=NewUser(name, name))
    raise RuntimeError("after the insert")


def _mixed_writes(
    db: SqliteDatabase | PostgresDatabase,
    count: int,
    answered: Callable[[Awaitable[object], str], Awaitable[object]] = lambda write, _name: write,
) -> list[object]:
    """The results, in order, of `count` new users written at once with a taken name at index 5
    and a write that fails after its insert at index 9 (`answered` wraps each new user's write)."""

    async def main() -> list[object]:
        writes = [
            answered(db.write(store.create_user, new=NewUser(f"u{n}", "U")), f"u{n}") for n in range(count)
        ]
        writes.insert(5, db.write(store.create_user, new=NewUser("finn", "taken")))
        writes.insert(9, db.write(_create_then_fail, name="ghost"))
        return await first_alone(writes)

    results = asyncio.run(main())
    assert isinstance(results[5], Conflict) and isinstance(results[9], RuntimeError)
    return results


def test_concurrent_writes_share_commits_and_fail_alone(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    commits: list[int] = []
    db._writer.set_trace_callback(lambda sql: commits.append(1) if sql == "COMMIT" else None)

    try:
        results = _mixed_writes(db, 20)
        made = [r for r in results if not isinstance(r, Exception)]
        assert len(made) == 20 and len({u.id for u in made}) == 20
        names = {u.username for u in asyncio.run(db.read(store.list_users))}
        assert {f"u{n}" for n in range(20)} <= names and "ghost" not in names
        assert 1 < len(commits) < 22  # shared: fewer commits than writes, more than one batch
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "users.db") as check:  # on disk, seen by another connection
        assert check.execute("SELECT count(*) FROM users WHERE username LIKE 'u%'").fetchone() == (20,)


def test_writes_asked_in_one_turn_of_the_loop_share_one_transaction(tmp_path: Path) -> None:
    """The batch is taken one turn of the event loop after the first write, when every write
    asked in the same turn has queued."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    before = db._group.batches

    async def main() -> list[User]:
        return await asyncio.gather(
            *(db.write(store.create_user, new=NewUser(f"t{n}", "T")) for n in range(10))
        )

    try:
        made = asyncio.run(main())
        assert [u.username for u in made] == [f"t{n}" for n in range(10)]
        assert db._group.batches == before + 1
    finally:
        db.close()


def test_a_batch_is_taken_one_turn_after_its_first_write_for_the_writes_of_requests_received(
    tmp_path: Path,
) -> None:
    """One write queued, three more asked in the next turn of the loop (requests received
    meanwhile): all four share one transaction, where the first would have gone alone."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    before = db._group.batches

    async def main() -> list[User]:
        first = asyncio.ensure_future(db.write(store.create_user, new=NewUser("l0", "L")))
        await asyncio.sleep(0)  # the first write queued, the group's task about to run
        assert db._group.running
        others = [db.write(store.create_user, new=NewUser(f"l{n}", "L")) for n in range(1, 4)]
        return await asyncio.gather(first, *others)

    try:
        made = asyncio.run(main())
        assert [u.username for u in made] == [f"l{n}" for n in range(4)]
        assert db._group.batches == before + 1
    finally:
        db.close()


def test_a_failed_commit_fails_every_write_in_it(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    blocker = sqlite3.connect(tmp_path / "users.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: BEGIN IMMEDIATE times out
    db._writer.execute("PRAGMA busy_timeout = 50")

    async def main() -> list[object]:
        writes = [db.write(store.create_user, new=NewUser(f"b{n}", "B")) for n in range(3)]
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = asyncio.run(main())
        assert all(type(r).__name__ == "StorageUnavailable" for r in results), results
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        db.close()


@pytest.mark.parametrize("count", [1, 100])
def test_batches_of_any_size_answer_in_order(tmp_path: Path, count: int) -> None:
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")

    async def main() -> list[object]:
        return await asyncio.gather(
            *(db.write(store.create_user, new=NewUser(f"o{n}", "O")) for n in range(count))
        )

    try:
        made = asyncio.run(main())
        assert [u.username for u in made] == [f"o{n}" for n in range(count)]  # type: ignore[attr-defined]
    finally:
        db.close()


# --- PostgreSQL: the same batching core (groupcommit.py), BEGIN/COMMIT by hand ---------------


def _pg_usernames(url: str, pattern: str) -> set[str]:
    """The usernames like `pattern`, seen through a connection of the test's own."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT username FROM users WHERE username LIKE %s", (pattern,))
        return {name for (name,) in rows}


@pytest.mark.postgres
def test_postgres_writes_share_commits_each_seen_once_acknowledged(postgres) -> None:
    url = postgres.create_database()
    db = PostgresDatabase(url)
    migrate(db, "users")
    unseen: list[str] = []

    async def write_then_look(write: Awaitable[object], name: str) -> object:
        result = await write
        if name not in _pg_usernames(url, name):  # committed before it was answered
            unseen.append(name)
        return result

    try:
        results = _mixed_writes(db, 40, write_then_look)
        made = [r for r in results if not isinstance(r, Exception)]
        assert len(made) == 40 and len({u.id for u in made}) == 40  # type: ignore[attr-defined]
        assert unseen == []
        assert _pg_usernames(url, "u%") == {f"u{n}" for n in range(40)}
        assert _pg_usernames(url, "ghost") == set()  # rolled back to its savepoint alone
        assert 1 < db._group.batches < 42  # shared: fewer transactions than writes
    finally:
        db.close()


@pytest.mark.postgres
def test_postgres_a_failed_commit_fails_every_write_in_its_batch(postgres) -> None:
    """COMMIT refused by the server (a deferred check, as a full disk would): every write of
    that batch is told the database is unavailable and nothing of it is applied."""
    url = postgres.create_database()
    db = PostgresDatabase(url)
    migrate(db, "users")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(refused_at_commit("users", "username"))

    async def main() -> list[object]:
        # The first write is a batch alone; the next five queue meanwhile and share the second.
        names = ["first", "b1", "b2", "poison", "b3", "b4"]
        writes = [db.write(store.create_user, new=NewUser(name, "B")) for name in names]
        return await first_alone(writes)

    try:
        results = asyncio.run(main())
        assert not isinstance(results[0], Exception)
        assert all(isinstance(r, StorageUnavailable) for r in results[1:]), results
        assert all(not r.outcome_unknown for r in results[1:])  # type: ignore[union-attr]
        assert _pg_usernames(url, "b%") | _pg_usernames(url, "poison") == set()
        assert _pg_usernames(url, "first") == {"first"}
        again = asyncio.run(main_after(db))  # the connection is usable afterwards
        assert again.username == "after"
    finally:
        db.close()


async def main_after(db: PostgresDatabase) -> User:
    user: User = await db.write(store.create_user, new=NewUser("after", "A"))
    return user


# --- SQLite: batches committed on the event loop (their flush: test_walsync.py) -------------


@pytest.mark.timeout(60, method="thread")  # the loop stuck in C: a signal would wait
def test_the_loop_never_waits_for_another_connections_write_lock(tmp_path: Path) -> None:
    """Another process holds the lock; the loop releases it a moment later. Had the loop waited
    on the busy timeout (10 minutes here) in BEGIN, the release could not run: the test would
    time out."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    db._writer.execute("PRAGMA busy_timeout = 600000")
    blocker = sqlite3.connect(tmp_path / "users.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")

    async def main() -> User:
        asyncio.get_running_loop().call_later(0.05, blocker.execute, "COMMIT")
        return await db.write(store.create_user, new=NewUser("waiter", "W"))

    try:
        assert asyncio.run(main()).username == "waiter"
        assert db._writer.execute("PRAGMA busy_timeout").fetchone() == (600000,)  # set back
    finally:
        blocker.close()
        db.close()


def test_a_commit_that_fails_fails_every_write_of_its_batch(tmp_path: Path) -> None:
    """A deferred foreign key is checked at COMMIT: the batch's commit fails, no write stays."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    db._writer.execute("PRAGMA foreign_keys = ON")
    db._writer.execute(
        "CREATE TABLE badge (user_id INTEGER REFERENCES users (id) DEFERRABLE INITIALLY DEFERRED)"
    )

    def _orphan_badge(conn: Conn, *, name: str) -> None:
        store.create_user(conn, new=NewUser(name, name))
        conn.run("INSERT INTO badge (user_id) VALUES (999999)")

    async def main() -> list[object]:
        writes = [db.write(store.create_user, new=NewUser(f"f{n}", "F")) for n in range(3)]
        writes.append(db.write(_orphan_badge, name="orphan"))
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = asyncio.run(main())
        assert all(isinstance(r, Conflict) for r in results[1:]), results
        names = {u.username for u in asyncio.run(db.read(store.list_users))}
        assert not {"f1", "f2", "orphan"} & names
    finally:
        db.close()


def test_a_large_batch_keeps_its_savepoints_journal_in_memory(tmp_path: Path) -> None:
    """40 writes nest 40 savepoints; their journal must not spill to a temporary file (opened,
    written and deleted per batch). Seen from inside the batch: the process's open files."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    open_files: set[str] = set()

    def _look(conn: Conn, *, name: str) -> None:
        store.create_user(conn, new=NewUser(name, name))
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                open_files.add(os.readlink(f"/proc/self/fd/{fd}"))

    async def main() -> None:
        await asyncio.gather(*(db.write(_look, name=f"j{n}") for n in range(40)))

    try:
        asyncio.run(main())
    finally:
        db.close()
    # SQLite names its temporary files etilqs_* (its SQLITE_TEMP_FILE_PREFIX).
    assert open_files and not [f for f in open_files if "etilqs" in f], open_files


class _SaidOn:
    """A psycopg connection that records the statements run on it (not on its cursors)."""

    def __init__(self, conn: object) -> None:
        self.conn = conn
        self.said: list[str] = []

    def execute(self, sql: str, *args: object, **kwargs: object) -> object:
        self.said.append(sql)
        return self.conn.execute(sql, *args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.conn, name)


@pytest.mark.postgres
def test_postgres_a_batch_opens_with_its_savepoint_in_one_round_trip(postgres) -> None:
    """BEGIN and the batch's savepoint go to the server together, as one statement string."""
    db = PostgresDatabase(postgres.create_database())
    migrate(db, "users")
    try:
        db._conn()  # this thread's connection, then watched
        spy = _SaidOn(db._local.conn)
        db._local.conn = spy
        batch = [(store.create_user, {"new": NewUser(f"r{n}", "R")}) for n in range(3)]
        outcomes = db._run_batch(batch)  # what a database thread runs for a batch
        assert [ok for ok, _ in outcomes] == [True, True, True]
        assert spy.said == ["BEGIN; SAVEPOINT batch", "COMMIT"]
        names = {u.username for u in asyncio.run(db.read(store.list_users))}
        assert {"r0", "r1", "r2"} <= names
    finally:
        db.close()


def _round_trips(trace: Path) -> list[str]:
    """What the client asked the server to answer, from a libpq protocol trace: each simple
    query and each Sync (the end of an extended-protocol exchange) is one round trip."""
    said = []
    for line in trace.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) > 2 and fields[0] == "F" and fields[2] in ("Query", "Sync"):
            said.append(fields[2] if fields[2] == "Sync" else fields[3].strip(' "'))
    return said


def _traced_batch(
    db: PostgresDatabase, batch: list[Write], trace_path: Path
) -> tuple[list[str], list[Outcome]]:
    """Run `batch` on this thread's connection (`_run_batch`) under a libpq protocol trace: the
    round trips it took (`_round_trips`) and its outcomes."""
    import psycopg

    conn = db._local.conn
    with open(trace_path, "w") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        outcomes = db._run_batch(batch)
        conn.pgconn.untrace()
    return _round_trips(trace_path), outcomes


@pytest.mark.postgres
def test_postgres_a_batch_of_inserts_is_sent_in_one_round_trip(postgres, tmp_path: Path) -> None:
    """A batch whose writes are each one statement (store.ONE_STATEMENT) sends them all in
    one pipeline with its BEGIN and savepoint (one round trip), then COMMIT."""

    db = PostgresDatabase(postgres.create_database())
    migrate(db, "posts")
    batch = [(store.create_post, {"new": NewPost(1, f"p{n}", 1)}) for n in range(4)]
    try:
        db._run_batch(batch)  # prepares the statements: the trace is of a warm connection
        said, outcomes = _traced_batch(db, batch, tmp_path / "trace")
        assert [(ok, post.text) for ok, post in outcomes] == [(True, f"p{n}") for n in range(4)]
        assert said == ["Sync", "COMMIT"]  # BEGIN in the pipeline
        texts = [p.text for p in asyncio.run(db.read(store.list_posts))]
        assert texts[-8:] == [f"p{n}" for n in range(4)] * 2
    finally:
        db.close()


@pytest.mark.postgres
def test_postgres_creates_as_the_routes_send_them_are_pipelined(postgres, tmp_path: Path) -> None:
    """Posts created as `lifecycle.create` writes them (`create_keeping`, no Idempotency-Key)
    go in one pipeline too; with a key (three statements each) they do not, and all commit."""

    db = PostgresDatabase(postgres.create_database())
    migrate(db, "posts")

    def creating(n: int, key: str | None) -> Write:
        fields = {"new": NewPost(1, f"p{n}", 1), "now": 1.0e9}
        kw = {"create": store.create_post, "fields": fields, "table": "posts", "key": key, "fingerprint": "f"}
        return (create_keeping, {**kw, "location": lambda post: f"/api/posts/{post.id}", "now": 1.0e9})

    def traced(batch: list[Write]) -> tuple[list[str], list[tuple[bool, str]]]:
        said, outcomes = _traced_batch(db, batch, tmp_path / "trace")
        return said, [(ok, post.text) for ok, post in outcomes]

    try:
        db._run_batch([creating(n, None) for n in range(4)])  # a warm connection
        written = [(True, f"p{n}") for n in range(4)]
        assert traced([creating(n, None) for n in range(4)]) == (["Sync", "COMMIT"], written)
        keyed, outcomes = traced([creating(n, f"k{n}") for n in range(4)])
        assert len(keyed) > 2 and keyed[-1] == "COMMIT" and outcomes == written
        assert len(asyncio.run(db.read(store.list_posts))) >= 12
    finally:
        db.close()


@pytest.mark.postgres
def test_postgres_a_failing_insert_of_a_pipelined_batch_fails_alone(postgres) -> None:
    """One INSERT of a pipelined batch refused by the server: that write alone fails, the
    others are committed (the batch runs again, each write in its own savepoint)."""
    url = postgres.create_database()
    db = PostgresDatabase(url)
    migrate(db, "posts")
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE posts ADD CONSTRAINT no_bad CHECK (text <> 'bad')")
    batch = [(store.create_post, {"new": NewPost(1, text, 1)}) for text in ("a", "bad", "c")]
    try:
        outcomes = db._run_batch(batch)
        assert [ok for ok, _ in outcomes] == [True, False, True]
        assert isinstance(outcomes[1][1], psycopg.errors.CheckViolation)
        texts = {p.text for p in asyncio.run(db.read(store.list_posts))}
        assert {"a", "c"} <= texts and "bad" not in texts
    finally:
        db.close()
