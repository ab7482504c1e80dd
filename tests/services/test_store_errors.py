"""What the database's own errors become: words for the client, the raw error for the log.

A unique violation that slips past the storage functions' own check (two requests at the same
moment) is a Conflict naming the field, on both stores; the database's message (index names,
SQL, values) stays in `cause`, which the app logs and never answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from microforum.services.schema import migrate
from microforum.services.storage import Conflict, Conn, Database, open_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def users_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'users.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    db = open_database(url)
    migrate(db, "users")
    yield db
    db.close()


def _insert_taken(conn: Conn) -> int:
    return conn.run("INSERT INTO users (username, name, bio) VALUES ('MARCELINE', 'x', '')")


def test_a_unique_violation_names_the_field_not_the_database(users_db: Database) -> None:
    with pytest.raises(Conflict) as caught:
        users_db.write_now(_insert_taken)
    assert str(caught.value) == "the username is taken (by a request made at the same time)"
    assert "users_username" in caught.value.cause  # the database's words, for the log
