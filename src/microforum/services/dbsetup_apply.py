"""`microforum db-setup`: read the server, plan (dbsetup.py), run the plan, say what changed.

The administrator's connection comes from DATABASE_URL or DATABASE_SECRET (RDS's master
secret); each resource's from <RESOURCE>_DATABASE_URL or <RESOURCE>_DATABASE_SECRET, the very
variables the services read (settings.py). deploy runs it as a one-off ECS task before the
services roll (docs/deploying.md#database).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from microforum.errors import MicroforumError, UsageError
from microforum.services.dbsetup import Grant, Observed, Statement, check_distinct, plan_setup
from microforum.services.pgconn import connect_options
from microforum.services.settings import check_database_url, resource_databases, secret_url
from microforum.services.storage import redact

Say = Callable[[str], None]
# What the server answers when the role's password (or its LOGIN) is not the secret's; any
# other refusal comes after the login (CONNECT, a missing database) and is not about it.
_LOGIN_REFUSED = ("password authentication failed", "is not permitted to log in")
_PG16 = 160000  # from 16 on, making a role a database's owner needs the SET option on it


def admin_url(env: Mapping[str, str]) -> str:
    if env.get("DATABASE_URL"):
        return check_database_url("DATABASE_URL", env["DATABASE_URL"])
    if env.get("DATABASE_SECRET"):
        return secret_url("DATABASE_SECRET", env["DATABASE_SECRET"])
    raise UsageError(
        "db-setup: no administrator connection: set DATABASE_URL or DATABASE_SECRET",
        hint="the URL of a role that may create roles and databases (RDS: the master user)",
    )


def grants(env: Mapping[str, str]) -> list[Grant]:
    """Each resource's role and database, from its own variable (never from DATABASE_URL)."""
    own = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    found = []
    for resource, url in resource_databases("monolith", own).items():
        if not url.startswith("postgres"):
            raise UsageError(
                f"db-setup: no PostgreSQL database for {resource}: set {resource.upper()}_DATABASE_URL "
                f"or {resource.upper()}_DATABASE_SECRET"
            )
        found.append(Grant.from_url(resource, f"{resource.upper()}_DATABASE_URL", url))
    check_distinct(found)
    return found


def run_db_setup(env: Mapping[str, str], say: Say) -> int:
    """Set up every resource's database and role; 0 when done (or nothing to do)."""
    import psycopg

    admin = admin_url(env)
    wanted = grants(env)
    try:
        with psycopg.connect(admin, autocommit=True, **_options(admin)) as conn:
            plans = [plan_setup(g, observe(conn, admin, g)) for g in wanted]
            for statements in plans:
                for statement in statements:
                    say(statement.say)
                    _execute(conn, admin, statement)
    except psycopg.Error as exc:
        raise MicroforumError(f"db-setup on {redact(admin)}: {_one_line(exc)}", hint=_hint(exc)) from exc
    if not any(plans):
        say(f"db-setup: nothing to change ({', '.join(g.database for g in wanted)} are set up)")
    return 0


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _hint(exc: Exception) -> str:
    if "certificate verify failed" in str(exc):
        return (
            "the server's certificate is not signed by a CA of DATABASE_CA_BUNDLE (stack.yaml "
            "database.ca_bundle): give the RDS bundle of the stack's region"
        )
    return "the administrator must be able to create roles and databases (RDS: the master user)"


def _options(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    return connect_options(conninfo_to_dict(url))


def _in(url: str, database: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=database)


def _execute(conn: Any, admin: str, statement: Statement) -> None:
    if not statement.database:
        conn.execute(statement.sql)
        return
    import psycopg

    url = _in(admin, statement.database)
    with psycopg.connect(url, autocommit=True, **_options(url)) as other:
        other.execute(statement.sql)


def _one(conn: Any, sql: str, *params: Any) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


def observe(conn: Any, admin: str, grant: Grant) -> Observed:
    """What the server holds for `grant`, read as the administrator."""
    role_exists = _one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", grant.role) is not None
    owner = _one(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", grant.database)
    exists = owner is not None
    need = "SET" if int(_one(conn, "SHOW server_version_num")) >= _PG16 else "MEMBER"
    member = role_exists and bool(_one(conn, "SELECT pg_has_role(current_user, %s, %s)", grant.role, need))
    public = exists and bool(
        _one(
            conn,
            "SELECT has_database_privilege('public', %s, 'CONNECT')"
            " OR has_database_privilege('public', %s, 'TEMPORARY')",
            grant.database,
            grant.database,
        )
    )
    return Observed(
        role_exists=role_exists,
        password_works=role_exists and _logs_in(admin, grant, grant.database if exists else ""),
        admin_is_member=member,
        database_exists=exists,
        owner=owner or "",
        public_connects=public,
        foreign_tables=_foreign_tables(admin, grant) if exists else (),
    )


def _logs_in(admin: str, grant: Grant, database: str) -> bool:
    """Whether the grant's password logs its role in (any refusal after that is not ours)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    url = make_conninfo(
        admin, user=grant.role, password=grant.password, **({"dbname": database} if database else {})
    )
    try:
        psycopg.connect(url, **_options(url)).close()
    except psycopg.OperationalError as exc:
        return not any(sign in str(exc) for sign in _LOGIN_REFUSED)
    return True


def _foreign_tables(admin: str, grant: Grant) -> tuple[str, ...]:
    import psycopg

    url = _in(admin, grant.database)
    with psycopg.connect(url, autocommit=True, **_options(url)) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner <> %s ORDER BY 1",
            (grant.role,),
        ).fetchall()
    return tuple(r[0] for r in rows)
