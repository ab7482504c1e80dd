"""Cross-service references over HTTP: posts asks threads and users, threads asks users, users
asks threads and posts before a delete. A dependency stopped → 503 naming it, nothing written.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import Answer, Service, serving

from helpers import free_port, output_of
from microforum.services.settings import DEPENDENCY_ATTEMPTS


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """users, threads and posts wired to each other directly (no load balancer)."""
    ports = {name: free_port() for name in ("users", "threads", "posts")}
    urls = {f"{n.upper()}_URL": f"http://127.0.0.1:{p}" for n, p in ports.items()}
    data = tmp_path_factory.mktemp("stack")
    with (
        serving("users", data, urls, port=ports["users"]) as users,
        serving("threads", data, urls, port=ports["threads"]) as threads,
        serving("posts", data, urls, port=ports["posts"]) as posts,
    ):
        yield {"users": users, "threads": threads, "posts": posts}


def test_writes_checked_across_services(stack: dict[str, Service]) -> None:
    users, threads, posts = stack["users"], stack["threads"], stack["posts"]
    user = users.call("POST", "/api/users", {"username": "lsp", "name": "Lumpy Space Princess"})
    assert user.status == 201
    uid = user.json["id"]
    thread = threads.call("POST", "/api/threads", {"title": "Lumps", "createdBy": uid})
    assert thread.status == 201
    tid = thread.json["id"]
    post = posts.call("POST", "/api/posts", {"thread": tid, "text": "oh my glob", "user": uid})
    assert post.status == 201
    assert threads.call("POST", "/api/threads", {"title": "x", "createdBy": 999}).status == 422
    missing = posts.call("POST", "/api/posts", {"thread": 999, "text": "x", "user": uid})
    assert (missing.status, missing.json["field"]) == (422, "thread")

    # Deletes ask the services holding references.
    assert (
        users.call("DELETE", f"/api/users/{uid}")
        .json["detail"]
        .endswith("still has threads; delete those first")
    )
    assert threads.call("DELETE", f"/api/threads/{tid}").status == 409
    assert posts.call("DELETE", f"/api/posts/{post.json['id']}").status == 204
    assert users.call("DELETE", f"/api/users/{uid}").status == 409  # still the thread
    assert threads.call("DELETE", f"/api/threads/{tid}").status == 204
    assert users.call("DELETE", f"/api/users/{uid}").status == 204


def test_monolith_reads_the_services_files(stack: dict[str, Service]) -> None:
    created = stack["users"].call("POST", "/api/users", {"username": "gunter", "name": "Gunter"})
    data_dir = stack["users"].env["DATA_DIR"]
    with serving("monolith", data_dir) as monolith:
        assert monolith.get(f"/api/users/{created.json['id']}").json == created.json
        assert monolith.get("/api/posts").json == stack["posts"].get("/api/posts").json


@pytest.mark.parametrize(
    ("service", "path", "body", "dependency"),
    [
        ("posts", "/api/posts", {"thread": 1, "text": "hello?", "user": 1}, "threads"),
        ("threads", "/api/threads", {"title": "anyone?", "createdBy": 1}, "users"),
        ("users", "/api/users/4", None, "threads"),
    ],
)
def test_dependency_down_is_503_and_nothing_written(
    tmp_path: Path, service: str, path: str, body: dict | None, dependency: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"USERS_URL": dead, "THREADS_URL": dead, "POSTS_URL": dead}
    with serving(service, tmp_path, env) as svc:
        listing = path if body else "/api/users"
        before = svc.get(listing).json
        answer = svc.call("POST" if body else "DELETE", path, body)
        assert answer.status == 503
        assert answer.json["field"] == dependency
        assert answer.json["detail"] == f"{dependency} service unavailable; nothing was written"
        _names_nothing_internal(answer, int(dead.rsplit(":", 1)[1]))
        assert svc.get(listing).json == before


def _names_nothing_internal(answer: Answer, port: int) -> None:
    """A 503 for a dependency says which and when to retry, not where it lives or why."""
    assert answer.headers["retry-after"].isdigit()
    assert "127.0.0.1" not in answer.body.decode() and str(port) not in answer.body.decode()


def test_dependency_too_slow_is_503_after_bounded_attempts(tmp_path: Path) -> None:
    # A peer that accepts connections (the kernel's backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {"API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}", "DEPENDENCY_TIMEOUT": "0.2"}
        with serving("posts", tmp_path, env) as posts:
            answer = posts.call("POST", "/api/posts", {"thread": 1, "text": "hi", "user": 1})
            assert (answer.status, answer.json["field"]) == (503, "threads")
            _names_nothing_internal(answer, silent.getsockname()[1])
            assert "no answer within 0.2 s" in output_of(posts.process)  # the log says why
            assert len(posts.get("/api/posts").json) == 6


class _Always503(http.server.BaseHTTPRequestHandler):
    """A load balancer without healthy targets: 503 for everything, counting requests."""

    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_dependency_answering_5xx_is_retried_then_503(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Always503)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"API_URL": f"http://127.0.0.1:{server.server_address[1]}"}
        with serving("threads", tmp_path, env) as threads:
            answer = threads.call("POST", "/api/threads", {"title": "t", "createdBy": 1})
            assert (answer.status, answer.json["field"]) == (503, "users")
            _names_nothing_internal(answer, server.server_address[1])
            assert "answered 503" in output_of(threads.process)
            assert _Always503.hits == DEPENDENCY_ATTEMPTS  # bounded retry
            assert len(threads.get("/api/threads").json) == 3
    finally:
        server.shutdown()


def test_a_hint_never_lets_a_deleted_reference_through(stack: dict[str, Service]) -> None:
    """A create's first check may be answered from a recent "referable" answer: a user deleted
    since is still refused (the second check asks the owner), and nothing stays written."""
    users, posts = stack["users"], stack["posts"]
    uid = users.call("POST", "/api/users", {"username": "hint", "name": "H"}).json["id"]
    made = posts.call("POST", "/api/posts", {"thread": 1, "text": "first", "user": uid})
    assert made.status == 201  # posts now holds a hint that user `uid` is referable
    assert posts.call("DELETE", f"/api/posts/{made.json['id']}").status == 204
    assert users.call("DELETE", f"/api/users/{uid}").status == 204
    before = posts.get("/api/posts").json
    again = posts.call("POST", "/api/posts", {"thread": 1, "text": "second", "user": uid})
    assert (again.status, again.json["field"]) == (422, "user")
    assert posts.get("/api/posts").json == before
