"""What every resource router shares: the request context and the documented error answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microforum.services.http import JSON_TYPE, HttpError, Problem, Request, Response
from microforum.services.model import MAX_ID
from microforum.services.params import MAX_LIMIT, loose_id
from microforum.services.refs import References
from microforum.services.storage import Database


@dataclass(frozen=True)
class Context:
    """A service's handles: the databases of the resources it owns, and its references."""

    service: str
    databases: dict[str, Database]
    refs: References

    def db(self, resource: str) -> Database:
        """The database holding `resource`."""
        return self.databases[resource]


def path_id(params: dict[str, str], name: str, what: str) -> int:
    """The record id in path parameter `name`, compared as the original did; 404 when none."""
    raw = params[name]
    value = loose_id(raw)
    if value is None:
        raise HttpError(404, f"no {what} with id {raw!r}")
    return value


def referable_asked(request: Request) -> bool:
    """True when the request asks whether a new record may refer to this one
    (`?referable=true`: 404 also while a delete of it is in progress)."""
    return bool(request.query_string) and request.query.get("referable") == "true"


def json_body(body: bytes | None) -> Response:
    """A 200 answer of already-encoded JSON."""
    return Response(200, body or b"null", JSON_TYPE)


def not_found(what: str, ident: int) -> HttpError:
    """The 404 for a missing record."""
    return HttpError(404, f"no {what} with id {ident}")


PAGE_QUERY: list[tuple[str, dict[str, Any], str]] = [
    (
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "Answer one page of at most this many items (a Link rel=next header points at the next)",
    ),
    (
        "cursor",
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "Opaque cursor from X-Next-Cursor: answer the page after it",
    ),
]

REFERABLE = (
    "referable",
    {"type": "boolean"},
    "true: answer 404 also while a delete of the record is in progress (asked by the services"
    " before they refer to it)",
)

BAD_BODY = {
    400: ("Malformed JSON, or a malformed If-Match or Idempotency-Key", Problem),
    413: ("Body larger than 1 MiB", Problem),
    415: ("Content-Type is not application/json", Problem),
    422: (
        "A field breaks its rules (`field` names it), or the Idempotency-Key was used with another body",
        Problem,
    ),
}
NOT_FOUND = {404: ("No record with this id", Problem)}
# Every operation that reads or writes the database may answer 503 (Retry-After: when to retry).
READ_UNAVAILABLE = {503: ("The database did not answer", Problem)}
WRITE_UNAVAILABLE = {503: ("The database did not answer; nothing was written", Problem)}
UNAVAILABLE = {
    503: ("The database or a service this one depends on did not answer; nothing was written", Problem)
}
NOT_MODIFIED = {304: ("Not modified: If-None-Match names the current ETag", None)}
READ = {**NOT_MODIFIED, **READ_UNAVAILABLE}
PRECONDITION = {412: ("If-Match does not name the current ETag; nothing was changed", Problem)}
BAD_IF_MATCH = {400: ("If-Match is malformed", Problem)}
IN_FLIGHT = {409: ("A request with this Idempotency-Key is still being answered", Problem)}
BAD_QUERY = {400: ("limit, cursor or an id is malformed; `field` names it", Problem)}
