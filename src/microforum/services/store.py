"""Storage functions: keyword-only, one SQL statement or a short transaction each.

Each takes a `Conn` first and runs under `Database.read` or `Database.write`. Lists are in id
order (the original order of the seed data) and take a keyset cursor: `after` is the last id
already seen, so a page is stable while rows are added or removed elsewhere.
"""

from __future__ import annotations

from typing import Any

from microforum.services.model import NewPost, NewThread, NewUser, Post, Thread, User
from microforum.services.storage import Conflict, Conn

USER_COLUMNS = "id, username, name, bio"
THREAD_COLUMNS = "id, title, created_by"
POST_COLUMNS = "thread, text, user_id, id"


def _page(sql: str, params: tuple[Any, ...], limit: int | None) -> tuple[str, tuple[Any, ...]]:
    if limit is None:
        return sql + " ORDER BY id", params
    return sql + " ORDER BY id LIMIT ?", (*params, limit)


# --- users ----------------------------------------------------------------------------------


def list_users(conn: Conn, *, after: int = 0, limit: int | None = None) -> list[User]:
    """Users with id > `after`, by id, at most `limit`."""
    sql, params = _page(f"SELECT {USER_COLUMNS} FROM users WHERE id > ?", (after,), limit)
    return [User(*row) for row in conn.all(sql, params)]


def get_user(conn: Conn, *, user_id: int) -> User | None:
    """The user with this id, or None."""
    row = conn.one(f"SELECT {USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
    return User(*row) if row else None


def _username_free(conn: Conn, username: str, user_id: int = 0) -> None:
    row = conn.one("SELECT id FROM users WHERE lower(username) = lower(?) AND id <> ?", (username, user_id))
    if row:
        raise Conflict(f"username {username!r} is taken")


def create_user(conn: Conn, *, new: NewUser) -> User:
    """Insert a user; Conflict when the username is taken (ignoring case)."""
    _username_free(conn, new.username)
    row = conn.one(
        f"INSERT INTO users (username, name, bio) VALUES (?, ?, ?) RETURNING {USER_COLUMNS}",
        (new.username, new.name, new.bio),
    )
    assert row is not None
    return User(*row)


def update_user(conn: Conn, *, user_id: int, changes: dict[str, Any]) -> User | None:
    """Change some of a user's fields; None when there is no such user."""
    current = get_user(conn, user_id=user_id)
    if current is None:
        return None
    merged = {"username": current.username, "name": current.name, "bio": current.bio, **changes}
    if merged["username"] != current.username:
        _username_free(conn, merged["username"], user_id)
    conn.run(
        "UPDATE users SET username = ?, name = ?, bio = ? WHERE id = ?",
        (merged["username"], merged["name"], merged["bio"], user_id),
    )
    return User(user_id, merged["username"], merged["name"], merged["bio"])


def delete_user(conn: Conn, *, user_id: int) -> bool:
    """Delete a user; False when there was none."""
    return conn.run("DELETE FROM users WHERE id = ?", (user_id,)) > 0


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


def get_thread(conn: Conn, *, thread_id: int) -> Thread | None:
    """The thread with this id, or None."""
    row = conn.one(f"SELECT {THREAD_COLUMNS} FROM threads WHERE id = ?", (thread_id,))
    return Thread(*row) if row else None


def create_thread(conn: Conn, *, new: NewThread) -> Thread:
    """Insert a thread (the caller has checked that its author exists)."""
    row = conn.one(
        f"INSERT INTO threads (title, created_by) VALUES (?, ?) RETURNING {THREAD_COLUMNS}",
        (new.title, new.created_by),
    )
    assert row is not None
    return Thread(*row)


def update_thread(conn: Conn, *, thread_id: int, title: str) -> Thread | None:
    """Retitle a thread; None when there is no such thread."""
    row = conn.one(
        f"UPDATE threads SET title = ? WHERE id = ? RETURNING {THREAD_COLUMNS}", (title, thread_id)
    )
    return Thread(*row) if row else None


def delete_thread(conn: Conn, *, thread_id: int) -> bool:
    """Delete a thread; False when there was none."""
    return conn.run("DELETE FROM threads WHERE id = ?", (thread_id,)) > 0


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


def get_post(conn: Conn, *, post_id: int) -> Post | None:
    """The post with this id, or None."""
    row = conn.one(f"SELECT {POST_COLUMNS} FROM posts WHERE id = ?", (post_id,))
    return Post(*row) if row else None


def create_post(conn: Conn, *, new: NewPost) -> Post:
    """Insert a post (the caller has checked that its thread and user exist)."""
    row = conn.one(
        f"INSERT INTO posts (thread, text, user_id) VALUES (?, ?, ?) RETURNING {POST_COLUMNS}",
        (new.thread, new.text, new.user),
    )
    assert row is not None
    return Post(*row)


def update_post(conn: Conn, *, post_id: int, text: str) -> Post | None:
    """Change a post's text; None when there is no such post."""
    row = conn.one(f"UPDATE posts SET text = ? WHERE id = ? RETURNING {POST_COLUMNS}", (text, post_id))
    return Post(*row) if row else None


def delete_post(conn: Conn, *, post_id: int) -> bool:
    """Delete a post; False when there was none."""
    return conn.run("DELETE FROM posts WHERE id = ?", (post_id,)) > 0


def post_exists(conn: Conn, *, thread: int | None = None, user: int | None = None) -> bool:
    """True when some post is in `thread` (or by `user`)."""
    column, value = ("thread", thread) if thread is not None else ("user_id", user)
    return conn.one(f"SELECT 1 FROM posts WHERE {column} = ? LIMIT 1", (value,)) is not None
