"""Create, change, delete, validation, limits and pagination, over HTTP to a running monolith.

The monolith holds all three resources, so references are checked in-process here; the
cross-service versions are in test_dependencies.py.
"""

from __future__ import annotations

import re
import socket

import pytest
from service_helpers import Service

JSON = "application/json; charset=utf-8"
MIB = 1024 * 1024
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _plain(record: dict) -> dict:
    """`record` without its timestamps (checked on their own)."""
    assert RFC3339_UTC.fullmatch(record["created_at"]), record
    assert record["created_at"] <= record["updated_at"], record
    return {k: v for k, v in record.items() if k not in ("created_at", "updated_at")}


def test_user_lifecycle(monolith: Service) -> None:
    created = monolith.call("POST", "/api/users", {"username": "bmo", "name": "BMO"})
    assert (created.status, created.content_type) == (201, JSON)
    user = created.json
    assert _plain(user) == {"id": user["id"], "username": "bmo", "name": "BMO", "bio": ""}
    assert created.headers["location"] == f"/api/users/{user['id']}"
    assert monolith.get(f"/api/users/{user['id']}").json == user
    assert user in monolith.get("/api/users").json

    changed = monolith.call("PATCH", f"/api/users/{user['id']}", {"bio": "a living game console"})
    assert changed.status == 200
    assert _plain(changed.json) == {**_plain(user), "bio": "a living game console"}
    assert changed.json["created_at"] == user["created_at"]
    assert monolith.get(f"/api/users/{user['id']}").json["bio"] == "a living game console"

    deleted = monolith.call("DELETE", f"/api/users/{user['id']}")
    assert (deleted.status, deleted.body) == (204, b"")
    assert "content-length" not in deleted.headers  # RFC 9110 8.6
    assert monolith.get(f"/api/users/{user['id']}").status == 404
    assert monolith.call("DELETE", f"/api/users/{user['id']}").status == 404


def test_username_is_unique_ignoring_case(monolith: Service) -> None:
    taken = monolith.call("POST", "/api/users", {"username": "Finn", "name": "Another Finn"})
    assert (taken.status, taken.content_type) == (409, JSON)
    assert "taken" in taken.json["detail"]
    renamed = monolith.call("PATCH", "/api/users/3", {"username": "JAKE"})
    assert renamed.status == 409
    assert monolith.get("/api/users/3").json["username"] == "pb"


def test_thread_and_post_lifecycle(monolith: Service) -> None:
    thread = monolith.call("POST", "/api/threads", {"title": "Gunter", "createdBy": 2})
    assert thread.status == 201
    tid = thread.json["id"]
    assert _plain(thread.json) == {"id": tid, "title": "Gunter", "createdBy": 2}
    post = monolith.call("POST", "/api/posts", {"thread": tid, "text": "Wenk", "user": 1})
    assert post.status == 201
    pid = post.json["id"]
    assert _plain(post.json) == {"thread": tid, "text": "Wenk", "user": 1, "id": pid}
    assert monolith.get(f"/api/posts/in-thread/{tid}").json == [post.json]
    assert monolith.call("PATCH", f"/api/posts/{pid}", {"text": "WENK"}).json["text"] == "WENK"
    assert monolith.call("PATCH", f"/api/threads/{tid}", {"title": "G"}).json["title"] == "G"

    in_use = monolith.call("DELETE", f"/api/threads/{tid}")
    assert in_use.status == 409 and "posts" in in_use.json["detail"]
    assert monolith.call("DELETE", f"/api/posts/{pid}").status == 204
    assert monolith.call("DELETE", f"/api/threads/{tid}").status == 204
    assert monolith.get(f"/api/threads/{tid}").status == 404


@pytest.mark.parametrize(("user_id", "holder"), [(1, "threads"), (2, "posts")])
def test_deleting_a_referenced_user_is_409(monolith: Service, user_id: int, holder: str) -> None:
    answer = monolith.call("DELETE", f"/api/users/{user_id}")
    assert answer.status == 409 and holder in answer.json["detail"]
    assert monolith.get(f"/api/users/{user_id}").status == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/threads", {"title": "x", "createdBy": 999}, "createdBy"),
        ("/api/posts", {"thread": 999, "text": "x", "user": 1}, "thread"),
        ("/api/posts", {"thread": 1, "text": "x", "user": 999}, "user"),
    ],
)
def test_references_must_exist(monolith: Service, path: str, body: dict, field: str) -> None:
    before = monolith.get(path).json
    answer = monolith.call("POST", path, body)
    assert (answer.status, answer.json["field"]) == (422, field)
    assert monolith.get(path).json == before


