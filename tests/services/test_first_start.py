"""First start on an empty store, by several replicas at once: created and seeded exactly once.

Four replicas of the monolith (three resources each, so twelve migrations racing) are started
together, as `up` or a first ECS deployment starts them, on a PostgreSQL server where their
database does not exist yet, and on an empty SQLite directory. Every replica must come up
(none may crash), and the data must be the seed data exactly once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from service_helpers import START_TIMEOUT, call, serve_argv

from helpers import free_port, stop, wait_http
from microforum.services.schema import seed_records

REPLICAS = 4


@contextlib.contextmanager
def _replicas(env: Mapping[str, str]) -> Iterator[list[int]]:
    """Start REPLICAS monoliths at the same moment; yield their ports once all answer."""
    ports = [free_port() for _ in range(REPLICAS)]
    with tempfile.TemporaryFile() as log:
        procs = [subprocess.Popen(serve_argv("monolith", port), stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "API_URL": "http://127.0.0.1:9", **env})
                 for port in ports]  # fmt: skip
        try:
            for port, proc in zip(ports, procs, strict=True):
                try:
                    wait_http(f"http://127.0.0.1:{port}/", START_TIMEOUT, process=proc)
                except (TimeoutError, RuntimeError) as exc:
                    log.seek(0)
                    raise AssertionError(f"{exc}\n{log.read().decode(errors='replace')}") from exc
            yield ports
        finally:
            codes = [stop(proc) for proc in procs]
        assert codes == [0] * REPLICAS


def _assert_seeded_once(ports: list[int]) -> None:
    for resource in ("users", "threads", "posts"):
        expected = len(seed_records(resource))
        for port in ports:
            answer = call(port, "GET", f"/api/{resource}")
            assert (answer.status, len(answer.json)) == (200, expected), resource
    made = call(ports[0], "POST", "/api/users", {"username": "first-after-seed", "name": "F"})
    assert made.json["id"] == len(seed_records("users")) + 1  # ids go on after the seed's


@pytest.mark.postgres
def test_four_replicas_on_a_new_postgresql_database(postgres) -> None:
    url = postgres.url(f"fresh_{uuid.uuid4().hex[:12]}")  # does not exist yet
    with _replicas({"DATABASE_URL": url}) as ports:
        _assert_seeded_once(ports)


@pytest.mark.postgres
def test_four_replicas_on_a_new_server_naming_the_database_in_pgdatabase(postgres) -> None:
    env = {"DATABASE_URL": postgres.url(""), "PGDATABASE": f"fresh_{uuid.uuid4().hex[:12]}"}
    with _replicas(env) as ports:
        _assert_seeded_once(ports)


def test_four_replicas_on_an_empty_sqlite_directory(tmp_path: Path) -> None:
    with _replicas({"DATA_DIR": str(tmp_path / "new" / "data")}) as ports:
        _assert_seeded_once(ports)
