"""Cached read answers follow every write, from any connection of any process.

SQLite: the answers of the original read routes are cached under the wal-index header
(`walindex.WalIndex`); these tests write from other processes (another replica, a plain
`sqlite3` client) and read again. PostgreSQL's cache follows LISTEN/NOTIFY (test_pgcache.py);
the same replica transcript runs on it so that both stay honest.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from service_helpers import Service, serving

from microforum.services import store
from microforum.services.schema import migrate
from microforum.services.storage import SqliteDatabase
from microforum.services.walindex import WAL_HEADER_BYTES, WalIndex

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _write_elsewhere(db_path: Path, *statements: str) -> None:
    """Run `statements` in another process, as another replica or an operator would."""
    script = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=5)\n"
        "for sql in sys.argv[2:]:\n"
        "    conn.execute(sql)\n"
        "conn.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(db_path), *statements], check=True, timeout=30)


@pytest.fixture
def posts_db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    """The posts database on a fresh SQLite file, seeded."""
    db = SqliteDatabase(str(tmp_path / "posts.db"))
    migrate(db, "posts")
    yield db
    db.close()


def _in_thread(db: SqliteDatabase, thread: int) -> bytes | None:
    return asyncio.run(db.read_json(("in-thread", thread), store.list_posts, thread=thread))


# --- the wal-index header ---------------------------------------------------------------------

SHM_DMS_BYTE = 128  # SQLite's "dead man switch" lock in the -shm file (os_unix.c UNIX_SHM_DMS)


def _dms_lock_free(db_path: str) -> bool:
    """Whether another process could lock the -shm file's DMS byte exclusively: then no
    connection of ours holds its shared lock any more, and SQLite elsewhere would re-initialise
    the wal-index under our feet."""
    script = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, db_path + "-shm", str(SHM_DMS_BYTE)], timeout=30)
    return run.returncode == 0


def test_reading_the_header_keeps_sqlites_own_locks(tmp_path: Path) -> None:
    # Closing any descriptor of a file drops the process's POSIX locks on it: opening and
    # closing wal-indexes must never release the lock SQLite's open connections hold.
    first = SqliteDatabase(str(tmp_path / "posts.db"))
    migrate(first, "posts")
    try:
        assert not _dms_lock_free(first.path)  # the connections hold it (the test can tell)
        second = SqliteDatabase(first.path)  # a second user of the same file, then gone
        assert _in_thread(second, 2) is not None
        second.close()
        assert _in_thread(first, 2) is not None
        assert not _dms_lock_free(first.path)
    finally:
        first.close()


def test_the_header_changes_with_every_commit_and_only_then(posts_db: SqliteDatabase) -> None:
    wal = WalIndex.open(posts_db.path)
    assert wal is not None
    try:
        first = wal.version()
        assert first is not None and len(first) == WAL_HEADER_BYTES
        _in_thread(posts_db, 2)
        assert wal.version() == first  # a read commits nothing
        posts_db.write_now(store.update_post, post_id=3, text="changed here")
        second = wal.version()
        assert second != first
        _write_elsewhere(Path(posts_db.path), "UPDATE posts SET text = 'changed there' WHERE id = 3")
        third = wal.version()
        assert third not in (first, second)
        # A checkpoint copies the log into the file (the content stays); the next write
        # restarts the log, which must still read as a change.
        _write_elsewhere(
            Path(posts_db.path),
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "UPDATE posts SET text = 'after a checkpoint' WHERE id = 3",
        )
        assert wal.version() not in (first, second, third)
    finally:
        wal.close()


def test_a_database_without_a_wal_index_has_none(tmp_path: Path) -> None:
    path = tmp_path / "rollback.db"
    _write_elsewhere(path, "PRAGMA journal_mode = DELETE", "CREATE TABLE t (a)")
    assert WalIndex.open(str(path)) is None


def _fake_shm(tmp_path: Path, first: bytes, second: bytes) -> str:
    """A database path whose `-shm` file starts with these two header copies."""
    (tmp_path / "x.db-shm").write_bytes(first + second + bytes(32768 - 2 * WAL_HEADER_BYTES))
    return str(tmp_path / "x.db")


HEADER = (3007000).to_bytes(4, sys.byteorder) + bytes(8) + b"\x01" + bytes(35)  # isInit = 1


@pytest.mark.parametrize(
    ("second", "version"),
    [
        (HEADER, HEADER),
        (HEADER[:-1] + b"\x07", None),  # a writer is between the two copies: no whole header
        (HEADER[:12] + b"\x00" + HEADER[13:], None),  # not initialised (being recovered)
    ],
    ids=["whole", "torn", "uninitialised"],
)
def test_only_a_whole_initialised_header_is_a_version(
    tmp_path: Path, second: bytes, version: bytes | None
) -> None:
    first = second if second[12] == 0 else HEADER
    wal = WalIndex.open(_fake_shm(tmp_path, first, second))
    assert wal is not None
    try:
        assert wal.version() == version
    finally:
        wal.close()


def test_an_unknown_wal_index_format_is_not_used(tmp_path: Path) -> None:
    other = (3007001).to_bytes(4, sys.byteorder) + HEADER[4:]
    assert WalIndex.open(_fake_shm(tmp_path, other, other)) is None


# --- the cache of one database ----------------------------------------------------------------


def test_a_cached_answer_follows_a_write_from_another_process(posts_db: SqliteDatabase) -> None:
    before = _in_thread(posts_db, 2)
    assert before is not None and b"Mathematical!" in before
    assert _in_thread(posts_db, 2) is before  # answered from the cache
    _write_elsewhere(Path(posts_db.path), "UPDATE posts SET text = 'Algebraic!' WHERE id = 4")
    after = _in_thread(posts_db, 2)
    assert after is not None and b"Algebraic!" in after and b"Mathematical!" not in after
    _write_elsewhere(Path(posts_db.path), "DELETE FROM posts WHERE thread = 2")
    assert _in_thread(posts_db, 2) == b"[]"


def test_a_cached_answer_follows_this_process_writes(posts_db: SqliteDatabase) -> None:
    assert _in_thread(posts_db, 2) is not None
    asyncio.run(posts_db.write(store.delete_post, post_id=4))
    assert b"Mathematical!" not in (_in_thread(posts_db, 2) or b"")


def test_without_a_wal_index_the_cache_asks_sqlite(posts_db: SqliteDatabase) -> None:
    """The fallback (`PRAGMA data_version`) keeps the same promise."""
    assert posts_db._wal is not None
    posts_db._wal.close()
    posts_db._wal = None
    assert _in_thread(posts_db, 2) is _in_thread(posts_db, 2)
    _write_elsewhere(Path(posts_db.path), "UPDATE posts SET text = 'Algebraic!' WHERE id = 4")
    assert b"Algebraic!" in (_in_thread(posts_db, 2) or b"")


# --- replicas: two processes on one database --------------------------------------------------


def _replicas_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    if backend == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres").create_database()}


READS = [
    "/api/posts/in-thread/2",
    "/api/posts/by-user/2",
    "/api/posts",
    "/api/threads/2",
    "/api/users/2",
    "/api/threads",
    "/api/users",
    "/api/posts/3",
]


def _notified(replica: Service, backend: str, path: str, seen: Callable[[object], bool]) -> None:
    """On PostgreSQL a replica's cache empties when the change notification arrives (docs/store.md:
    milliseconds, not at once): wait until `replica` answers `path` as `seen` expects, for at
    most 5 s, after which the strict assertions that follow fail. SQLite needs no wait."""
    deadline = time.monotonic() + 5
    while backend == "postgres" and not seen(replica.get(path).json) and time.monotonic() < deadline:
        time.sleep(0.01)


def _warm(*replicas: Service) -> None:
    for replica in replicas:
        for path in READS:
            replica.get(path)
            replica.get(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_replicas_read_each_others_writes_on_every_original_route(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    env = _replicas_env(request, backend)
    with serving("monolith", tmp_path, env) as a, serving("monolith", tmp_path, env) as b:
        _warm(a, b)
        made = a.call("POST", "/api/posts", {"thread": 2, "text": "Oh my glob", "user": 2})
        assert made.status == 201
        _notified(b, backend, "/api/posts", lambda posts: posts[-1] == made.json)  # type: ignore[index]
        for replica in (a, b):
            assert replica.get("/api/posts/in-thread/2").json[-1] == made.json
            assert replica.get("/api/posts/by-user/2").json[-1] == made.json
            assert replica.get("/api/posts").json[-1] == made.json
        _warm(a, b)
        assert b.call("PATCH", "/api/posts/3", {"text": "Come party!"}).status == 200
        assert b.call("PATCH", "/api/threads/2", {"title": "Candy party"}).status == 200
        assert b.call("PATCH", "/api/users/2", {"bio": "Hero"}).status == 200
        _notified(a, backend, "/api/users/2", lambda user: user["bio"] == "Hero")  # type: ignore[index]
        for replica in (a, b):
            assert replica.get("/api/posts/in-thread/2").json[0]["text"] == "Come party!"
            assert replica.get("/api/posts/3").json["text"] == "Come party!"
            assert replica.get("/api/threads/2").json["title"] == "Candy party"
            assert replica.get("/api/threads").json[1]["title"] == "Candy party"
            assert replica.get("/api/users/2").json["bio"] == "Hero"
            assert replica.get("/api/users").json[1]["bio"] == "Hero"
        _warm(a, b)
        assert a.call("DELETE", f"/api/posts/{made.json['id']}").status == 204
        _notified(b, backend, "/api/posts/in-thread/2", lambda posts: made.json not in posts)  # type: ignore[operator]
        for replica in (a, b):
            assert made.json not in replica.get("/api/posts/in-thread/2").json
            assert replica.get(f"/api/posts/{made.json['id']}").status == 404


def test_replicas_read_a_write_made_outside_the_service(tmp_path: Path) -> None:
    with serving("posts", tmp_path) as a, serving("posts", tmp_path) as b:
        _warm(a, b)
        _write_elsewhere(tmp_path / "posts.db", "UPDATE posts SET text = 'Algebraic!' WHERE id = 4")
        for replica in (a, b):
            for path in ("/api/posts/in-thread/2", "/api/posts/by-user/2", "/api/posts"):
                texts = {post["id"]: post["text"] for post in replica.get(path).json}
                assert texts[4] == "Algebraic!", path
