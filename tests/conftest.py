"""Fixtures for the whole suite: a real, throw-away PostgreSQL server.

The server is started once per session, lazily (only when a test asks for `postgres`), from
the machine's PostgreSQL binaries (PATH, then /usr/lib/postgresql/*/bin), in a temporary
directory on a free port, and stopped at the end. PostgreSQL refuses to run as root, so as
root the binaries run as the `postgres` user through `runuser`
(docs/development.md). Where no PostgreSQL exists the tests that need it are skipped with the reason.

This directory is on sys.path (no __init__.py): tests import `from helpers import ...`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port

PG_USER = "postgres"


def find_pg_bin(name: str) -> str | None:
    """Path of PostgreSQL's `name` binary: PATH first, then the newest /usr/lib/postgresql."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (the server refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", PG_USER, "--", *argv]


@dataclass(frozen=True)
class PostgresServer:
    """A running throw-away server: connect as `postgres` over TCP, no password (trust)."""

    host: str
    port: int
    data_dir: str

    def url(self, dbname: str = "postgres") -> str:
        """A `postgresql://` URL for database `dbname` on this server."""
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a fresh, empty database and return its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@dataclass(frozen=True)
class OwnPostgresServer(PostgresServer):
    """A server of one test's own, which it may stop and start again (same port, same data)."""

    pg_ctl: str = ""
    options: str = ""
    log: str = ""

    def stop(self) -> None:
        """Stop as a restart or failover does: every session is ended (`-m fast`)."""
        subprocess.run(_as_postgres([self.pg_ctl, "-D", self.data_dir, "-m", "fast", "-w", "stop"]),
                       check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        subprocess.run(_as_postgres([self.pg_ctl, "-D", self.data_dir, "-o", self.options,
                                     "-l", self.log, "-w", "start"]),
                       check=True, capture_output=True)  # fmt: skip


def _start_server(root: str, initdb: str, pg_ctl: str, *, tls: bool = False) -> OwnPostgresServer:
    data_dir = os.path.join(root, "data")
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(_as_postgres([initdb, "-D", data_dir, "-A", "trust", "-U", PG_USER, "-E", "UTF8"]), **run)
    port = free_port()
    options = f"-k {root} -h 127.0.0.1 -p {port} -c fsync=off"
    if tls:
        options += _tls(root, data_dir)
    server = OwnPostgresServer("127.0.0.1", port, data_dir, pg_ctl, options,
                               os.path.join(root, "server.log"))  # fmt: skip
    server.start()
    return server


def _pg_binaries() -> tuple[str, str]:
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or /usr/lib/postgresql")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            pytest.skip("running as root but there is no 'postgres' user to run PostgreSQL as")
    return initdb, pg_ctl


# A TLS server (`tls_postgres`): the superuser `postgres` still logs in without a password
# (the tests' administrator), every other role only over TLS with its SCRAM password.
_TLS_HBA = """\
host all postgres 127.0.0.1/32 trust
hostssl all all 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 reject
"""


def _tls(root: str, data_dir: str) -> str:
    """Server options for TLS with a certificate for 127.0.0.1 and localhost from a CA made
    here (`ca.pem` in `root`), and the password-only pg_hba.conf above."""
    from tls_certs import make_ca, make_server_certificate

    ca, ca_key = make_ca("microforum test CA")
    Path(root, "ca.pem").write_bytes(ca)
    cert, key = make_server_certificate(ca, ca_key, "127.0.0.1", "localhost")
    for name, data, mode in (
        ("server.crt", cert, 0o644),
        ("server.key", key, 0o600),
        ("pg_hba.conf", _TLS_HBA.encode(), 0o600),
    ):
        path = Path(data_dir, name)
        path.write_bytes(data)
        path.chmod(mode)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(PG_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return " -c ssl=on -c password_encryption=scram-sha-256"


@contextlib.contextmanager
def _server(*, tls: bool = False) -> Iterator[OwnPostgresServer]:
    initdb, pg_ctl = _pg_binaries()
    root = tempfile.mkdtemp(prefix="microforum-pg-")
    try:
        try:
            server = _start_server(root, initdb, pg_ctl, tls=tls)
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"start PostgreSQL: {exc.cmd[-1]} failed: {exc.stderr or exc.stdout}")
        try:
            yield server
        finally:
            subprocess.run(
                _as_postgres([pg_ctl, "-D", server.data_dir, "-m", "fast", "stop"]), capture_output=True
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (skips, with the reason, if none is installed)."""
    with _server() as server:
        yield server


@pytest.fixture(scope="session")
def tls_postgres() -> Iterator[OwnPostgresServer]:
    """A server with TLS on (its CA: `ca.pem` beside `data_dir`) where every role but the
    superuser `postgres` logs in only over TLS with its password (skips like `postgres`)."""
    with _server(tls=True) as server:
        yield server


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgresServer]:
    """A real PostgreSQL server for one test, which it may stop and start (skips like `postgres`)."""
    with _server() as server:
        yield server
