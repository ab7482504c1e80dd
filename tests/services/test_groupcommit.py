"""Group commit on SQLite: concurrent writes share a commit, each keeps its own all-or-nothing,
and each is answered only once the commit that holds it is done."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from microforum.services import store
from microforum.services.model import NewUser
from microforum.services.schema import migrate
from microforum.services.storage import Conflict, Conn, SqliteDatabase


def _create_then_fail(conn: Conn, *, name: str) -> None:
    store.create_user(conn, new=NewUser(name, name))
    raise RuntimeError("after the insert")


def test_concurrent_writes_share_commits_and_fail_alone(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    commits: list[int] = []
    db._writer.set_trace_callback(lambda sql: commits.append(1) if sql == "COMMIT" else None)

    async def main() -> list[object]:
        writes = [db.write(store.create_user, new=NewUser(f"u{n}", "U")) for n in range(20)]
        writes.insert(5, db.write(store.create_user, new=NewUser("finn", "taken")))
        writes.insert(9, db.write(_create_then_fail, name="ghost"))
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        results = asyncio.run(main())
        assert isinstance(results[5], Conflict) and isinstance(results[9], RuntimeError)
        made = [r for r in results if not isinstance(r, Exception)]
        assert len(made) == 20 and len({u.id for u in made}) == 20
        names = {u.username for u in asyncio.run(db.read(store.list_users))}
        assert {f"u{n}" for n in range(20)} <= names and "ghost" not in names
        assert 1 < len(commits) < 22  # shared: fewer commits than writes, more than one batch
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "users.db") as check:  # on disk, seen by another connection
        assert check.execute("SELECT count(*) FROM users WHERE username LIKE 'u%'").fetchone() == (20,)


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
