"""The load balancer's request reader as tables and transcripts (lb/reader.py; docs/alb.md,
"Reading requests"): bytes in, the heads, body bytes and ends the sink sees out, whole and fed
one byte at a time, and what it refuses."""

from __future__ import annotations

import pytest

from microforum.lb import reader as reader_module
from microforum.lb.headers import MAX_HEAD, MAX_HEADER, MAX_REQUEST_LINE
from microforum.lb.reader import (
    LAST,
    NEXT,
    STOP,
    ReadError,
    RequestHead,
    RequestReader,
    frame,
    split_head,
    split_plain_py,
    split_request_line,
    version_text,
)


class Recorder:
    """A sink: what it was called with, answering `answer` to every head."""

    def __init__(self, answer: int = NEXT) -> None:
        self.answer = answer
        self.events: list[tuple[object, ...]] = []
        self.flags: list[tuple[object, ...]] = []  # what each head says beside its parts

    def on_head(self, head: RequestHead) -> int:
        self.events.append(("head", head.method, head.target, head.version, tuple(head.headers)))
        self.flags.append(
            (head.raw, head.plain, head.version_text, head.keep_alive, head.framed, head.length)
        )
        return self.answer

    def on_body(self, body: bytes) -> None:
        assert body  # never an empty piece
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + body)  # type: ignore[operator]
        else:
            self.events.append(("body", body))

    def on_complete(self) -> None:
        self.events.append(("complete",))


def read(
    data: bytes, answer: int = NEXT, *, bytewise: bool = False, fast: bool = False
) -> tuple[list[tuple[object, ...]], RequestReader, Recorder]:
    """Feed `data` whole or byte by byte; `fast`: with the plain-head fast path (its Python
    reference in place of the C one, built or not)."""
    sink = Recorder(answer)
    reader = RequestReader(sink)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader_module, "_SPLIT_PLAIN", split_plain_py if fast else None)
        for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else [data]:
            reader.feed(piece)
    return sink.events, reader, sink


def both(data: bytes, answer: int = NEXT) -> list[tuple[object, ...]]:
    """The events of `data` fed whole, checked equal to those of it fed byte by byte, and with
    the fast path (same events, same flags)."""
    whole, _, sink = read(data, answer)
    for bytewise, fast in [(True, False), (False, True), (True, True)]:
        events, _, other = read(data, answer, bytewise=bytewise, fast=fast)
        assert (events, other.flags) == (whole, sink.flags)
    return whole


GET = ("head", b"GET", b"/", b"HTTP/1.1", ((b"Host", b"x"),))


def test_pipelined_requests_with_a_length_a_chunked_body_and_none() -> None:
    data = (
        b"\r\n\r\nPOST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1 \r\nabc\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert both(data) == [
        ("head", b"POST", b"/a", b"HTTP/1.1", ((b"Host", b"x"), (b"Content-Length", b"5"))),
        ("body", b"hello"),
        ("complete",),
        ("head", b"PUT", b"/b", b"HTTP/1.1", ((b"Transfer-Encoding", b"chunked"),)),
        ("body", b"abc0123456789"),
        ("complete",),
        GET,
        ("complete",),
    ]


def test_a_body_with_empty_lines_in_it_is_not_a_head() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n\n\n\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    events = both(data)
    assert events[1:] == [("body", b"\n\n\r\n\r\n"), ("complete",), GET, ("complete",)]


def test_bare_lf_heads() -> None:
    assert both(b"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n") == [GET, ("complete",)] * 2
    assert both(b"\n\nGET / HTTP/1.1\nHost: x\n\r\n") == [GET, ("complete",)]


def test_only_empty_lines_read_nothing_and_keep_nothing() -> None:
    events, reader, _ = read(b"\r\n\r\n\n")
    assert (events, reader.buffer) == ([], b"")
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reader.state == 0 and len(read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0]) == 2


