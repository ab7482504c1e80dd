"""The wire pieces of the services' server, as tables: targets, response bytes, Date."""

from __future__ import annotations

import httptools
import pytest

from microforum.services.http1 import encode_response, http_date, split_target, status_line

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/api/users", "/api/users", ""),
        (b"/api/users?limit=2&after=5", "/api/users", "limit=2&after=5"),
        (b"/api/users?q=%20a+b", "/api/users", "q=%20a+b"),  # the query stays raw
        (b"/", "/", ""),
        (b"/?", "/", ""),
        (b"/a?b?c", "/a", "b?c"),
        (b"/api/users/caf%C3%A9", "/api/users/caf%C3%A9", ""),  # as sent: routed as ALB matches
        (b"/%41%42", "/%41%42", ""),
        (b"/a%2Fb", "/a%2Fb", ""),
        (b"/a+b", "/a+b", ""),  # `+` is a space only in a query
        (b"/a%zz", "/a%zz", ""),
        (b"/p#frag", "/p", ""),
        (b"/p?q=1#frag", "/p", "q=1"),
        (b"//double", "//double", ""),
        (b"http://host:3000/api/users?x=1", "/api/users", "x=1"),  # absolute form
        (b"http://host", "/", ""),
        (b"*", "*", ""),
    ],
    ids=lambda v: v.decode("latin-1") if isinstance(v, bytes) else None,
)
def test_split_target(target: bytes, path: str, query: str) -> None:
    assert split_target(target) == (path, query)


def test_split_target_refuses_what_is_no_url() -> None:
    with pytest.raises(httptools.HttpParserInvalidURLError):
        split_target(b"host:443")


JSON = ("content-type", "application/json; charset=utf-8")


@pytest.mark.parametrize(
    ("status", "headers", "body", "options", "expected"),
    [
        pytest.param(
            200,
            [JSON],
            b"[1]",
            {},
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: 3\r\ndate: " + DATE + b"\r\n\r\n[1]",
            id="200",
        ),
        pytest.param(
            200,
            [],
            b"",
            {},
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: " + DATE + b"\r\n\r\n",
            id="200-empty",
        ),
        pytest.param(
            200,
            [JSON],
            b"[1]",
            {"head": True},
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: 3\r\ndate: " + DATE + b"\r\n\r\n",
            id="HEAD-keeps-length",
        ),
        pytest.param(204, [], b"", {}, b"HTTP/1.1 204 No Content\r\ndate: " + DATE + b"\r\n\r\n", id="204"),
        pytest.param(
            204,
            [],
            b"ignored",
            {},
            b"HTTP/1.1 204 No Content\r\ndate: " + DATE + b"\r\n\r\n",
            id="204-body-dropped",
        ),
        pytest.param(
            204,
            [],
            b"",
            {"head": True},
            b"HTTP/1.1 204 No Content\r\ndate: " + DATE + b"\r\n\r\n",
            id="HEAD-204",
        ),
        pytest.param(
            304,
            [("etag", '"x"')],
            b"",
            {},
            b'HTTP/1.1 304 Not Modified\r\netag: "x"\r\ndate: ' + DATE + b"\r\n\r\n",
            id="304",
        ),
        pytest.param(
            404,
            [JSON],
            b'{"status":404}',
            {},
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: 14\r\ndate: " + DATE + b'\r\n\r\n{"status":404}',
            id="404",
        ),
        pytest.param(
            404,
            [],
            b"",
            {},
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\ndate: " + DATE + b"\r\n\r\n",
            id="404-empty",
        ),
        pytest.param(
            404,
            [JSON],
            b'{"status":404}',
            {"head": True},
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: 14\r\ndate: " + DATE + b"\r\n\r\n",
            id="HEAD-404",
        ),
        pytest.param(
            200,
            [],
            b"x",
            {"keep_alive": False},
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\ndate: " + DATE + b"\r\n\r\nx",
            id="close",
        ),
        pytest.param(
            200,
            [],
            b"x",
            {"http10": True},
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\ndate: " + DATE + b"\r\n\r\nx",
            id="http10-keep-alive",
        ),
        pytest.param(
            200,
            [],
            b"x",
            {"http10": True, "keep_alive": False},
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\ndate: " + DATE + b"\r\n\r\nx",
            id="http10-close",
        ),
        pytest.param(
            201,
            [("location", "/api/users/9"), JSON],
            b"{}",
            {},
            b"HTTP/1.1 201 Created\r\nlocation: /api/users/9\r\ncontent-type: application/json;"
            b" charset=utf-8\r\ncontent-length: 2\r\ndate: " + DATE + b"\r\n\r\n{}",
            id="201",
        ),
    ],
)
def test_encode_response(
    status: int, headers: list[tuple[str, str]], body: bytes, options: dict[str, bool],
    expected: bytes,
) -> None:  # fmt: skip
    assert encode_response(status, headers, body, date=DATE, **options) == expected


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (200, b"HTTP/1.1 200 OK\r\n"),
        (413, b"HTTP/1.1 413 Content Too Large\r\n"),  # RFC 9110's names
        (422, b"HTTP/1.1 422 Unprocessable Content\r\n"),
        (431, b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        (599, b"HTTP/1.1 599 \r\n"),  # no reason known: empty, as RFC 9112 4 allows
    ],
)
def test_status_line(status: int, line: bytes) -> None:
    assert status_line(status) == line


@pytest.mark.parametrize(
    ("now", "date"),
    [
        (0, b"Thu, 01 Jan 1970 00:00:00 GMT"),
        (784111777, DATE),  # RFC 9110 5.6.7's example
        (784111777.999, DATE),  # whole seconds
        (1709251199, b"Thu, 29 Feb 2024 23:59:59 GMT"),
    ],
)
def test_http_date(now: float, date: bytes) -> None:
    assert http_date(now) == date
