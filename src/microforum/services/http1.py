"""HTTP/1.1 on the wire for the services' server: pure pieces, no sockets and no event loop.

What the connection (`microforum.services.connection`) needs to decide and to send: the
target of a request split into a decoded path and a raw query, whether a request may be read
and answered at all (its head within `MAX_HEAD`), and a whole response as one `bytes`, so
that it leaves in a single write.

The framing follows RFC 9112 and RFC 9110: a response to HEAD carries the Content-Length of
the body it leaves out (9110 9.3.2); a 204 has neither body nor Content-Length (9110 8.6);
a connection that will close says `connection: close`, and an HTTP/1.0 client that asked for
keep-alive is told `connection: keep-alive` (9112 9.3, 9112 C.2.2).
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from http import HTTPStatus
from typing import Final

import httptools

MAX_HEAD: Final = 64 * 1024  # request line + headers; beyond it 431 and close
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS: Final = {s.value: s.phrase for s in HTTPStatus}
_RFC9110_REASONS: Final = {413: "Content Too Large", 422: "Unprocessable Content"}


def http_date(now: float) -> bytes:
    """The Date header's value for the epoch time `now` (IMF-fixdate)."""
    return email.utils.formatdate(now, usegmt=True).encode()


def split_target(url: bytes) -> tuple[str, str]:
    """(path, query) of a request target, both as sent (percent-encoded): the path is routed
    exactly as the load balancer's rules match it, so a rule cannot be bypassed by encoding
    (docs/alb.md, "Paths"); route parameters are decoded once matched (routing.py).

    An absolute-form target (`GET http://host/path`) gives its path; a fragment is dropped.
    Raises `httptools.HttpParserInvalidURLError` on a target that is not a URL.
    """
    if url.startswith(b"/"):  # origin-form, the usual case: no URL parser needed
        raw, _, query = url.partition(b"?")
        raw = raw.partition(b"#")[0]
        query = query.partition(b"#")[0]
    else:
        parsed = httptools.parse_url(url)
        raw, query = parsed.path or b"/", parsed.query or b""
    return raw.decode("latin-1"), query.decode("latin-1")


def status_line(status: int) -> bytes:
    """`HTTP/1.1 200 OK\\r\\n` for `status`."""
    reason = _RFC9110_REASONS.get(status) or _REASONS.get(status, "")
    return f"HTTP/1.1 {status} {reason}\r\n".encode()


_STATUS_LINES: Final = {code: status_line(code) for code in _REASONS}


def encode_response(
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    *,
    date: bytes,
    head: bool = False,
    keep_alive: bool = True,
    http10: bool = False,
) -> bytes:
    """A whole response: status line, `headers`, framing headers, Date, then `body`.

    `head`: the request was HEAD (the length is sent, the body is not). `keep_alive` False
    adds `connection: close`; True for an HTTP/1.0 client adds `connection: keep-alive`.
    """
    return encode_head_and_body(status, header_lines(headers), body, date, head, keep_alive, http10)


def header_lines(headers: Iterable[tuple[str, str]]) -> str:
    """`name: value\\r\\n` for each header."""
    return "".join([f"{k}: {v}\r\n" for k, v in headers])


def encode_head_and_body(
    status: int, lines: str, body: bytes, date: bytes, head: bool, keep_alive: bool, http10: bool
) -> bytes:
    """`encode_response` with the headers already formatted as `lines` (the server's path)."""
    if not keep_alive:
        lines += "connection: close\r\n"
    elif http10:
        lines += "connection: keep-alive\r\n"
    start = _STATUS_LINES.get(status) or status_line(status)
    if status == 204 or status < 200 or status == 304:
        return b"%s%sdate: %s\r\n\r\n" % (start, lines.encode("latin-1"), date)
    return b"%s%scontent-length: %d\r\ndate: %s\r\n\r\n%s" % (
        start,
        lines.encode("latin-1"),
        len(body),
        date,
        b"" if head else body,
    )
