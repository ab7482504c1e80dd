"""HTTP building blocks of the services: requests, responses, JSON problem bodies.

Responses carry exactly the content types the original Koa services sent
(`application/json; charset=utf-8`, `text/plain; charset=utf-8`). Every error is a JSON
problem body (RFC 9457's members, served as application/json) naming what was wrong:

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "username: must match ^[A-Za-z0-9_.-]+$", "field": "username"}
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, TypeVar

import msgspec

from microforum.services.settings import MAX_BODY_BYTES

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
Headers = list[tuple[str, str]]
S = TypeVar("S")

_encoder = msgspec.json.Encoder()
encode_json = _encoder.encode


@dataclass(slots=True)
class Response:
    """What a handler returns; the app adds content-length and the trace id."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: Headers = field(default_factory=list)


def json_response(value: Any, status: int = 200, headers: Headers | None = None) -> Response:
    """A JSON response (msgspec-encoded)."""
    return Response(status, encode_json(value), JSON_TYPE, headers or [])


def text_response(text: str, status: int = 200) -> Response:
    """A text/plain response."""
    return Response(status, text.encode(), TEXT_TYPE)


class Problem(msgspec.Struct, omit_defaults=True):
    """The JSON body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None


class HttpError(Exception):
    """Raised anywhere under a handler; the app answers it as a problem response."""

    def __init__(
        self, status: int, detail: str, *, field: str | None = None, headers: Headers | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.headers = headers or []

    def response(self) -> Response:
        """The problem response for this error."""
        return problem(self.status, self.detail, field=self.field, headers=self.headers)


# RFC 9110's names, which older Pythons' HTTPStatus phrases predate (same on every Python).
_RFC9110_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def problem(
    status: int, detail: str, *, field: str | None = None, headers: Headers | None = None
) -> Response:
    """A problem response: status, its standard title, a detail sentence, the field at fault."""
    title = _RFC9110_TITLES.get(status) or HTTPStatus(status).phrase
    body = Problem("about:blank", title, status, detail, field)
    return json_response(body, status, headers)


class HeaderSource(Protocol):
    """Request headers by lower-case name (`AsgiHeaders`, or any mapping)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of header `key`, or `default`."""
        ...


class AsgiHeaders:
    """An ASGI scope's header list, looked up like RSGI's headers."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, key: str, default: Any = None) -> Any:
        name = key.encode("latin-1")
        for k, value in self._raw:
            if k == name:
                return value.decode("latin-1")
        return default


class Request:
    """One HTTP request as a handler sees it: method, path parameters, query, body."""

    __slots__ = ("_chunks", "_query", "headers", "method", "params", "path", "query_string", "trace")

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: HeaderSource,
        chunks: Callable[[], AsyncIterator[bytes]],
        params: dict[str, str],
        trace: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.params = params
        self._chunks = chunks  # the body, chunk by chunk, when asked for
        self._query: dict[str, str] | None = None
        self.trace = trace  # its X-Amzn-Trace-Id, carried on to the calls made to answer it

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), or None."""
        value: str | None = self.headers.get(name)
        return value

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, first value of each (percent-decoded as UTF-8; `?limit=` is kept
        as an empty value, to be refused, not ignored)."""
        if self._query is None:
            pairs = urllib.parse.parse_qsl(
                self.query_string, keep_blank_values=True, encoding="utf-8", errors="replace"
            )
            self._query = {}
            for key, value in pairs:
                self._query.setdefault(key, value)
        return self._query

    async def body(self) -> bytes:
        """The request body, refusing more than MAX_BODY_BYTES with 413."""
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise _too_large()
        chunks, size = [], 0
        async for chunk in self._chunks():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self, model: type[S]) -> S:
        """The body decoded as JSON into `model`: 415, 413, 400 or 422 when it is not one."""
        content_type = (self.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise HttpError(
                415,
                "request body must be JSON: send Content-Type: application/json",
                field="Content-Type",
            )
        return decode_body(await self.body(), model)


_FIELD_AT = re.compile(r"at `\$\.?([^`]*)`")
_FIELD_NAMED = re.compile(r"field `([^`]*)`")


def _too_large() -> HttpError:
    return HttpError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")


def decode_body(body: bytes, model: type[S]) -> S:
    """Decode and validate `body`: malformed JSON → 400, a value against the rules → 422.

    Whatever the bytes, the answer is the decoded value or an HttpError 400/422 naming the
    problem (a property-based test feeds it arbitrary bytes).
    """
    try:
        return msgspec.json.decode(body, type=model)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _FIELD_AT.search(message) or _FIELD_NAMED.search(message)
        name = match.group(1) if match else None
        detail = f"{name}: {message}" if name else message
        raise HttpError(422, detail, field=name or None) from None
    except msgspec.DecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:  # msgspec checks UTF-8 only inside strings, and says it so
        raise HttpError(400, f"request body is not valid UTF-8: {_first_bad_byte(body)}") from None
    except RecursionError:
        raise HttpError(400, "request body is not valid JSON: nested too deeply") from None


def _first_bad_byte(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte 0x{body[exc.start]:02x} at offset {exc.start} ({exc.reason})"
    return "an invalid sequence"
