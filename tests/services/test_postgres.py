"""PostgreSQL specifics: replicas of one service on one database, schema and seed made once."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest
from service_helpers import Answer, call, serving

pytestmark = pytest.mark.postgres


def test_replicas_on_one_database(tmp_path: Path, postgres) -> None:
    env = {"DATABASE_URL": postgres.create_database()}
    with serving("users", tmp_path, env) as a, serving("users", tmp_path, env) as b:
        assert len(a.get("/api/users").json) == 4  # seeded once though both started
        made = a.call("POST", "/api/users", {"username": "ice-king", "name": "Simon Petrikov"})
        assert made.status == 201 and made.json["id"] == 5  # the sequence follows the seed
        assert b.get(f"/api/users/{made.json['id']}").json == made.json

        def create(n: int) -> Answer:
            port = (a, b)[n % 2].port
            return call(port, "POST", "/api/users", {"username": "gunther", "name": f"G{n}"})

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(create, range(6)))
        assert sorted(x.status for x in answers) == [201] + [409] * 5  # unique, even racing
    with serving("users", tmp_path, env) as again:
        assert [u["username"] for u in again.get("/api/users").json][-2:] == ["ice-king", "gunther"]


def test_a_service_creates_its_own_database(tmp_path: Path, postgres) -> None:
    """On AWS the RDS server starts with one database; DATABASE_URL names none and PGDATABASE
    names the service's (deploy's render), which the service creates on first start."""
    server_url = postgres.url("")  # no database in the URL, as deploy passes it
    env = {"DATABASE_URL": server_url, "PGDATABASE": f"users_{tmp_path.name[-8:].lower()}"}
    with serving("users", tmp_path, env) as users:
        assert users.get("/api/users/1").json["username"] == "marceline"
    with serving("users", tmp_path, env) as again:  # the second start finds it and keeps data
        assert len(again.get("/api/users").json) == 4
