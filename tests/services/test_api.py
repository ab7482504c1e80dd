"""What API clients expect beyond the original: ETags and conditional requests (RFC 9110 13),
Idempotency-Key on POST, strict query parameters, ids read one way, response headers in the
OpenAPI document. Over HTTP to the monolith, on SQLite and on PostgreSQL (docs/api.md).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from service_helpers import Service

JSON = "application/json; charset=utf-8"


def _new_user(monolith: Service, name: str | None = None) -> dict[str, Any]:
    name = name or f"u{uuid.uuid4().hex[:10]}"
    answer = monolith.call("POST", "/api/users", {"username": name, "name": name})
    assert answer.status == 201, answer.body
    return answer.json  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "path", ["/api/users/1", "/api/users", "/api/threads/2", "/api/posts/in-thread/2", "/api/posts?limit=2"]
)
def test_reads_carry_an_etag_and_answer_304_when_unchanged(monolith: Service, path: str) -> None:
    first = monolith.get(path)
    etag = first.headers["etag"]
    assert first.status == 200 and etag.startswith('"') and etag.endswith('"')
    assert monolith.get(path).headers["etag"] == etag  # the same representation, the same tag
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = monolith.call("GET", path, headers={"If-None-Match": sent})
        assert (again.status, again.body, again.headers["etag"]) == (304, b"", etag), sent
    changed = monolith.call("GET", path, headers={"If-None-Match": '"stale"'})
    assert (changed.status, changed.body) == (200, first.body)


def test_if_match_guards_changes(monolith: Service) -> None:
    user = _new_user(monolith)
    path = f"/api/users/{user['id']}"
    etag = monolith.get(path).headers["etag"]
    changed = monolith.call("PATCH", path, {"bio": "one"}, headers={"If-Match": etag})
    assert changed.status == 200
    new_etag = changed.headers["etag"]
    assert new_etag != etag and monolith.get(path).headers["etag"] == new_etag

    stale = monolith.call("PATCH", path, {"bio": "two"}, headers={"If-Match": etag})
    assert (stale.status, stale.json["field"], stale.headers["etag"]) == (412, "If-Match", new_etag)
    assert monolith.call("DELETE", path, headers={"If-Match": etag}).status == 412
    assert monolith.get(path).json["bio"] == "one"  # nothing changed
    assert monolith.call("PATCH", path, {"bio": "x"}, headers={"If-Match": ""}).status == 400
    assert monolith.call("DELETE", path, headers={"If-Match": "*"}).status == 204
    assert monolith.call("DELETE", path, headers={"If-Match": "*"}).status == 404


def test_if_match_on_posts_and_threads(monolith: Service) -> None:
    thread = monolith.call("POST", "/api/threads", {"title": "etags", "createdBy": 1})
    post = monolith.call("POST", "/api/posts", {"thread": thread.json["id"], "text": "a", "user": 1})
    for created, path, change in [
        (post, f"/api/posts/{post.json['id']}", {"text": "b"}),
        (thread, f"/api/threads/{thread.json['id']}", {"title": "b"}),
    ]:
        assert created.headers["etag"] == monolith.get(path).headers["etag"]
        assert monolith.call("PATCH", path, change, headers={"If-Match": '"x"'}).status == 412
        assert monolith.call("DELETE", path, headers={"If-Match": '"x"'}).status == 412
        etag = monolith.get(path).headers["etag"]
        assert monolith.call("DELETE", path, headers={"If-Match": etag}).status == 204


def test_timestamps_are_rfc3339_utc_and_updated_on_change(monolith: Service) -> None:
    user = _new_user(monolith)
    assert user["created_at"] == user["updated_at"] and user["created_at"].endswith("Z")
    changed = monolith.call("PATCH", f"/api/users/{user['id']}", {"bio": "later"}).json
    assert changed["created_at"] == user["created_at"] <= changed["updated_at"]
    for path in ("/api/users", "/api/threads", "/api/posts"):
        assert all(r["created_at"].endswith("Z") for r in monolith.get(path).json)


def test_a_retried_post_answers_the_first_answer(monolith: Service) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"thread": 1, "text": "only once", "user": 2}
    first = monolith.call("POST", "/api/posts", body, headers=key)
    assert first.status == 201
    # The same payload, spelt differently, is the same request.
    again = monolith.call(
        "POST",
        "/api/posts",
        raw=b'{"user":2, "text":"only once","thread":1}',
        headers={**key, "Content-Type": "application/json"},
    )
    assert (again.status, again.body) == (201, first.body)
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert [p["text"] for p in monolith.get("/api/posts/by-user/2").json].count("only once") == 1

    other = monolith.call("POST", "/api/posts", {**body, "text": "else"}, headers=key)
    assert (other.status, other.json["field"]) == (422, "Idempotency-Key")
    # A key is per resource: the same key on users is a new request.
    name = f"k{uuid.uuid4().hex[:8]}"
    assert monolith.call("POST", "/api/users", {"username": name, "name": "K"}, headers=key).status == 201


def test_a_refused_post_is_not_kept(monolith: Service) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    user = _new_user(monolith)
    body = {"thread": 1, "text": "x", "user": user["id"]}
    assert monolith.call("DELETE", f"/api/users/{user['id']}").status == 204
    assert monolith.call("POST", "/api/posts", body, headers=key).status == 422
    # Nothing was kept for the 422: the key with a body that can succeed is answered afresh.
    again = monolith.call("POST", "/api/posts", {**body, "user": 2}, headers=key)
    assert again.status == 201 and "idempotent-replayed" not in again.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
def test_a_malformed_idempotency_key_is_400(monolith: Service, key: str) -> None:
    answer = monolith.call(
        "POST", "/api/users", {"username": "nobody", "name": "N"}, headers={"Idempotency-Key": key}
    )
    assert (answer.status, answer.json["field"]) == (400, "Idempotency-Key")


@pytest.mark.parametrize("query", ["limit=", "cursor=", "limit=&cursor=1", "createdBy="])
def test_empty_query_values_are_400(monolith: Service, query: str) -> None:
    answer = monolith.get(f"/api/threads?{query}")
    assert (answer.status, answer.content_type) == (400, JSON)
    assert answer.json["field"] == query.split("=")[0]


def test_ids_are_read_one_way_everywhere(monolith: Service) -> None:
    # As in the path (`/api/users/01` is user 1), so in the query.
    by_one = monolith.get("/api/threads?createdBy=1").json
    assert by_one and monolith.get("/api/threads?createdBy=01").json == by_one
    assert monolith.get("/api/threads?createdBy=1.0").json == by_one
    assert (
        monolith.get("/api/threads?cursor=0x1&limit=1").json
        == monolith.get("/api/threads?cursor=1&limit=1").json
    )
    assert monolith.get("/api/threads?createdBy=abc").status == 400


def test_referable_asks_the_database(monolith: Service) -> None:
    assert monolith.get("/api/users/1?referable=true").status == 200
    assert monolith.get("/api/users/999?referable=true").status == 404
    assert monolith.get("/api/threads/1?referable=true").status == 200


def test_openapi_documents_every_header_and_503(monolith: Service) -> None:
    doc = monolith.get("/api/monolith/openapi.json").json
    users, user = doc["paths"]["/api/users"], doc["paths"]["/api/users/{userId}"]
    assert set(users["post"]["responses"]["201"]["headers"]) == {"Location", "ETag"}
    assert set(users["get"]["responses"]["200"]["headers"]) == {"ETag", "Link", "X-Next-Cursor"}
    assert "ETag" in users["get"]["responses"]["304"]["headers"]
    assert {p["name"] for p in users["post"]["parameters"]} >= {"Idempotency-Key"}
    assert {p["name"] for p in user["patch"]["parameters"]} >= {"If-Match"}
    assert {p["name"] for p in user["get"]["parameters"]} >= {"If-None-Match", "referable"}
    assert user["patch"]["responses"]["412"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "Allow" in responses["405"]["headers"], (path, method)
            if path.startswith("/api/") and not path.endswith("openapi.json") and path != "/api/":
                assert "Retry-After" in responses["503"]["headers"], (path, method)