@pytest.mark.parametrize(
    ("answer", "tail", "state"),
    [
        (STOP, [], 5),
        (LAST, [("body", b"ab"), ("complete",)], 5),
        (NEXT, [("body", b"ab"), ("complete",), GET], 0),
    ],
)
def test_what_the_sink_answers_decides_what_is_read_next(answer: int, tail: list[object], state: int) -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab" + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    events, reader, _ = read(data, answer)
    assert events[1:] == ([*tail, ("complete",)] if answer == NEXT else tail)
    assert reader.state == (0 if answer == NEXT else state)
    for bytewise, fast in [(True, False), (False, True), (True, True)]:
        assert read(data, answer, bytewise=bytewise, fast=fast)[0] == events


def test_an_unframed_request_is_the_last() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    events, reader, _ = read(data)
    assert events[1:] == [("complete",)] and reader.state == 5 and reader.buffer == b""


def test_a_partial_body_waits_for_the_rest() -> None:
    sink = Recorder()
    reader = RequestReader(sink)
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")
    assert (reader.state, reader.remaining) == (1, 6)
    reader.feed(b"456")
    assert reader.remaining == 3 and sink.events[-1] == ("body", b"0123456")
    reader.feed(b"789GET")
    assert sink.events[-2:] == [("body", b"0123456789"), ("complete",)] and reader.buffer == b"GET"
    reader.feed(b" / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sink.events[-2:] == [GET, ("complete",)]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"zz\r\n", "-"),  # not hex
        (b"\r\n", "-"),  # no size
        (b"1000000000000000\r\n", "-"),  # 16 digits
        (b"3\r\nabcX\r\n", "-"),  # chunk data not followed by CRLF
        (b"3\r\nabc\rX", "-"),
        (b"1" * 4097, "-"),  # a chunk-size line longer than 4096, its end not yet seen
        (b"0\r\n" + b"a" * (MAX_HEADER + 1), "RequestHeaderTooLarge"),  # a trailer line too long
        (b"0\r\n" + b"T: " + b"a" * (MAX_HEADER - 2) + b"\r\n", "RequestHeaderTooLarge"),
    ],
)
def test_chunked_bodies_refused(body: bytes, error: str) -> None:
    with pytest.raises(ReadError) as refused:
        read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert (refused.value.status, refused.value.error_reason) == (400, error)


def test_chunked_bodies_at_their_limits_are_read() -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    _, reader, _ = read(head + b"f" * 15 + b";" + b"x" * 4080)  # 4096 bytes, no CRLF yet
    assert reader.state == 2 and len(reader.buffer) == 4096
    assert both(head + b"000000000000002\r\nab\r\n0\r\n\r\n")[1:] == [("body", b"ab"), ("complete",)]
    trailer = b"T: " + b"a" * (MAX_HEADER - 3)  # a trailer line of exactly 16 KB
    assert read(head + b"0\r\n" + trailer + b"\r\n\r\n")[0][1:] == [("complete",)]
    _, reader, _ = read(head + b"0\r\n" + b"a" * MAX_HEADER)  # no CRLF yet, not over
    assert reader.state == 4 and len(reader.buffer) == MAX_HEADER


def test_trailers_count_with_the_head_towards_64_kb() -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = len(head) - 4
    line = b"T: " + b"a" * 9997  # 10,000 bytes and its CRLF
    fits = (MAX_HEAD - raw) // 10_002
    assert read(head + b"0\r\n" + (line + b"\r\n") * fits + b"\r\n")[0][-1] == ("complete",)
    with pytest.raises(ReadError):
        read(head + b"0\r\n" + (line + b"\r\n") * (fits + 1) + b"\r\n")
    last = b"T: " + b"a" * (MAX_HEAD - raw - fits * 10_002 - 5)  # the total exactly 64 KB
    assert read(head + b"0\r\n" + (line + b"\r\n") * fits + last + b"\r\n\r\n")[0][-1] == ("complete",)
    with pytest.raises(ReadError):
        read(head + b"0\r\n" + (line + b"\r\n") * fits + last + b"a\r\n\r\n")


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (b"PRI * HTTP/2.0\r\n", 505, "-"),  # the HTTP/2 preface, incomplete
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "-"),  # and complete
        (b"GET /" + b"a" * (MAX_REQUEST_LINE - 3) + b"x", 400, "RequestHeaderTooLarge"),  # no LF yet
        (
            b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * ((MAX_HEAD + MAX_REQUEST_LINE) // 6),
            400,
            "RequestHeaderTooLarge",
        ),
        (b"GET /" + b"a" * (MAX_REQUEST_LINE - 13) + b" HTTP/1.1\r\n\r\n", 400, "RequestHeaderTooLarge"),
        (b"GET / HTTP/1.1\r\nA: " + b"a" * (MAX_HEADER - 0) + b"\r\n\r\n", 400, "RequestHeaderTooLarge"),
    ],
)
def test_heads_refused(data: bytes, status: int, error: str) -> None:
    with pytest.raises(ReadError) as refused:
        read(data)
    assert (refused.value.status, refused.value.error_reason) == (status, error)


