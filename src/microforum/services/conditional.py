"""Conditional requests (RFC 9110 section 13): ETags, If-None-Match, If-Match.

A representation's ETag is a strong validator made from its bytes (a BLAKE2b digest), so it
changes exactly when the answer would: a read answers it, `If-None-Match` with it answers
304 with no body, and a change (PATCH, DELETE) with `If-Match` is refused with 412 unless the
record's current representation, read inside the write's transaction, has one of the tags.
Comparison is weak for If-None-Match and strong for If-Match (RFC 9110 8.8.3.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from microforum.services.http import HttpError, Response, encode_json

_CACHEABLE = (200, 201)
# Tags already made, by body: the read caches answer the same bytes again and again, and a
# bytes object keeps its hash, so a lookup costs a tenth of a digest. Bounded by their size.
# Only 200 answers are remembered: a 201's body (a new record) is answered once, and under a
# load of writes remembering them only held a megabyte of bodies (and as much again in tags
# and the dict) that no one would ask for again.
MEMO_BYTES = 1 << 20
_memo: dict[bytes, str] = {}
_memo_size = [0]


def etag_of(body: bytes, *, remember: bool = True) -> str:
    """The strong ETag of a representation (`remember`: keep it for the same bytes again)."""
    etag = _memo.get(body)
    if etag is None:
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        if not remember:
            return etag
        if _memo_size[0] + len(body) > MEMO_BYTES:
            _memo.clear()
            _memo_size[0] = 0
        _memo[body] = etag
        _memo_size[0] += len(body)
    return etag


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def none_match(header: str, etag: str) -> bool:
    """True when If-None-Match `header` lists `etag` (weakly) or is `*`: answer 304."""
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in _tags(header))


def with_etag(method: str, if_none_match: str | None, response: Response) -> Response:
    """`response` with its ETag; a 304 instead of a GET's 200 the client already has."""
    if response.status not in _CACHEABLE or response.content_type is None:
        return response
    etag = etag_of(response.body, remember=response.status == 200)
    if if_none_match and method in ("GET", "HEAD") and none_match(if_none_match, etag):
        return Response(304, b"", None, [("etag", etag)])
    response.headers.append(("etag", etag))
    return response


def if_match(header: str | None) -> Callable[[Any], None] | None:
    """The check of If-Match `header` against a record (None: no header, nothing to check).

    It raises 412 unless the record's JSON representation has one of the listed strong tags
    (or the header is `*`, which any existing record matches)."""
    if header is None:
        return None
    tags = _tags(header)
    if not tags:
        raise HttpError(400, "If-Match: expected '*' or a list of ETags", field="If-Match")

    def check(current: Any) -> None:
        if "*" in tags or etag_of(encode_json(current)) in tags:
            return
        raise HttpError(
            412,
            "If-Match: the record has changed; read it again",
            field="If-Match",
            headers=[("etag", etag_of(encode_json(current)))],
        )

    return check
