"""PostgreSQL work on the event loop (services/pgloop.py): the reads that decide whether a record
may be referred to, and batches of post inserts, on connections of the loop's own; anything
unusual handed to the database threads, which run it as they always did."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable
from typing import Any

import psycopg
import pytest
from service_helpers import first_alone, refused_at_commit

from microforum.services import store
from microforum.services.idempotency import create_keeping
from microforum.services.model import NewPost, NewUser
from microforum.services.pgconn import RECONNECT_PAUSE
from microforum.services.schema import migrate
from microforum.services.storage import ONE_READ, PG_THREADS, PostgresDatabase, StorageUnavailable

pytestmark = pytest.mark.postgres

NOW = 1.8e9


def _database(url: str, resource: str, *then: str) -> PostgresDatabase:
    """The resource's tables in the database at `url`, then the statements `then` run there."""
    db = PostgresDatabase(url)
    migrate(db, resource)
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in then:
            conn.execute(sql)
    return db


def _post(db: PostgresDatabase, text: str) -> Awaitable[Any]:
    """A post created as the route creates it (`lifecycle.create`, no Idempotency-Key)."""
    fields = {"new": NewPost(1, text, 1), "now": NOW}
    return db.write(create_keeping, create=store.create_post, fields=fields, table="posts", key=None,
                    fingerprint="", location=str, now=NOW)  # fmt: skip


async def _posts(db: PostgresDatabase, texts: list[str]) -> list[Any]:
    """Write them at once: the first is a batch alone (a thread's), the others share the next."""
    return await first_alone([_post(db, text) for text in texts])


def _usable_on_the_loop(db: PostgresDatabase) -> None:
    """After a failed batch: the next one is written, on the loop, as one batch."""
    before = db._loop_batches.batches
    again = asyncio.run(_posts(db, ["after0", "after1", "after2"]))
    assert [p.text for p in again] == ["after0", "after1", "after2"]
    assert db._loop_batches.batches == before + 1


