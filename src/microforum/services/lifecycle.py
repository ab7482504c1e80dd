"""Creates that refer to records of other services, and deletes of records referred to.

The order of their steps keeps any record from outliving what it refers to, whatever the
interleaving across services and replicas (docs/consistency.md gives the argument):

- a create checks that what it refers to is referable, writes (keeping its answer under its
  Idempotency-Key in the same transaction), then checks again; when the second check fails it
  removes what it wrote and answers as the first check would have (422, or 503 when an owner
  cannot answer, "nothing was written" then being true again);
- a delete checks that nothing refers to the record (409), marks it as being deleted (from
  then on no new reference is accepted), checks again, and then deletes it, or removes the
  mark and answers 409.

Both second checks read after the first write committed, so of a racing create and delete at
least one sees the other's write, and refuses.
"""

from __future__ import annotations

import contextlib
import sys
import time
from asyncio import Future
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from microforum.services import store
from microforum.services.http import HttpError, Request, Response, json_response
from microforum.services.idempotency import KeyTaken, create_keeping, fingerprint, forget, key_of, recall
from microforum.services.settings import PENDING_DELETE_TTL
from microforum.services.storage import Conn, Database

Referenced = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Requirement:
    """Something a new record refers to: the field naming it and how to ask about it."""

    field: str
    detail: str  # the 422's detail when it is missing
    # fresh: decide (False: a recent hint will do). The answer, or an awaitable of it; a
    # future is under way already, so the questions of one create are asked together.
    referable: Callable[[bool], bool | Awaitable[bool]]


async def _require(requirements: list[Requirement], *, fresh: bool) -> None:
    """422 naming the first requirement not referable; an owner that cannot answer raises
    (503), in the requirements' order. Every answer is awaited, none left unretrieved."""
    asked = [r.referable(fresh) for r in requirements]
    found: list[bool] = []
    failed: Exception | None = None
    try:
        for answer in asked:
            try:
                found.append(answer if isinstance(answer, bool) else await answer)
            except Exception as exc:  # each answer is awaited, whatever the others'
                failed = failed or exc
                found.append(False)
    except BaseException:  # cancelled: the answers not awaited yet are dropped
        for answer in asked[len(found) :]:
            _drop(answer)
        raise
    if failed is not None:
        raise failed
    for requirement, ok in zip(requirements, found, strict=True):
        if not ok:
            raise HttpError(422, requirement.detail, field=requirement.field)


def _drop(answer: bool | Awaitable[bool]) -> None:
    """Cancel an answer nobody will await (a future under way, or a coroutine not started)."""
    if isinstance(answer, Future):
        answer.cancel()
    elif isinstance(answer, Coroutine):
        answer.close()


@dataclass(frozen=True)
class Create:
    """One create: the storage function, its fields, what the record refers to."""

    table: str
    create: Callable[..., Any]
    fields: dict[str, Any]
    payload: Any  # the decoded body (for the Idempotency-Key's fingerprint)
    location: Callable[[Any], str]
    requirements: list[Requirement]


async def create(db: Database, request: Request, spec: Create) -> Response:
    """Answer a POST creating a record (201 with Location, or the answer kept for its key)."""
    key = key_of(request)
    print_ = fingerprint(request.path, spec.payload) if key else ""
    now = time.time()
    if key is not None:
        kept = await db.read(recall, table=spec.table, key=key, now=now)
        if kept is not None:
            return kept.replay(print_)
    await _require(spec.requirements, fresh=False)
    try:
        record = await db.write(
            create_keeping, create=spec.create, fields={**spec.fields, "now": now},
            table=spec.table, key=key, fingerprint=print_, location=spec.location, now=now,
        )  # fmt: skip
    except KeyTaken:
        return await _kept_answer(db, spec.table, key, print_)
    if spec.requirements:
        try:
            await _require(spec.requirements, fresh=True)
        except BaseException:
            await _undo(db, spec.table, record.id, key)
            raise
    return json_response(record, 201, [("location", spec.location(record))])


async def _kept_answer(db: Database, table: str, key: str | None, print_: str) -> Response:
    kept = await db.read(recall, table=table, key=key, now=time.time())
    if kept is None:
        raise HttpError(
            409,
            "Idempotency-Key: a request with this key is still being answered; retry it later",
            field="Idempotency-Key",
        )
    return kept.replay(print_)


def _undo_now(conn: Conn, *, table: str, record_id: int, key: str | None) -> None:
    store.undo_create(conn, table=table, record_id=record_id)
    forget(conn, table=table, key=key)


async def _undo(db: Database, table: str, record_id: int, key: str | None) -> None:
    try:
        await db.write(_undo_now, table=table, record_id=record_id, key=key)
    except Exception as exc:  # the create's own error is the answer; this one is logged
        print(f"undo create of {table} {record_id}: {exc!r}", file=sys.stderr, flush=True)


async def delete(
    db: Database,
    *,
    table: str,
    record_id: int,
    what: str,
    referenced: Referenced,
    expect: Callable[[Any], None] | None,
) -> Response:
    """Answer a DELETE of a record other records may refer to (204, 404 or 409)."""
    if not await db.read(store.record_exists, table=table, record_id=record_id):
        raise HttpError(404, f"no {what} with id {record_id}")
    await _refuse_if_referenced(referenced, what, record_id)
    now = time.time()
    until = now + PENDING_DELETE_TTL
    began = await db.write(
        store.begin_delete, table=table, record_id=record_id, until=until, now=now, expect=expect
    )
    if began is None:
        raise HttpError(404, f"no {what} with id {record_id}")
    if not began:
        raise HttpError(409, f"{what} {record_id} is being deleted by another request")
    try:
        await _refuse_if_referenced(referenced, what, record_id)
        if not await db.write(
            store.finish_delete, table=table, record_id=record_id, until=until, now=time.time()
        ):
            raise HttpError(
                503,
                f"deleting {what} {record_id} took too long; nothing was deleted, try again",
                headers=[("retry-after", "1")],
            )
    except BaseException:
        with contextlib.suppress(Exception):  # else the mark expires by itself
            await db.write(store.cancel_delete, table=table, record_id=record_id, until=until)
        raise
    return Response(204, b"", None)


async def _refuse_if_referenced(referenced: Referenced, what: str, record_id: int) -> None:
    holder = await referenced()
    if holder:
        raise HttpError(409, f"{what} {record_id} still has {holder}; delete those first")