def test_heads_at_their_limits_are_read() -> None:
    _, reader, _ = read(b"GET /" + b"a" * (MAX_REQUEST_LINE - 4) + b"x")  # 16 KB and its CRLF, no LF yet
    assert len(reader.buffer) == MAX_REQUEST_LINE + 2
    line = b"GET /" + b"a" * (MAX_REQUEST_LINE - 14) + b" HTTP/1.1"  # exactly 16 KB
    assert read(line + b"\r\n\r\n")[0][-1] == ("complete",)
    field = b"A: " + b"a" * (MAX_HEADER - 1)  # name and value exactly 16 KB
    assert read(b"GET / HTTP/1.1\r\n" + field + b"\r\n\r\n")[0][-1] == ("complete",)
    fields = b"GET / HTTP/1.1\r\n" + (b"A: " + b"a" * 10_000 + b"\r\n") * 6 + b"\r\n"  # 60 KB
    assert read(fields)[0][-1] == ("complete",)
    _, reader, _ = read(b"GET / HTTP/1.1\r\n" + b"a" * (MAX_HEAD + MAX_REQUEST_LINE - 16))
    assert len(reader.buffer) == MAX_HEAD + MAX_REQUEST_LINE


def test_split_head_keeps_every_byte_and_judges_nothing() -> None:
    head = split_head(b"GET /a HTTP/1.1\r\nHost: x\r\nA:  b \t\r\n folded\r\n\tfolded\r\nno colon\r\nC: d\ne")
    assert (head.method, head.target, head.version, head.version_text) == (b"GET", b"/a", b"HTTP/1.1", "1.1")
    assert head.headers == [(b"Host", b"x"), (b"A", b"b"), (b"C", b"d\ne")]
    assert head.odd_lines == [
        ("MultilineHeader", b" folded"),
        ("MultilineHeader", b"\tfolded"),
        ("MissingHeaderColon", b"no colon"),
    ]  # fmt: skip
    assert (head.plain, head.line_ends) == (False, True)
    bare = split_head(b"GET / HTTP/1.0\nHost: x\nA: b")
    assert (bare.headers, bare.line_ends, bare.plain, bare.version_text) == (
        [(b"Host", b"x"), (b"A", b"b")], False, False, "1.0",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: b\tc", True),
        (b"GET / HTTP/1.1", True),
        (b"GET\t/ HTTP/1.1\r\nHost: x", False),
        (b"GET / HTTP/1.1\r\nHost: \x80", False),
        (b"GET / HTTP/1.1\r\nHost: x\ry", False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nno colon", False),
        (b"GET / HTTP/1.1" + b"\r\nA: b" * 127, True),
        (b"GET / HTTP/1.1" + b"\r\nA: b" * 128, False),  # (the fast path's check counts to 127)
    ],
)
def test_plain(raw: bytes, plain: bool) -> None:
    assert split_head(raw).plain is plain


