"""Idempotency-Key on POST (draft-ietf-httpapi-idempotency-key-header).

A create sent with an `Idempotency-Key` header keeps its answer (status, Location, body) in
the resource's `<table>_idempotency` table, in the same transaction as the record it made,
so the two exist together or not at all. The same key again, with the same payload, within
`IDEMPOTENCY_TTL` answers the kept answer without writing; with another payload, 422 (the
draft's answer for a reused key); while the first request with the key is still being
answered, 409. Only successes are kept: a refused create wrote nothing, and a retry is
answered afresh. The payload's fingerprint is the SHA-256 of the path and the decoded body
re-encoded, so spacing and key order in the JSON do not matter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from microforum.services.http import JSON_TYPE, HttpError, Request, Response, encode_json
from microforum.services.settings import IDEMPOTENCY_TTL
from microforum.services.storage import ONE_STATEMENT, Conn, Statement

MAX_KEY_LENGTH = 255
HEADER = "idempotency-key"


class KeyTaken(Exception):
    """Another create with the same key committed first."""


@dataclass(frozen=True)
class Kept:
    """An answer kept for a key."""

    fingerprint: str
    status: int
    location: str
    body: str

    def replay(self, fingerprint: str) -> Response:
        """The kept answer, if `fingerprint` is the first request's; 422 otherwise."""
        if fingerprint != self.fingerprint:
            raise HttpError(
                422, "Idempotency-Key: already used for a different request body", field="Idempotency-Key"
            )
        headers = [("location", self.location), ("idempotent-replayed", "true")]
        return Response(self.status, self.body.encode(), JSON_TYPE, headers)


def key_of(request: Request) -> str | None:
    """The request's Idempotency-Key (400 when it is empty, too long or not printable)."""
    key = request.header(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise HttpError(
            400,
            f"Idempotency-Key: must be 1..{MAX_KEY_LENGTH} printable ASCII characters",
            field="Idempotency-Key",
        )
    return key


def fingerprint(path: str, payload: Any) -> str:
    """The fingerprint of a create: its path and decoded body."""
    return hashlib.sha256(path.encode() + b"\n" + encode_json(payload)).hexdigest()


# --- storage functions ---------------------------------------------------------------------


def recall(conn: Conn, *, table: str, key: str, now: float) -> Kept | None:
    """The answer kept for `key` within the last IDEMPOTENCY_TTL seconds, or None."""
    row = conn.one(
        f"SELECT fingerprint, status, location, body FROM {table}_idempotency WHERE key = ? AND created >= ?",
        (key, now - IDEMPOTENCY_TTL),
    )
    return Kept(*row) if row else None


def create_keeping(
    conn: Conn,
    *,
    create: Callable[..., Any],
    fields: dict[str, Any],
    table: str,
    key: str | None,
    fingerprint: str,
    location: Callable[[Any], str],
    now: float,
) -> Any:
    """`create(conn, **fields)`, keeping its 201 answer under `key` (KeyTaken when another
    create kept one first: everything is undone). Expired answers are dropped here."""
    record = create(conn, **fields)
    if key is None:
        return record
    conn.run(f"DELETE FROM {table}_idempotency WHERE created < ?", (now - IDEMPOTENCY_TTL,))
    kept = conn.run(
        f"INSERT INTO {table}_idempotency (key, fingerprint, status, location, body, created)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (key, fingerprint, 201, location(record), encode_json(record).decode(), now),
    )
    if not kept:
        raise KeyTaken(key)
    return record


def _keeping_statement(*, create: Callable[..., Any], fields: dict[str, Any], key: str | None,
                       **_: Any) -> Statement | None:  # fmt: skip
    """`create_keeping` as one statement: without a key it is its create alone, one statement
    when that is (storage.ONE_STATEMENT); with a key it is three."""
    describe = ONE_STATEMENT.get(create)
    return describe(**fields) if key is None and describe is not None else None


ONE_STATEMENT[create_keeping] = _keeping_statement


def forget(conn: Conn, *, table: str, key: str | None) -> None:
    """Drop the answer kept for `key` (its create was undone)."""
    if key is not None:
        conn.run(f"DELETE FROM {table}_idempotency WHERE key = ?", (key,))
