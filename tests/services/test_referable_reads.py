"""An owner's fresh reads (`?referable=true`) asked at about the same time share one database
read, sent after each of them was asked (sharedcheck.py, docs/consistency.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from microforum.services import store
from microforum.services.http import Request, Response
from microforum.services.model import NewUser
from microforum.services.routes import users
from microforum.services.routes.common import Context
from microforum.services.schema import migrate
from microforum.services.storage import SqliteDatabase


class CountedReads(SqliteDatabase):
    """A real SQLite database that also counts its reads by storage function."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.reads: list[str] = []

    async def read(self, fn: Callable[..., Any], /, **kw: Any) -> Any:
        self.reads.append(fn.__name__)
        return await super().read(fn, **kw)


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield b""


def _get_user(handler: Callable[[Request], Any], user_id: int) -> Any:
    request = Request(
        "GET", f"/api/users/{user_id}", "referable=true", {}, _no_body, {"userId": str(user_id)}
    )
    return handler(request)


def test_concurrent_referable_reads_of_one_user_share_a_database_read(tmp_path: Path) -> None:
    db = CountedReads(str(tmp_path / "users.db"))
    migrate(db, "users")
    made = db.write_now(store.create_user, new=NewUser("fresh", "F"))
    ctx = Context("users", {"users": db}, refs=None)  # type: ignore[arg-type] - no references asked
    route = next(r for r in users.routes(ctx) if r.template == "/api/users/{userId}")
    handler = route.operations["GET"].handler

    async def main() -> list[Response]:
        asked = [_get_user(handler, made.id) for _ in range(5)] + [_get_user(handler, 10_000)]
        first = await asyncio.gather(*asked, return_exceptions=True)
        later = await _get_user(handler, made.id)  # asked after: a read of its own
        return [*first, later]

    try:
        answers = asyncio.run(main())
        assert [json.loads(a.body)["id"] for a in answers[:5]] == [made.id] * 5
        assert getattr(answers[5], "status", None) == 404
        assert json.loads(answers[6].body)["id"] == made.id
        assert db.reads == ["referable_user"] * 3  # one for the five, one for 10000, one after
    finally:
        db.close()
