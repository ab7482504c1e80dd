"""Storage functions: keyword-only, one SQL statement or a short transaction each.

Each takes a `Conn` first and runs under `Database.read` or `Database.write`. Lists are in id
order (the original order of the seed data) and take a keyset cursor: `after` is the last id
already seen, so a page is stable while rows are added or removed elsewhere.

Writes stamp `created_at`/`updated_at` with `now` (epoch seconds, the caller's clock). A
change may carry `expect`, called with the current record inside the transaction before
anything is changed (the HTTP layer's If-Match); whatever it raises undoes the transaction.
Users and threads are deleted in two steps (`begin_delete`, then `finish_delete` or
`cancel_delete`): docs/consistency.md says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from microforum.services.model import NewPost, NewThread, NewUser, Post, Thread, User
from microforum.services.storage import ONE_READ, ONE_STATEMENT, Conflict, Conn, Row, Statement

USER_COLUMNS = "id, username, name, bio, created_at, updated_at"
THREAD_COLUMNS = "id, title, created_by, created_at, updated_at"
POST_COLUMNS = "thread, text, user_id, id, created_at, updated_at"
Expect = Callable[[Any], None] | None
# A record whose delete is in progress: it may not be referred to until `deleting_until`.
REFERABLE = "(deleting_until IS NULL OR deleting_until < ?)"


def stamp(now: float | None = None) -> str:
    """`now` (epoch seconds; the present when None) in RFC 3339, UTC, to the millisecond."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _for_update(conn: Conn) -> str:
    """Row lock for a read-then-write (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    return " FOR UPDATE" if conn.dialect == "postgresql" else ""


def _page(sql: str, params: tuple[Any, ...], limit: int | None) -> tuple[str, tuple[Any, ...]]:
    if limit is None:
        return sql + " ORDER BY id", params
    return sql + " ORDER BY id LIMIT ?", (*params, limit)


# --- users ----------------------------------------------------------------------------------


def list_users(conn: Conn, *, after: int = 0, limit: int | None = None) -> list[User]:
    """Users with id > `after`, by id, at most `limit`."""
    sql, params = _page(f"SELECT {USER_COLUMNS} FROM users WHERE id > ?", (after,), limit)
    return [User(*row) for row in conn.all(sql, params)]


def get_user(conn: Conn, *, user_id: int, lock: bool = False) -> User | None:
    """The user with this id, or None (`lock`: locked until the transaction ends)."""
    suffix = _for_update(conn) if lock else ""
    row = conn.one(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?{suffix}", (user_id,))
    return User(*row) if row else None


def _username_free(conn: Conn, username: str, user_id: int = 0) -> None:
    row = conn.one("SELECT id FROM users WHERE lower(username) = lower(?) AND id <> ?", (username, user_id))
    if row:
        raise Conflict(f"username {username!r} is taken")


def create_user(conn: Conn, *, new: NewUser, now: float | None = None) -> User:
    """Insert a user; Conflict when the username is taken (ignoring case)."""
    _username_free(conn, new.username)
    at = stamp(now)
    row = conn.one(
        "INSERT INTO users (username, name, bio, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
        f" RETURNING {USER_COLUMNS}",
        (new.username, new.name, new.bio, at, at),
    )
    assert row is not None
    return User(*row)


def update_user(
    conn: Conn,
    *,
    user_id: int,
    changes: dict[str, Any],
    now: float | None = None,
    expect: Expect = None,
) -> User | None:
    """Change some of a user's fields; None when there is no such user."""
    current = get_user(conn, user_id=user_id, lock=True)
    if current is None:
        return None
    if expect is not None:
        expect(current)
    merged = {"username": current.username, "name": current.name, "bio": current.bio, **changes}
    if merged["username"] != current.username:
        _username_free(conn, merged["username"], user_id)
    row = conn.one(
        f"UPDATE users SET username = ?, name = ?, bio = ?, updated_at = ? WHERE id = ?"
        f" RETURNING {USER_COLUMNS}",
        (merged["username"], merged["name"], merged["bio"], stamp(now), user_id),
    )
    return User(*row) if row else None


def referable_user(conn: Conn, *, user_id: int, now: float | None = None) -> User | None:
    """The user, if it exists and no delete of it is in progress; else None."""
    sql, params, make = referable_user_read(user_id=user_id, now=now)
    return make(conn.one(sql, params))  # type: ignore[no-any-return]


