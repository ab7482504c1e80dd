"""`microforum db-setup`: each resource's own database and role (docs/deploying.md#database).

The plan is a pure table (`plan_setup`); the command runs against the suite's real PostgreSQL
with TLS and SCRAM passwords (`tls_postgres`), where a role logs in only with its password:
each role reaches its own database and no other, and a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from service_helpers import call

from helpers import free_port, running
from microforum.errors import UsageError
from microforum.services.dbsetup import Grant, Observed, check_distinct, plan_setup
from microforum.services.dbsetup_apply import run_db_setup
from microforum.services.settings import load_settings, secret_url
from tls_certs import make_ca

GRANT = Grant("users", "users", "pw'1", "users")
READY = Observed(
    role_exists=True, password_works=True, admin_is_member=True, database_exists=True,
    owner="users", public_connects=False,
)  # fmt: skip


@pytest.mark.parametrize(
    ("seen", "expected"),
    [
        (Observed(), [
            "CREATE ROLE \"users\" LOGIN PASSWORD 'pw''1'",
            'GRANT "users" TO CURRENT_USER',
            'CREATE DATABASE "users" OWNER "users"',
            'REVOKE CONNECT, TEMPORARY ON DATABASE "users" FROM PUBLIC',
        ]),
        (READY, []),
        (Observed(**{**READY.__dict__, "password_works": False}), [
            "ALTER ROLE \"users\" WITH LOGIN PASSWORD 'pw''1'",
        ]),
        (Observed(**{**READY.__dict__, "owner": "microforum", "public_connects": True}), [
            'ALTER DATABASE "users" OWNER TO "users"',
            'REVOKE CONNECT, TEMPORARY ON DATABASE "users" FROM PUBLIC',
        ]),
        (Observed(**{**READY.__dict__, "foreign_tables": ("users", "microforum_schema")}), [
            'ALTER TABLE "users" OWNER TO "users"',
            'ALTER TABLE "microforum_schema" OWNER TO "users"',
        ]),
        (Observed(**{**READY.__dict__, "admin_is_member": False}), ['GRANT "users" TO CURRENT_USER']),
    ],
    ids=["new server", "set up", "password differs", "database of another owner", "tables of another",
         "not a member"],
)  # fmt: skip
def test_the_plan_brings_the_server_to_one_role_per_database(seen: Observed, expected: list[str]) -> None:
    assert [s.sql for s in plan_setup(GRANT, seen)] == expected


def test_a_password_change_is_said_and_no_line_shows_a_password() -> None:
    steps = plan_setup(GRANT, Observed(**{**READY.__dict__, "password_works": False}))
    assert [s.say for s in steps] == [
        "users: set the password of role users to its secret's (it no longer logged in)"
    ]
    assert all("pw" not in s.say for s in plan_setup(GRANT, Observed()))


def test_table_ownership_changes_in_the_resources_database() -> None:
    (step,) = plan_setup(GRANT, Observed(**{**READY.__dict__, "foreign_tables": ("posts",)}))
    assert step.database == "users"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("postgresql://Users:pw@db/users", "USERS_DATABASE_URL: the user 'Users' must be a lower-case name"),
        (
            "postgresql://users:pw@db/my-db",
            "USERS_DATABASE_URL: the database 'my-db' must be a lower-case name",
        ),
        ("postgresql://users@db/users", "USERS_DATABASE_URL: has no password"),
    ],
)
def test_names_db_setup_would_have_to_quote_are_refused(url: str, error: str) -> None:
    with pytest.raises(UsageError, match="^" + error):
        Grant.from_url("users", "USERS_DATABASE_URL", url)


def test_two_resources_on_one_role_are_refused() -> None:
    with pytest.raises(UsageError, match="users and posts name the same role users"):
        check_distinct([Grant("users", "users", "a", "users"), Grant("posts", "users", "b", "posts")])


def test_a_secret_becomes_a_url_and_each_resource_reads_its_own() -> None:
    secret = {
        "username": "users",
        "password": "p@ss/w",
        "host": "db.example",
        "port": 5432,
        "dbname": "users",
    }
    assert secret_url("X", json.dumps(secret)) == "postgresql://users:p%40ss%2Fw@db.example:5432/users"
    env = {
        "USERS_DATABASE_SECRET": json.dumps(secret),
        "THREADS_DATABASE_URL": "postgresql://threads:t@db/threads",
        "DATABASE_URL": "postgresql://fallback@db/all",
    }
    assert load_settings("monolith", env).databases == {
        "users": "postgresql://users:p%40ss%2Fw@db.example:5432/users",
        "threads": "postgresql://threads:t@db/threads",
        "posts": "postgresql://fallback@db/all",
    }
    with pytest.raises(UsageError, match=r"^USERS_DATABASE_SECRET: must be a JSON object with the strings"):
        load_settings("users", {"USERS_DATABASE_SECRET": '{"username": "users"}'})


# ------------------------------------------------------------------------- a real server


def _env(
    server: Any, suffix: str, password: str = "secret-1", query: str = "?sslmode=require"
) -> dict[str, str]:
    env = {"DATABASE_URL": server.url()}
    for resource in ("users", "threads", "posts"):
        name = f"{resource}_{suffix}"
        env[f"{resource.upper()}_DATABASE_URL"] = (
            f"postgresql://{name}:{password}-{resource}@{server.host}:{server.port}/{name}{query}"
        )
    return env


def _run(env: dict[str, str]) -> list[str]:
    lines: list[str] = []
    assert run_db_setup(env, lines.append) == 0
    return lines


def _connect(url: str, **kw: str) -> psycopg.Connection[Any]:
    return psycopg.connect(psycopg.conninfo.make_conninfo(url, **kw), autocommit=True, connect_timeout=5)


@pytest.mark.postgres
def test_each_role_reaches_its_own_database_only_and_a_second_run_changes_nothing(tls_postgres: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = _env(tls_postgres, suffix)
    lines = _run(env)
    assert f"users: create role users_{suffix}" in lines
    assert f"posts: only posts_{suffix} may connect to database posts_{suffix}" in lines
    users, threads = env["USERS_DATABASE_URL"], env["THREADS_DATABASE_URL"]
    with _connect(users) as conn:  # its own database, over TLS with its password: it may build
        conn.execute("CREATE TABLE secrets (v TEXT)")
        conn.execute("INSERT INTO secrets VALUES ('only users')")
    with pytest.raises(psycopg.OperationalError, match=f'permission denied for database "users_{suffix}"'):
        _connect(threads, dbname=f"users_{suffix}")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _connect(users, password="guessed")
    assert _run(env) == [
        f"db-setup: nothing to change (users_{suffix}, threads_{suffix}, posts_{suffix} are set up)"
    ]


@pytest.mark.postgres
def test_a_role_whose_password_no_longer_matches_gets_its_secrets_and_it_is_said(tls_postgres: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = _env(tls_postgres, suffix)
    _run(env)
    with _connect(tls_postgres.url()) as admin:
        admin.execute(f"ALTER ROLE posts_{suffix} PASSWORD 'changed-by-hand'")
    assert _run(env) == [
        f"posts: set the password of role posts_{suffix} to its secret's (it no longer logged in)"
    ]
    _connect(env["POSTS_DATABASE_URL"]).close()
    with _connect(tls_postgres.url()) as admin:
        admin.execute(f"ALTER ROLE users_{suffix} NOLOGIN")
    assert _run(env) == [
        f"users: set the password of role users_{suffix} to its secret's (it no longer logged in)"
    ]
    _connect(env["USERS_DATABASE_URL"]).close()


@pytest.mark.postgres
def test_a_database_made_by_the_administrator_is_handed_over_with_its_tables(tls_postgres: Any) -> None:
    suffix = uuid.uuid4().hex[:8]
    env = _env(tls_postgres, suffix)
    with _connect(tls_postgres.url()) as admin:  # as an earlier deploy left it: the master's
        admin.execute(f"CREATE DATABASE threads_{suffix}")
    with _connect(tls_postgres.url(f"threads_{suffix}")) as admin:
        admin.execute("CREATE TABLE threads (id BIGINT GENERATED BY DEFAULT AS IDENTITY, title TEXT)")
        admin.execute("INSERT INTO threads (title) VALUES ('kept')")
    lines = _run(env)
    assert f"threads: make threads_{suffix} the owner of table threads" in lines
    with _connect(env["THREADS_DATABASE_URL"]) as conn:
        conn.execute("INSERT INTO threads (title) VALUES ('new')")
        assert conn.execute("SELECT title FROM threads ORDER BY id").fetchall() == [("kept",), ("new",)]


@pytest.mark.postgres
def test_the_command_exits_1_with_one_line_when_the_server_refuses(tls_postgres: Any) -> None:
    env = {**os.environ, **_env(tls_postgres, uuid.uuid4().hex[:8])}
    # An administrator that may not create roles: the users role of another setup.
    other = _env(tls_postgres, uuid.uuid4().hex[:8])
    _run(other)
    env["DATABASE_URL"] = other["USERS_DATABASE_URL"]
    result = subprocess.run([sys.executable, "-m", "microforum", "db-setup"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("microforum: db-setup on postgresql://users_"), result.stderr
    assert ":***@" in result.stderr and "Traceback" not in result.stderr
    assert "permission denied to create role" in result.stderr


@pytest.mark.postgres
def test_services_on_their_own_roles_migrate_serve_and_the_monolith_sees_their_writes(
    tls_postgres: Any, tmp_path: Any
) -> None:
    """As on ECS: each service gets its resource's secret (JSON) and PGSSLMODE=require; the
    monolith gets the three secrets and reads what the services wrote."""
    suffix = uuid.uuid4().hex[:8]
    env = _env(tls_postgres, suffix)
    _run(env)
    secrets = {}
    for resource in ("users", "threads", "posts"):
        name = f"{resource}_{suffix}"
        secret = {"username": name, "password": f"secret-1-{resource}", "host": tls_postgres.host,
                  "port": tls_postgres.port, "dbname": name, "engine": "postgres"}  # fmt: skip
        secrets[f"{resource.upper()}_DATABASE_SECRET"] = json.dumps(secret)
    # The server's certificate and name verified against its CA, as deploy's ca_bundle asks.
    ca = (Path(tls_postgres.data_dir).parent / "ca.pem").read_text()
    base = {"PGSSLMODE": "verify-full", "DATABASE_CA_BUNDLE": ca, "DATA_DIR": str(tmp_path)}
    users_port, monolith_port = free_port(), free_port()
    users_env = {**base, "PORT": str(users_port), "USERS_DATABASE_SECRET": secrets["USERS_DATABASE_SECRET"]}
    monolith_env = {**base, "PORT": str(monolith_port), **secrets}
    serve = [sys.executable, "-m", "microforum", "serve"]
    with (
        running([*serve, "users"], users_env, users_port),
        running([*serve, "monolith"], monolith_env, monolith_port),
    ):
        created = call(users_port, "POST", "/api/users", {"username": f"u{suffix}", "name": "N", "bio": "B"})
        assert created.status == 201, created.body
        seen = call(monolith_port, "GET", f"/api/users/{created.json['id']}")
        assert seen.status == 200 and seen.json["username"] == f"u{suffix}"
    with _connect(env["USERS_DATABASE_URL"]) as conn:  # the tables belong to the role itself
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert owners == [(f"users_{suffix}",)]


def _db_setup(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microforum", "db-setup"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.mark.postgres
def test_verify_full_succeeds_with_the_servers_ca_and_fails_clearly_with_another(tls_postgres: Any) -> None:
    right = (Path(tls_postgres.data_dir).parent / "ca.pem").read_text()
    wrong = make_ca("another CA")[0].decode()
    env = {**_env(tls_postgres, uuid.uuid4().hex[:8], query=""), "PGSSLMODE": "verify-full"}

    refused = _db_setup({**env, "DATABASE_CA_BUNDLE": wrong})
    assert refused.returncode == 1, refused.stderr
    message, hint = refused.stderr.splitlines()
    assert message.startswith("microforum: db-setup on postgresql://postgres@127.0.0.1:")
    assert "certificate verify failed" in message
    assert hint == (
        "hint: the server's certificate is not signed by a CA of DATABASE_CA_BUNDLE (stack.yaml "
        "database.ca_bundle): give the RDS bundle of the stack's region"
    )

    done = _db_setup({**env, "DATABASE_CA_BUNDLE": right})
    assert done.returncode == 0, done.stderr
    assert "create role users_" in done.stdout


@pytest.mark.postgres
def test_an_administrator_like_rds_master_user_sets_up_and_then_changes_nothing(tls_postgres: Any) -> None:
    """RDS's master user is no superuser: it may create roles and databases, and must be a
    member of a role to make it a database's owner (and to reach that database afterwards)."""
    suffix = uuid.uuid4().hex[:8]
    with _connect(tls_postgres.url()) as root:
        root.execute(f"CREATE ROLE master_{suffix} LOGIN CREATEROLE CREATEDB PASSWORD 'm-pw'")
    env = _env(tls_postgres, suffix)
    host = f"{tls_postgres.host}:{tls_postgres.port}"
    env["DATABASE_URL"] = f"postgresql://master_{suffix}:m-pw@{host}/postgres?sslmode=require"
    lines = _run(env)
    assert f"users: let the administrator act as users_{suffix}" in lines
    assert _run(env) == [
        f"db-setup: nothing to change (users_{suffix}, threads_{suffix}, posts_{suffix} are set up)"
    ]
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _connect(env["POSTS_DATABASE_URL"], dbname=f"users_{suffix}")