@pytest.mark.parametrize(
    ("version", "text"),
    [
        (b"HTTP/1.1", "1.1"), (b"HTTP/1.0", "1.0"), (b"", "0.9"), (b" \t", "0.9"), (b"HTTP/0.9", "0.9"),
        (b" HTTP/0.9\t", "0.9"), (b"HTTP/1.2", "1.1"), (b"HTTP/1.9", "1.1"), (b"HTTP/1.10", "1.0"),
        (b"HTTP/1.x", "1.0"), (b"HTTP/2.0", "1.0"), (b"http/1.1", "1.0"), (b"HTTP/1.1 ", "1.0"),
        (b"XTTP/1.1", "1.0"),
    ],
)  # fmt: skip
def test_version_text(version: bytes, text: str) -> None:
    assert version_text(version) == text


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        (b"GET /a b HTTP/1.1", (b"GET", b"/a b", b"HTTP/1.1")),
        (b"GET /", (b"GET", b"/", b"")),
        (b"GET / junk", (b"GET", b"/", b"junk")),
        (b"GET /a b junk", (b"GET", b"/a b", b"junk")),
        (b"GET", (b"GET", b"", b"")),
        (b"GET /x HTTP/1.1 HTTP/1.0", (b"GET", b"/x", b"HTTP/1.1 HTTP/1.0")),
    ],
)
def test_split_request_line(line: bytes, parts: tuple[bytes, bytes, bytes]) -> None:
    assert split_request_line(line) == parts


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x",  # no end yet
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET /\tHTTP/1.1\r\n\r\n",
        b"GET\t/ HTTP/1.1\r\n\r\n",
        b" / HTTP/1.1\r\n\r\n",
        b"GET  HTTP/1.1\r\n\r\n",
        b"GET / \r\n\r\n",
        b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n\tfolded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
    ],
)
def test_split_plain_refuses_what_is_not_plain(data: bytes) -> None:
    assert split_plain_py(data) is None


def test_split_plain_agrees_with_split_head() -> None:
    data = b"GET /a HTTP/1.1\r\nHost: x\r\nA:\t b \r\n\r\nrest"
    raw, method, target, version, fields, after = split_plain_py(data)  # type: ignore[misc]
    head = split_head(raw)
    assert (raw, method, target, version, fields) == (
        head.raw,
        head.method,
        head.target,
        head.version,
        head.headers,
    )
    assert data[after:] == b"rest" and head.plain


def framed(*fields: bytes, version: bytes = b"HTTP/1.1") -> tuple[bool, bool, int, bool]:
    head = split_head(b"\r\n".join([b"POST / " + version, *fields]))
    frame(head)
    return head.framed, head.chunked, head.length, head.keep_alive


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ((), (True, False, 0, True)),
        ((b"Content-Length: 5",), (True, False, 5, True)),
        ((b"content-LENGTH: 5", b"Content-Length: 5"), (True, False, 5, True)),
        ((b"Content-Length: 5", b"Content-Length: 6"), (False, False, 0, False)),
        ((b"Content-Length: +5",), (False, False, 0, False)),
        ((b"Content-Length: ",), (False, False, 0, False)),
        ((b"Content-Length: " + b"9" * 18,), (True, False, 10**18 - 1, True)),
        ((b"Content-Length: " + b"1" * 19,), (False, False, 0, False)),
        ((b"Content-Length : 5",), (True, False, 0, True)),  # not the field's name
        ((b"Transfer-Encoding: chunked",), (True, True, 0, True)),
        ((b"transfer-encoding: gzip, Chunked ; q=1",), (True, True, 0, True)),
        ((b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"), (True, True, 0, True)),
        ((b"Transfer-Encoding: chunked, gzip",), (False, False, 0, False)),
        ((b"Transfer-Encoding: chunked, chunked",), (False, False, 0, False)),
        ((b"Transfer-Encoding: gzip",), (False, False, 0, False)),
        ((b"Transfer-Encoding: chunked", b"Content-Length: 5"), (True, True, 0, False)),
        ((b"Connection: close",), (True, False, 0, False)),
        ((b"Connection: foo , CLOSE",), (True, False, 0, False)),
        ((b"Connection: foo", b"Connection: close"), (True, False, 0, False)),
        ((b"Connection: Upgrade",), (True, False, 0, False)),
        ((b"Connection: keep-alive",), (True, False, 0, True)),
        ((b"Connection: closed",), (True, False, 0, True)),
    ],
)
def test_frame(fields: tuple[bytes, ...], want: tuple[bool, bool, int, bool]) -> None:
    assert framed(*fields) == want


