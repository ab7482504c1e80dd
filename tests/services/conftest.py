"""Fixtures of the services tests: services on fresh seed data, shared per module.

`monolith` runs every test that uses it twice: on SQLite files and on a real PostgreSQL
server (the session fixture in tests/conftest.py; marked `postgres`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_helpers import Service, serving

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _database_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    if backend == "sqlite":
        return {}
    return {"DATABASE_URL": request.getfixturevalue("postgres").create_database()}


@pytest.fixture(scope="module", params=BACKENDS)
def monolith(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The monolith on fresh seed data, shared by a module's tests, once per backend."""
    env = _database_env(request, request.param)
    with serving("monolith", tmp_path_factory.mktemp("monolith"), env) as service:
        yield service


@pytest.fixture(scope="module")
def pg_monolith(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The monolith on a fresh PostgreSQL database."""
    env = _database_env(request, "postgres")
    with serving("monolith", tmp_path_factory.mktemp("pg-monolith"), env) as service:
        yield service
