"""No orphans: a post never outlives its user or thread, a thread never outlives its author,
whatever the interleaving of a delete and a create racing in different services.

Each round makes a fresh user and thread, then fires a DELETE and a POST that refers to it at
the same moment (a barrier releases both), and counts what survived. Both requests may fail
(both 409/422 is a legal outcome), but a surviving post must name a user and a thread that
survived too. Run with the three services wired to each other directly (SQLite files, and one
PostgreSQL database) and in the monolith (docs/consistency.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Answer, Service, serving

from helpers import free_port

ROUNDS = 200
SEED_USER, SEED_THREAD = 1, 1


class Forum:
    """Where each resource is served (one service each, or the monolith for all)."""

    def __init__(self, users: Service, threads: Service, posts: Service) -> None:
        self.users, self.threads, self.posts = users, threads, posts


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "monolith"])
def forum(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Forum]:
    env: dict[str, str] = {}
    if request.param == "postgres":
        env["DATABASE_URL"] = request.getfixturevalue("postgres").create_database()
    with ExitStack() as stack:
        if request.param == "monolith":
            mono = stack.enter_context(serving("monolith", tmp_path, env))
            yield Forum(mono, mono, mono)
            return
        ports = {name: free_port() for name in ("users", "threads", "posts")}
        env |= {f"{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in ports.items()}
        served = {
            name: stack.enter_context(serving(name, tmp_path, env, port=port)) for name, port in ports.items()
        }
        yield Forum(served["users"], served["threads"], served["posts"])


def _together(*calls: Callable[[], Answer]) -> list[Answer]:
    """Run `calls` at the same moment, one thread each."""
    barrier = threading.Barrier(len(calls))

    def run(fn: Callable[[], Answer]) -> Answer:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _created(answer: Answer) -> Any:
    assert answer.status == 201, (answer.status, answer.body)
    return answer.json["id"]


def _race_user(forum: Forum, n: int) -> str | None:
    """Delete a fresh user while a post and a thread by them are created."""
    uid = _created(forum.users.call("POST", "/api/users", {"username": f"u{n}", "name": "U"}))
    deleted, post, thread = _together(
        lambda: forum.users.call("DELETE", f"/api/users/{uid}"),
        lambda: forum.posts.call("POST", "/api/posts", {"thread": SEED_THREAD, "text": "hi", "user": uid}),
        lambda: forum.threads.call("POST", "/api/threads", {"title": "t", "createdBy": uid}),
    )
    assert deleted.status in (204, 409), deleted.body
    assert post.status in (201, 422) and thread.status in (201, 422), (post.body, thread.body)
    user_alive = forum.users.get(f"/api/users/{uid}").status == 200
    if not user_alive and (post.status == 201 or thread.status == 201):
        return f"round {n}: user {uid} deleted, but {post.status=} {thread.status=}"
    _cleanup(forum, post, thread, uid)
    return None


def _race_thread(forum: Forum, n: int) -> str | None:
    """Delete a fresh thread while a post in it is created."""
    tid = _created(forum.threads.call("POST", "/api/threads", {"title": f"t{n}", "createdBy": SEED_USER}))
    deleted, post = _together(
        lambda: forum.threads.call("DELETE", f"/api/threads/{tid}"),
        lambda: forum.posts.call("POST", "/api/posts", {"thread": tid, "text": "hi", "user": SEED_USER}),
    )
    assert deleted.status in (204, 409) and post.status in (201, 422), (deleted.body, post.body)
    thread_alive = forum.threads.get(f"/api/threads/{tid}").status == 200
    if not thread_alive and post.status == 201:
        return f"round {n}: thread {tid} deleted, but post {post.json['id']} created"
    if post.status == 201:
        assert forum.posts.call("DELETE", f"/api/posts/{post.json['id']}").status == 204
    if thread_alive:
        assert forum.threads.call("DELETE", f"/api/threads/{tid}").status == 204
    return None


def _cleanup(forum: Forum, post: Answer, thread: Answer, uid: int) -> None:
    if post.status == 201:
        assert forum.posts.call("DELETE", f"/api/posts/{post.json['id']}").status == 204
    if thread.status == 201:
        assert forum.threads.call("DELETE", f"/api/threads/{thread.json['id']}").status == 204
    if forum.users.get(f"/api/users/{uid}").status == 200:
        assert forum.users.call("DELETE", f"/api/users/{uid}").status == 204


def _orphans(forum: Forum) -> list[dict[str, Any]]:
    users = {u["id"] for u in forum.users.get("/api/users").json}
    threads = forum.threads.get("/api/threads").json
    thread_ids = {t["id"] for t in threads}
    posts = forum.posts.get("/api/posts").json
    return [p for p in posts if p["user"] not in users or p["thread"] not in thread_ids] + [
        t for t in threads if t["createdBy"] not in users
    ]


def test_no_orphans_when_deletes_race_creates(forum: Forum) -> None:
    problems = [p for n in range(ROUNDS) for p in (_race_user(forum, n), _race_thread(forum, n)) if p]
    assert problems == [], f"{len(problems)} of {2 * ROUNDS} rounds left orphans: {problems[:5]}"
    assert _orphans(forum) == []