@pytest.mark.parametrize(
    ("version", "fields", "keep_alive"),
    [
        (b"HTTP/1.0", (), False),
        (b"HTTP/1.0", (b"Connection: Keep-Alive",), True),
        (b"HTTP/1.0", (b"Connection: keep-alive, close",), False),
        (b"HTTP/1.0", (b"Connection: foo",), False),
        (b"HTTP/1.0", (b"Transfer-Encoding: chunked", b"Connection: keep-alive"), False),
        (b"HTTP/0.9", (b"Connection: keep-alive",), False),
        (b"", (), False),
        (b"HTTP/2.0", (b"Connection: keep-alive",), True),  # answered as 1.0
        (b"HTTP/1.2", (), True),
    ],
)
def test_keep_alive_by_version(version: bytes, fields: tuple[bytes, ...], keep_alive: bool) -> None:
    assert framed(*fields, version=version)[3] is keep_alive


def test_bare_lf_heads_pipelined_and_one_ending_the_data() -> None:
    one = b"GET / HTTP/1.1\nHost: x\n\n"
    assert both(one) == [GET, ("complete",)]
    assert both(one + b"GET /2 HTTP/1.1\nHost: x\n\n")[2:] == [
        ("head", b"GET", b"/2", b"HTTP/1.1", ((b"Host", b"x"),)), ("complete",),
    ]  # fmt: skip