VALIDATION = [
    ("/api/users", {"name": "No Username"}, "username"),
    ("/api/users", {"username": "", "name": "x"}, "username"),
    ("/api/users", {"username": "x" * 41, "name": "x"}, "username"),
    ("/api/users", {"username": "has space", "name": "x"}, "username"),
    ("/api/users", {"username": "ok", "name": "x", "id": 7}, "id"),
    ("/api/users", {"username": 5, "name": "x"}, "username"),
    ("/api/users", {"username": "nul", "name": "a\u0000b"}, "name"),
    ("/api/threads", {"title": "", "createdBy": 1}, "title"),
    ("/api/threads", {"title": "t", "createdBy": 0}, "createdBy"),
    ("/api/threads", {"title": "t", "createdBy": 2**64}, "createdBy"),
    ("/api/posts", {"thread": 1, "text": "", "user": 1}, "text"),
    ("/api/posts", {"thread": 1, "text": "x" * 10_001, "user": 1}, "text"),
    ("/api/posts", {"thread": "1", "text": "x", "user": 1}, "thread"),
]


@pytest.mark.parametrize(
    ("path", "body", "field"), VALIDATION, ids=[f"{p}-{f}-{i}" for i, (p, _, f) in enumerate(VALIDATION)]
)
def test_validation_names_the_field(monolith: Service, path: str, body: dict, field: str) -> None:
    answer = monolith.call("POST", path, body)
    assert (answer.status, answer.content_type) == (422, JSON)
    assert answer.json["field"] == field
    assert field in answer.json["detail"]


def test_longest_allowed_values_are_accepted(monolith: Service) -> None:
    user = monolith.call("POST", "/api/users", {"username": "u" * 40, "name": "n"})
    assert user.status == 201
    post = monolith.call("POST", "/api/posts", {"thread": 1, "text": "é" * 10_000, "user": 1})
    assert post.status == 201 and len(post.json["text"]) == 10_000


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [
        (b'{"username": "x", ', {"Content-Type": "application/json"}, 400),
        (b"[1, 2]", {"Content-Type": "application/json"}, 422),
        (b"username=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        (b'{"username": "x", "name": "y"}', {}, 415),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400),
        (b'{"username": "\\ud800", "name": "y"}', {"Content-Type": "application/json"}, 400),
    ],
)
def test_bad_bodies(monolith: Service, raw: bytes, headers: dict, status: int) -> None:
    answer = monolith.call("POST", "/api/users", raw=raw, headers=headers)
    assert (answer.status, answer.content_type) == (status, JSON)
    assert answer.json["status"] == status


def test_body_over_one_mib_is_413(monolith: Service) -> None:
    # Answered from the declared length, before the body is read; so the client sends only the
    # head and a little of the body, then reads the answer (it would otherwise race the close).
    with socket.create_connection(("127.0.0.1", monolith.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/posts HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
            b'\r\nContent-Length: %d\r\n\r\n{"text": "' % (MIB + 1)
        )
        head = sock.recv(65536).split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 413")
    assert b"content-type: application/json; charset=utf-8" in head


def test_pagination_with_cursor(monolith: Service) -> None:
    everything = monolith.get("/api/posts").json
    pages, path = [], "/api/posts?limit=4"
    while path:
        answer = monolith.get(path)
        assert answer.status == 200
        pages.append(answer.json)
        link = answer.headers.get("link")
        assert (link is None) == (answer.headers.get("x-next-cursor") is None)
        path = link[1 : link.index(">")] if link else ""
    assert [len(p) for p in pages[:-1]] == [4] * (len(pages) - 1)
    assert [post for page in pages for post in page] == everything


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=-1", "cursor=a"])
def test_bad_page_parameters_are_400(monolith: Service, query: str) -> None:
    answer = monolith.get(f"/api/users?{query}")
    assert answer.status == 400
    assert answer.json["field"] == query.split("=")[0]


def test_threads_filter_by_author(monolith: Service) -> None:
    assert [t["id"] for t in monolith.get("/api/threads?createdBy=4").json] == [1]
    assert monolith.get("/api/threads?createdBy=4&limit=1").json[0]["id"] == 1
