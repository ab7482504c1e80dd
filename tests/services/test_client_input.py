"""Nothing a client sends is a 500: bad bytes in bodies, queries and paths get a 4xx naming the
problem, over HTTP to a running monolith (on SQLite and on PostgreSQL), and nothing is written."""

from __future__ import annotations

import random

import pytest
from service_helpers import Service, connect

JSON = {"Content-Type": "application/json"}
_noise = random.Random(15)  # fixed: the same bytes on every run

BODIES = [
    (b'{"username": "bad\xff", "name": "x"}', 400, "not valid UTF-8"),
    (b'{"username": "ok", "name": "caf\xc3"}', 400, "not valid UTF-8"),
    (b'{"username": "ok", "name": "\\udc00"}', 400, "not valid JSON"),
    (bytes(_noise.getrandbits(8) for _ in range(512)), 400, "not valid"),
    (b"[" * 200_000 + b"]" * 200_000, 422, "Expected `object`"),
    (b'{"username": "ok", "name": ' + b"[" * 200_000, 422, "name"),
    (b'{"username": "ok", "name": "x", "bio": 1' + b"0" * 5000 + b"}", 422, "bio"),
    (b'{"username": "ok", "name": "x", "bio": 1e999}', 422, "bio"),
    (b'{"username": "ok", "name": "nul\\u0000"}', 422, "name"),
]
IDS = ["bad-utf8", "truncated-utf8", "lone-surrogate", "random-bytes", "deep-array",
       "deep-field", "huge-integer", "huge-float", "nul-in-text"]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "says"), BODIES, ids=IDS)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_bad_bodies_are_4xx_and_write_nothing(
    monolith: Service, method: str, body: bytes, status: int, says: str
) -> None:
    before = monolith.get("/api/users").json
    path = "/api/users" if method == "POST" else "/api/users/2"
    answer = monolith.call(method, path, raw=body, headers=JSON)
    assert (answer.status, answer.json["status"]) == (status, status), answer.body[:300]
    assert says in answer.json["detail"]
    assert monolith.get("/api/users").json == before


@pytest.mark.parametrize(
    "target",
    [b"/api/posts/bad\xff", b"/api/users?limit=%ff", b"/api/users?cursor=%c3", b"/api/users/%ff%fe",
     b"/api/users?limit=99999999999999999999999999", b"/api/users/\xc3"],
)  # fmt: skip
def test_bad_paths_and_queries_are_4xx(monolith: Service, target: bytes) -> None:
    wire = connect(monolith.port)
    try:
        wire.send(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = wire.answer()
    finally:
        wire.sock.close()
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.json["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/posts", b'{"thread": 1, "user": 1, "text": "\xfe"}'),
     ("/api/threads", b'{"title": "\xfe", "createdBy": 1}')],
)  # fmt: skip
def test_bad_utf8_on_the_other_resources(monolith: Service, path: str, body: bytes) -> None:
    answer = monolith.call("POST", path, raw=body, headers=JSON)
    assert answer.status == 400 and "not valid UTF-8" in answer.json["detail"]