def _texts(url: str, pattern: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {text for (text,) in conn.execute("SELECT text FROM posts WHERE text LIKE %s", (pattern,))}


def _blocking_every_thread(db: PostgresDatabase) -> threading.Event:
    """Occupy every database thread until the returned event is set."""
    release = threading.Event()
    for _ in range(PG_THREADS):
        db._pool.submit(release.wait, 30)
    return release


def test_referable_reads_run_on_the_event_loop(postgres) -> None:
    db = _database(postgres.create_database(), "users")
    release = _blocking_every_thread(db)

    async def main() -> tuple[Any, Any]:
        found = await asyncio.wait_for(db.read(store.referable_user, user_id=1), 20)
        missing = await asyncio.wait_for(db.read(store.referable_user, user_id=10_000), 20)
        return found, missing

    try:
        found, missing = asyncio.run(main())  # answered while no thread could have
        assert found.id == 1 and missing is None
        assert db._loop_reads.reads == 2
    finally:
        release.set()
        db.close()


def test_reads_asked_while_the_loop_connection_is_busy_go_to_the_threads(postgres) -> None:
    db = _database(postgres.create_database(), "users")

    async def main() -> list[Any]:
        made = [await db.write(store.create_user, new=NewUser(f"r{n}", "R")) for n in range(6)]
        reads = [db.read(store.referable_user, user_id=user.id) for user in made]
        return [made, await asyncio.gather(*reads)]

    try:
        made, read = asyncio.run(main())
        assert [u.username for u in read] == [u.username for u in made]
        assert 1 <= db._loop_reads.reads < 6  # one on the loop at a time, the others on threads
    finally:
        db.close()


def test_a_cancelled_loop_read_closes_its_connection_and_the_next_one_works(postgres) -> None:
    db = _database(postgres.create_database(), "users")

    async def main() -> Any:
        await db.read(store.referable_user, user_id=1)  # the connection is open
        asked = asyncio.ensure_future(db.read(store.referable_user, user_id=1))
        await asyncio.sleep(0)  # sent, its answer not read yet
        asked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asked
        assert db._loop_reads.connection.conn is None  # its answer may still come: closed
        return await db.read(store.referable_user, user_id=2)

    try:
        assert asyncio.run(main()).id == 2
        assert db._loop_reads.reads == 2
    finally:
        db.close()


def test_batches_of_post_inserts_commit_on_the_event_loop(postgres) -> None:
    url = postgres.create_database()
    db = _database(url, "posts")
    unseen: list[str] = []

    async def main() -> list[Any]:
        async def written_then_seen(text: str) -> Any:
            post = await _post(db, text)
            if text not in _texts(url, text):  # committed before it was answered
                unseen.append(text)
            return post

        return await asyncio.gather(*(written_then_seen(f"loop{n}") for n in range(12)))

    try:
        posts = asyncio.run(main())
        assert [p.text for p in posts] == [f"loop{n}" for n in range(12)]
        assert len({p.id for p in posts}) == 12 and unseen == []
        assert db._loop_batches.batches >= 1
    finally:
        db.close()


def test_a_failing_insert_hands_its_batch_to_a_thread_where_it_fails_alone(postgres) -> None:
    url = postgres.create_database()
    db = _database(url, "posts", "ALTER TABLE posts ADD CONSTRAINT no_bad CHECK (text <> 'bad')")

    try:
        results = asyncio.run(_posts(db, ["xfirst", "xa", "bad", "xc"]))
        assert isinstance(results[2], psycopg.errors.CheckViolation)
        assert [r.text for n, r in enumerate(results) if n != 2] == ["xfirst", "xa", "xc"]
        assert _texts(url, "x%") | _texts(url, "bad") == {"xfirst", "xa", "xc"}
        assert db._loop_batches.handed_over == 1  # tried on the loop, run again on a thread
        assert db._loop_batches.batches == 0
        _usable_on_the_loop(db)  # rolled back: the next batch runs there again
    finally:
        db.close()


def test_a_commit_refused_on_the_loop_fails_every_write_of_its_batch(postgres) -> None:
    url = postgres.create_database()
    db = _database(url, "posts", refused_at_commit("posts", "text"))

    try:
        results = asyncio.run(_posts(db, ["xfirst", "xb1", "poison", "xb2"]))
        assert results[0].text == "xfirst"
        assert all(isinstance(r, StorageUnavailable) and not r.outcome_unknown for r in results[1:])
        assert _texts(url, "x%") | _texts(url, "poison") == {"xfirst"}
        assert db._loop_batches.handed_over == 0  # a refused COMMIT is not run again
        assert db._loop_batches.batches == 0  # nor counted as done
        _usable_on_the_loop(db)
    finally:
        db.close()


def test_the_loop_connections_are_replaced_after_a_server_restart(own_postgres) -> None:
    url = own_postgres.create_database()
    posts, users = _database(url, "posts"), _database(own_postgres.create_database(), "users")

    async def round_of(tag: str) -> tuple[list[Any], Any]:
        made = await _posts(posts, [f"{tag}{n}" for n in range(5)])
        return made, await users.read(store.referable_user, user_id=1)

    try:
        assert asyncio.run(round_of("before"))[1].id == 1
        assert posts._loop_batches.connection.conn is not None
        assert users._loop_reads.connection.conn is not None
        own_postgres.stop()
        down = asyncio.run(_posts(posts, ["down0", "down1", "down2"]))
        assert all(isinstance(r, StorageUnavailable) for r in down), down
        with pytest.raises(StorageUnavailable):
            asyncio.run(users.read(store.referable_user, user_id=1))
        own_postgres.start()
        time.sleep(RECONNECT_PAUSE)  # the connects that failed are not retried for this long
        made, user = asyncio.run(round_of("after"))  # no failure: stale connections replaced
        assert [p.text for p in made] == [f"after{n}" for n in range(5)] and user.id == 1
        assert _texts(url, "down%") == set()
    finally:
        posts.close()
        users.close()


def _slow(conn: Any, *, seconds: float) -> Any:
    return conn.one("SELECT pg_sleep(?)", (seconds,))


def test_a_loop_read_whose_connection_breaks_under_it_runs_again_on_a_new_one(postgres, monkeypatch) -> None:
    """The server ends the loop connection's session while a read is on it (a restart, a
    failover): the read runs once more on a new connection and is answered."""
    url = postgres.create_database()
    db = _database(url, "users")
    monkeypatch.setitem(
        ONE_READ, _slow, lambda *, seconds: ("SELECT pg_sleep(?)", (seconds,), lambda row: "slept")
    )

    async def main() -> Any:
        await db.read(store.referable_user, user_id=1)  # the loop's connection is open
        asked = asyncio.ensure_future(db.read(_slow, seconds=0.5))
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(100):  # until the read is on the server, then end its session
                ended = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE query LIKE 'SELECT pg_sleep%%' AND pid <> pg_backend_pid()"
                ).fetchall()
                if ended:
                    break
                await asyncio.sleep(0.02)
        return ended, await asyncio.wait_for(asked, 20)

    try:
        ended, answer = asyncio.run(main())
        assert ended == [(True,)] and answer == "slept"
        assert db._loop_reads.reads == 2
    finally:
        db.close()
