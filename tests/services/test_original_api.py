"""The original API answers as the original Koa services did, for every route, over the seed.

Expected values are written out here from the original db.json files, not read from the seed
files the service loads. Each table row runs against the service owning the route and against
the monolith (all routes in one process). Posts gained an `id` (1..6 in the original order);
every resource gained `created_at` and `updated_at`; the original fields are compared exactly
(in their original order) and the extra ones separately.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from service_helpers import Service, serving

JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

MARCELINE = {
    "id": 1,
    "username": "marceline",
    "name": "Marceline Abadeer",
    "bio": "1000 year old vampire queen, musician",
}
FINN = {
    "id": 2,
    "username": "finn",
    "name": "Finn 'the Human' Mertens",
    "bio": "Adventurer and hero, last human, defender of good",
}
PB = {
    "id": 3,
    "username": "pb",
    "name": "Bonnibel Bubblegum",
    "bio": "Scientist, bearer of candy power, ruler of the candy kingdom",
}
JAKE = {
    "id": 4,
    "username": "jake",
    "name": "Jake the Dog",
    "bio": "Former criminal, now magical dog adventurer, and father",
}
LICH = {"id": 1, "title": "What's up with the Lich?", "createdBy": 4}
PARTY = {"id": 2, "title": "Party at the candy kingdom tomorrow", "createdBy": 3}
GUITAR = {"id": 3, "title": "In search of a new guitar", "createdBy": 1}
P1 = {"thread": 1, "text": "Has anyone checked on the lich recently?", "user": 4}
P2 = {"thread": 1, "text": "I'll stop by and see how he's doing tomorrow!", "user": 2}
P3 = {"thread": 2, "text": "Come party with the candy people tomorrow!", "user": 3}
P4 = {"thread": 2, "text": "Mathematical!", "user": 2}
P5 = {"thread": 2, "text": "I'll bring my guitar", "user": 1}
P6 = {"thread": 3, "text": "I need a new guitar to play the most savory licks in Ooo", "user": 1}
POSTS = [P1, P2, P3, P4, P5, P6]

# (service owning the route, path, expected JSON)
JSON_ROUTES: list[tuple[str, str, Any]] = [
    ("users", "/api/users", [MARCELINE, FINN, PB, JAKE]),
    ("users", "/api/users/1", MARCELINE),
    ("users", "/api/users/4", JAKE),
    ("users", "/api/users/01", MARCELINE),  # the original compared with JavaScript's ==
    ("users", "/api/users/2.0", FINN),
    ("users", "/api/users/", [MARCELINE, FINN, PB, JAKE]),  # koa-router: trailing slash
    ("threads", "/api/threads", [LICH, PARTY, GUITAR]),
    ("threads", "/api/threads/1", LICH),
    ("threads", "/api/threads/3", GUITAR),
    ("posts", "/api/posts", POSTS),
    ("posts", "/api/posts/in-thread/1", [P1, P2]),
    ("posts", "/api/posts/in-thread/2", [P3, P4, P5]),
    ("posts", "/api/posts/in-thread/3", [P6]),
    ("posts", "/api/posts/in-thread/9", []),
    ("posts", "/api/posts/in-thread/abc", []),
    ("posts", "/api/posts/by-user/1", [P5, P6]),
    ("posts", "/api/posts/by-user/2", [P2, P4]),
    ("posts", "/api/posts/by-user/3", [P3]),
    ("posts", "/api/posts/by-user/4", [P1]),
    ("posts", "/api/posts/by-user/0x2", [P2, P4]),
    ("posts", "/api/posts/by-user/99", []),
]
TEXT_ROUTES = [
    ("/", "Ready to receive requests"),
    ("/api/", "API ready to receive requests"),
    ("/api", "API ready to receive requests"),
]
# The one intended change: the original answered an empty 204 for these.
UNKNOWN_IDS = [
    ("users", "/api/users/5"),
    ("users", "/api/users/abc"),
    ("users", "/api/users/1.5"),
    ("threads", "/api/threads/4"),
    ("threads", "/api/threads/0"),
]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """users, threads, posts and the monolith, each on its own fresh seed data."""
    with (
        serving("users", tmp_path_factory.mktemp("u")) as users,
        serving("threads", tmp_path_factory.mktemp("t")) as threads,
        serving("posts", tmp_path_factory.mktemp("p")) as posts,
        serving("monolith", tmp_path_factory.mktemp("m")) as monolith,
    ):
        yield {"users": users, "threads": threads, "posts": posts, "monolith": monolith}


ADDED = ("created_at", "updated_at")


def _without_ids(value: Any) -> Any:
    """Records minus the fields they gained (posts' `id`, the timestamps), which come last."""
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    if isinstance(value, dict):
        assert tuple(value)[-2:] == ADDED, value
        gained = (*ADDED, "id") if "thread" in value else ADDED
        return {k: v for k, v in value.items() if k not in gained}
    return value


def _service(request: pytest.FixtureRequest, services: dict[str, Service], where: str) -> Service:
    if where == "monolith-postgres":
        service: Service = request.getfixturevalue("pg_monolith")
        return service
    return services[where]


WHERE = ["owner", "monolith", pytest.param("monolith-postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize(("owner", "path", "expected"), JSON_ROUTES, ids=[r[1] for r in JSON_ROUTES])
def test_json_routes_answer_as_the_original(
    request: pytest.FixtureRequest,
    services: dict[str, Service],
    where: str,
    owner: str,
    path: str,
    expected: Any,
) -> None:
    answer = _service(request, services, owner if where == "owner" else where).get(path)
    assert (answer.status, answer.content_type) == (200, JSON)
    assert _without_ids(answer.json) == expected


def test_posts_gained_ids_in_original_order(services: dict[str, Service]) -> None:
    posts = services["posts"].get("/api/posts").json
    assert [p["id"] for p in posts] == [1, 2, 3, 4, 5, 6]
    assert list(posts[0]) == ["thread", "text", "user", "id", *ADDED]


@pytest.mark.parametrize("name", ["users", "threads", "posts", "monolith"])
@pytest.mark.parametrize(("path", "text"), TEXT_ROUTES)
def test_text_routes(services: dict[str, Service], name: str, path: str, text: str) -> None:
    answer = services[name].get(path)
    assert (answer.status, answer.content_type, answer.body.decode()) == (200, TEXT, text)


@pytest.mark.parametrize(("owner", "path"), UNKNOWN_IDS)
def test_unknown_id_is_404_with_a_json_body(services: dict[str, Service], owner: str, path: str) -> None:
    answer = services[owner].get(path)
    assert (answer.status, answer.content_type) == (404, JSON)
    assert answer.json["status"] == 404 and "no " in answer.json["detail"]


@pytest.mark.parametrize(
    ("name", "path"), [("users", "/api/threads"), ("posts", "/nope"), ("monolith", "/api/posts/in-thread")]
)
def test_unknown_path_is_404_json(services: dict[str, Service], name: str, path: str) -> None:
    answer = services[name].get(path)
    assert (answer.status, answer.content_type) == (404, JSON)


@pytest.mark.parametrize(
    ("name", "method", "path", "allow"),
    [
        ("users", "PUT", "/api/users", "GET, HEAD, POST"),
        ("posts", "POST", "/api/posts/in-thread/1", "GET, HEAD"),
        ("monolith", "DELETE", "/", "GET, HEAD"),
        ("threads", "POST", "/api/threads/1", "DELETE, GET, HEAD, PATCH"),
    ],
)
def test_wrong_method_is_405_with_allow(
    services: dict[str, Service], name: str, method: str, path: str, allow: str
) -> None:
    answer = services[name].call(method, path)
    assert (answer.status, answer.headers["allow"]) == (405, allow)
    assert answer.json["status"] == 405


def test_head_and_options_as_koa_router(services: dict[str, Service]) -> None:
    head = services["users"].call("HEAD", "/api/users")
    assert (head.status, head.body) == (200, b"")
    assert int(head.headers["content-length"]) > 0
    options = services["users"].call("OPTIONS", "/api/users/1")
    assert (options.status, options.headers["allow"]) == (200, "DELETE, GET, HEAD, PATCH")