def referable_user_read(*, user_id: int, now: float | None = None) -> Statement:
    """`referable_user` as one statement, not run (storage.ONE_READ)."""
    sql = f"SELECT {USER_COLUMNS} FROM users WHERE id = ? AND {REFERABLE}"
    return sql, (user_id, time.time() if now is None else now), _user_or_none


def _user_or_none(row: Row | None) -> User | None:
    return User(*row) if row else None


ONE_READ[referable_user] = referable_user_read


# --- threads --------------------------------------------------------------------------------


def list_threads(
    conn: Conn, *, after: int = 0, limit: int | None = None, created_by: int | None = None
) -> list[Thread]:
    """Threads with id > `after` (by `created_by` when given), by id, at most `limit`."""
    sql = f"SELECT {THREAD_COLUMNS} FROM threads WHERE id > ?"
    params: tuple[Any, ...] = (after,)
    if created_by is not None:
        sql, params = sql + " AND created_by = ?", (after, created_by)
    sql, params = _page(sql, params, limit)
    return [Thread(*row) for row in conn.all(sql, params)]


def get_thread(conn: Conn, *, thread_id: int, lock: bool = False) -> Thread | None:
    """The thread with this id, or None (`lock`: locked until the transaction ends)."""
    suffix = _for_update(conn) if lock else ""
    row = conn.one(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?{suffix}", (thread_id,))
    return Thread(*row) if row else None


def create_thread(conn: Conn, *, new: NewThread, now: float | None = None) -> Thread:
    """Insert a thread (the caller has checked that its author exists)."""
    at = stamp(now)
    row = conn.one(
        "INSERT INTO threads (title, created_by, created_at, updated_at) VALUES (?, ?, ?, ?)"
        f" RETURNING {THREAD_COLUMNS}",
        (new.title, new.created_by, at, at),
    )
    assert row is not None
    return Thread(*row)


def update_thread(
    conn: Conn, *, thread_id: int, title: str, now: float | None = None, expect: Expect = None
) -> Thread | None:
    """Retitle a thread; None when there is no such thread."""
    if expect is not None:
        current = get_thread(conn, thread_id=thread_id, lock=True)
        if current is None:
            return None
        expect(current)
    row = conn.one(
        f"UPDATE threads SET title = ?, updated_at = ? WHERE id = ? RETURNING {THREAD_COLUMNS}",
        (title, stamp(now), thread_id),
    )
    return Thread(*row) if row else None


def referable_thread(conn: Conn, *, thread_id: int, now: float | None = None) -> Thread | None:
    """The thread, if it exists and no delete of it is in progress; else None."""
    sql, params, make = referable_thread_read(thread_id=thread_id, now=now)
    return make(conn.one(sql, params))  # type: ignore[no-any-return]


def referable_thread_read(*, thread_id: int, now: float | None = None) -> Statement:
    """`referable_thread` as one statement, not run (storage.ONE_READ)."""
    sql = f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ? AND {REFERABLE}"
    return sql, (thread_id, time.time() if now is None else now), _thread_or_none


def _thread_or_none(row: Row | None) -> Thread | None:
    return Thread(*row) if row else None


ONE_READ[referable_thread] = referable_thread_read


def thread_by_user_exists(conn: Conn, *, user_id: int) -> bool:
    """True when some thread was created by this user."""
    return conn.one("SELECT 1 FROM threads WHERE created_by = ? LIMIT 1", (user_id,)) is not None


# --- posts ----------------------------------------------------------------------------------


def list_posts(
    conn: Conn,
    *,
    after: int = 0,
    limit: int | None = None,
    thread: int | None = None,
    user: int | None = None,
) -> list[Post]:
    """Posts with id > `after` (in `thread`, by `user` when given), by id, at most `limit`."""
    sql = f"SELECT {POST_COLUMNS} FROM posts WHERE id > ?"
    params: tuple[Any, ...] = (after,)
    if thread is not None:
        sql, params = sql + " AND thread = ?", (*params, thread)
    if user is not None:
        sql, params = sql + " AND user_id = ?", (*params, user)
    sql, params = _page(sql, params, limit)
    return [Post(*row) for row in conn.all(sql, params)]


def get_post(conn: Conn, *, post_id: int, lock: bool = False) -> Post | None:
    """The post with this id, or None (`lock`: locked until the transaction ends)."""
    suffix = _for_update(conn) if lock else ""
    row = conn.one(f"SELECT {POST_COLUMNS} FROM posts WHERE id = ?{suffix}", (post_id,))
    return Post(*row) if row else None


def create_post(conn: Conn, *, new: NewPost, now: float | None = None) -> Post:
    """Insert a post (the caller has checked that its thread and user exist)."""
    sql, params, make = post_insert(new=new, now=now)
    return make(conn.one(sql, params))  # type: ignore[no-any-return]


def post_insert(*, new: NewPost, now: float | None = None) -> Statement:
    """`create_post` as one statement, not run (storage.ONE_STATEMENT)."""
    at = stamp(now)
    sql = (
        "INSERT INTO posts (thread, text, user_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
        f" RETURNING {POST_COLUMNS}"
    )
    return sql, (new.thread, new.text, new.user, at, at), _inserted_post


def _inserted_post(row: Row | None) -> Post:
    assert row is not None  # an INSERT ... RETURNING returns its row
    return Post(*row)


ONE_STATEMENT[create_post] = post_insert


def update_post(
    conn: Conn, *, post_id: int, text: str, now: float | None = None, expect: Expect = None
) -> Post | None:
    """Change a post's text; None when there is no such post."""
    if expect is not None:
        current = get_post(conn, post_id=post_id, lock=True)
        if current is None:
            return None
        expect(current)
    row = conn.one(
        f"UPDATE posts SET text = ?, updated_at = ? WHERE id = ? RETURNING {POST_COLUMNS}",
        (text, stamp(now), post_id),
    )
    return Post(*row) if row else None


def delete_post(conn: Conn, *, post_id: int, expect: Expect = None) -> bool:
    """Delete a post; False when there was none."""
    if expect is not None:
        current = get_post(conn, post_id=post_id, lock=True)
        if current is None:
            return False
        expect(current)
    return conn.run("DELETE FROM posts WHERE id = ?", (post_id,)) > 0


def post_exists(conn: Conn, *, thread: int | None = None, user: int | None = None) -> bool:
    """True when some post is in `thread` (or by `user`)."""
    column, value = ("thread", thread) if thread is not None else ("user_id", user)
    return conn.one(f"SELECT 1 FROM posts WHERE {column} = ? LIMIT 1", (value,)) is not None


# --- deletes of referenced records (users, threads): docs/consistency.md ---------------------

_GET: dict[str, Callable[..., Any]] = {
    "users": lambda conn, record_id: get_user(conn, user_id=record_id, lock=True),
    "threads": lambda conn, record_id: get_thread(conn, thread_id=record_id, lock=True),
}


def record_exists(conn: Conn, *, table: str, record_id: int) -> bool:
    """True when `table` has a record with this id."""
    return conn.one(f"SELECT 1 FROM {table} WHERE id = ?", (record_id,)) is not None


def undo_create(conn: Conn, *, table: str, record_id: int) -> None:
    """Remove a record just created whose references turned out to be gone."""
    conn.run(f"DELETE FROM {table} WHERE id = ?", (record_id,))


def begin_delete(
    conn: Conn, *, table: str, record_id: int, until: float, now: float, expect: Expect = None
) -> bool | None:
    """Mark the record as being deleted until `until` (no new reference to it is accepted).

    None: no such record. False: another delete of it is in progress.
    """
    current = _GET[table](conn, record_id)
    if current is None:
        return None
    if expect is not None:
        expect(current)
    sql = f"UPDATE {table} SET deleting_until = ? WHERE id = ? AND {REFERABLE}"
    return conn.run(sql, (until, record_id, now)) > 0


def cancel_delete(conn: Conn, *, table: str, record_id: int, until: float) -> None:
    """Undo `begin_delete(until=until)`: the record may be referred to again."""
    sql = f"UPDATE {table} SET deleting_until = NULL WHERE id = ? AND deleting_until = ?"
    conn.run(sql, (record_id, until))


def finish_delete(conn: Conn, *, table: str, record_id: int, until: float, now: float) -> bool:
    """Delete the record marked by `begin_delete(until=until)`, if that mark has not expired."""
    sql = f"DELETE FROM {table} WHERE id = ? AND deleting_until = ? AND deleting_until > ?"
    return conn.run(sql, (record_id, until, now)) > 0
