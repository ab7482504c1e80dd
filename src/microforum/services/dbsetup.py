"""What `microforum db-setup` does to a PostgreSQL server (pure: no connection here).

Each resource (users, threads, posts) gets a database of its own and a login role of its own
that owns it; no one else may connect to it (CONNECT and TEMPORARY revoked from PUBLIC). The
credentials come from each resource's secret, the server is reached with an administrator's
(RDS's master user): docs/deploying.md#database. `plan_setup` turns what the server holds
(`Observed`) into the statements that bring it there, each with the line printed for it; a
server already set up gives an empty plan, so a second run changes nothing. A password is
changed only when the secret's no longer logs in, and the line says so.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from microforum.errors import UsageError

# Role and database names deploy gives (the resource names): plain lower-case identifiers, so
# they need no quoting rules beyond the double quotes `ident` adds.
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Grant:
    """One resource's database and the role that owns it, with the role's password."""

    resource: str
    role: str
    password: str
    database: str

    @classmethod
    def from_url(cls, resource: str, variable: str, url: str) -> Grant:
        """The grant a resource's postgresql:// URL (user, password, database) asks for."""
        parts = urllib.parse.urlsplit(url)
        role = urllib.parse.unquote(parts.username or "")
        database = urllib.parse.unquote(parts.path.lstrip("/")) or role
        for what, name in (("user", role), ("database", database)):
            if not _NAME.fullmatch(name):
                raise UsageError(
                    f"{variable}: the {what} {name!r} must be a lower-case name of letters, "
                    "digits and _ (db-setup creates it)"
                )
        if not parts.password:
            raise UsageError(f"{variable}: has no password (db-setup gives the role this one)")
        return cls(resource, role, urllib.parse.unquote(parts.password), database)


@dataclass(frozen=True)
class Observed:
    """What the server holds for one grant."""

    role_exists: bool = False
    password_works: bool = False  # the grant's password logs the role in
    admin_is_member: bool = False  # the administrator may act as the role (to give it a database)
    database_exists: bool = False
    owner: str = ""  # the database's owner
    public_connects: bool = True  # PUBLIC may CONNECT or create TEMPORARY tables
    foreign_tables: tuple[str, ...] = field(default=())  # tables in it owned by another role


@dataclass(frozen=True)
class Statement:
    """One statement, the database it runs in ("" for the administrator's), its line."""

    sql: str
    say: str
    database: str = ""


def ident(name: str) -> str:
    """A double-quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A single-quoted string literal (standard_conforming_strings, on since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


def plan_setup(grant: Grant, seen: Observed) -> list[Statement]:
    """The statements that give `grant.role` the database `grant.database` and nothing else."""
    role, db, name = ident(grant.role), ident(grant.database), grant.resource
    steps: list[Statement] = []
    if not seen.role_exists:
        sql = f"CREATE ROLE {role} LOGIN PASSWORD {literal(grant.password)}"
        steps.append(Statement(sql, f"{name}: create role {grant.role}"))
    elif not seen.password_works:
        sql = f"ALTER ROLE {role} WITH LOGIN PASSWORD {literal(grant.password)}"
        say = f"{name}: set the password of role {grant.role} to its secret's (it no longer logged in)"
        steps.append(Statement(sql, say))
    if not seen.admin_is_member:
        # The administrator must be able to act as the role to make it a database's owner.
        steps.append(
            Statement(f"GRANT {role} TO CURRENT_USER", f"{name}: let the administrator act as {grant.role}")
        )
    if not seen.database_exists:
        steps.append(
            Statement(f"CREATE DATABASE {db} OWNER {role}", f"{name}: create database {grant.database}")
        )
    elif seen.owner != grant.role:
        say = f"{name}: make {grant.role} the owner of database {grant.database} (was {seen.owner})"
        steps.append(Statement(f"ALTER DATABASE {db} OWNER TO {role}", say))
    if seen.public_connects or not seen.database_exists:
        say = f"{name}: only {grant.role} may connect to database {grant.database}"
        steps.append(Statement(f"REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC", say))
    for table in seen.foreign_tables:
        say = f"{name}: make {grant.role} the owner of table {table}"
        steps.append(Statement(f"ALTER TABLE {ident(table)} OWNER TO {role}", say, grant.database))
    return steps


def check_distinct(grants: list[Grant]) -> None:
    """Every resource needs a role and a database of its own."""
    for attribute in ("role", "database"):
        seen: dict[str, str] = {}
        for grant in grants:
            value = getattr(grant, attribute)
            if value in seen:
                raise UsageError(
                    f"db-setup: {seen[value]} and {grant.resource} name the same {attribute} {value}",
                    hint="give each resource a role and a database of its own",
                )
            seen[value] = grant.resource