def test_only_empty_lines_are_skipped_before_a_request_line() -> None:
    assert both(b"\r\n GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0][1:3] == (b"", b"GET /")
    assert both(b"\r\nXGET / HTTP/1.1\r\nHost: x\r\n\r\n")[0][1] == b"XGET"


def test_a_finished_buffer_is_emptied() -> None:
    _, reader, _ = read(b"GET / HTTP/1.1\r\nHo")
    assert reader.buffer == b"GET / HTTP/1.1\r\nHo"
    reader.feed(b"st: x\r\n\r\n")
    assert reader.buffer == b""


def test_field_values_keep_colons_and_every_byte_but_spaces_and_tabs_at_their_ends() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x:80\r\nA: \x0bb\x0c \r\nB: Xb X\r\nC: \t"
    assert split_head(raw).headers == [(b"Host", b"x:80"), (b"A", b"\x0bb\x0c"), (b"B", b"Xb X"), (b"C", b"")]
    plain = split_plain_py(b"GET / HTTP/1.1\r\nHost: x:80\r\nB: Xb X\r\n\r\n")
    assert plain is not None and plain[4] == [(b"Host", b"x:80"), (b"B", b"Xb X")]


def test_split_plain_ends_at_the_first_head() -> None:
    data = b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    plain = split_plain_py(data)
    assert plain is not None and (plain[2], plain[5]) == (b"/1", 28)


@pytest.mark.parametrize(
    ("version", "text"),
    [(b"\x0b", "1.0"), (b"X", "1.0"), (b"HTTP/0.9\x0b", "1.0"), (b"XHTTP/0.9", "1.0"), (b"HTTP/0.9X", "1.0")],
)
def test_version_text_strips_only_spaces_and_tabs(version: bytes, text: str) -> None:
    assert version_text(version) == text


def test_a_request_line_with_an_empty_target() -> None:
    assert split_request_line(b"GET  junk") == (b"GET", b"", b"junk")


@pytest.mark.parametrize(
    ("line", "size"), [(b"5 \t", 5), (b"10", 16), (b"1f;x=y", 31), (b"a \t;x", 10), (b"0", 0)]
)
def test_chunk_sizes(line: bytes, size: int) -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"z" * size
    events = both(head + line + b"\r\n" + body + (b"\r\n0\r\n\r\n" if size else b"\r\n"))
    assert events[1:] == ([("body", body)] if size else []) + [("complete",)]


@pytest.mark.parametrize("line", [b" 5", b"5\x0b", b"5X", b"5 X", b"-5", b"0x5"])
def test_chunk_sizes_refused(line: bytes) -> None:
    with pytest.raises(ReadError) as refused:
        read(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + line + b"\r\nzzzzz\r\n0\r\n\r\n")
    assert (refused.value.status, refused.value.error_reason) == (400, "-")


def test_connection_and_coding_tokens_strip_only_spaces_and_tabs() -> None:
    assert framed(b"Connection: \x0bclose")[3] is True  # not the token `close`
    assert framed(b"Connection: close", b"Connection: foo")[3] is False  # every Connection field counts
    assert framed(b"Transfer-Encoding: chunkedX")[:2] == (False, False)
    assert framed(b"Transfer-Encoding: \x0bchunked")[:2] == (False, False)


def test_read_error_defaults_and_args() -> None:
    error = ReadError(400)
    assert (error.status, error.error_reason, error.args) == (400, "-", (400, "-"))
    assert ReadError(505, "x").args == (505, "x")


def test_a_head_and_a_reader_as_built() -> None:
    head = RequestHead(b"GET / HTTP/1.1", b"GET", b"/", b"HTTP/1.1", [])
    assert (head.plain, head.line_ends, head.keep_alive, head.version_text, head.framed) == (
        False, True, True, "1.1", True,
    )  # fmt: skip
    reader = RequestReader(Recorder())
    assert (reader.state, reader.buffer, reader.remaining, reader.trailer_bytes, reader.last) == (
        0,
        b"",
        0,
        0,
        False,
    )


def test_the_request_line_limit_applies_to_heads_over_16_kb_too() -> None:
    line = b"GET /" + b"a" * (MAX_REQUEST_LINE - 14) + b" HTTP/1.1"  # exactly 16 KB
    assert read(line + b"\r\nHost: x\r\n\r\n")[0][-1] == ("complete",)
    with pytest.raises(ReadError):
        read(line.replace(b"GET", b"GETX") + b"\r\nHost: x\r\n\r\n")


def test_a_whole_head_up_to_80_kb_is_read_here_and_judged_by_its_size_later() -> None:
    base = b"GET / HTTP/1.1" + (b"\r\nA: " + b"a" * 15_995) * 5
    raw = base + b"\r\nB: " + b"b" * (MAX_HEAD + MAX_REQUEST_LINE - len(base) - 5)
    assert len(raw) == MAX_HEAD + MAX_REQUEST_LINE
    assert read(raw + b"\r\n\r\n")[2].flags[0][0] == raw
    with pytest.raises(ReadError):
        read(raw + b"b\r\n\r\n")


class Heads(Recorder):
    """A recorder that keeps the head objects too."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: list[RequestHead] = []

    def on_head(self, head: RequestHead) -> int:
        self.heads.append(head)
        return super().on_head(head)


A = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize(
    ("second", "same"),
    [
        (A, True),  # repeated byte for byte: the same head, judged and framed once
        (b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"GET /a HTTP/1.1\r\nHost: xy\r\n\r\n", False),  # the previous head and more of a line
        (b"GET /a HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n", False),  # ... and more lines
        (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\r\n\r\n", False),
        (b"\r\n" + A, True),  # empty lines before it are skipped first
    ],
)
def test_a_plain_head_repeated_is_handed_on_as_the_same_head(second: bytes, same: bool) -> None:
    for bytewise in (False, True):
        sink = Heads()
        reader = RequestReader(sink)
        for piece in [A, second] if not bytewise else [A, *(second[i : i + 1] for i in range(len(second)))]:
            reader.feed(piece)
        first, then = sink.heads
        assert (then is first) is same
        alone = Recorder()
        RequestReader(alone).feed(second)  # the same as read on a fresh connection
        assert (sink.events[2:], sink.flags[1:]) == (alone.events, alone.flags)


def test_a_repeated_head_is_read_with_its_body_again() -> None:
    post = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
    sink = Heads()
    RequestReader(sink).feed(post + b"ab" + post + b"cd" + post + b"ef")
    assert sink.heads[0] is sink.heads[1] is sink.heads[2]
    assert [e for e in sink.events if e[0] == "body"] == [("body", b"ab"), ("body", b"cd"), ("body", b"ef")]


def test_only_a_plain_head_is_remembered() -> None:
    bare = b"GET /a HTTP/1.1\nHost: x\n\n"
    sink = Heads()
    reader = RequestReader(sink)
    reader.feed(bare + bare)
    assert sink.heads[0] is not sink.heads[1] and reader.previous is None
    reader.feed(A)
    assert reader.previous is sink.heads[2]
