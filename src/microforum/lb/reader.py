"""The load balancer's reader of client requests. Pure: bytes in, calls on a sink out.

The head is read byte-exact and tolerantly, so that whatever a client sends can be classified
first (desync.py) and decided second, as ALB does (docs/alb.md, "Reading requests"): empty lines
before the request line are skipped (RFC 9112 §2.2), a line may end with a bare LF (then every
line does: `line_ends`), a field line may lack its colon or be folded (`odd_lines`), names and
values keep every byte they came with. Nothing about the body is tolerant: its framing is one
exact `Content-Length` (or several equal ones) or `Transfer-Encoding` ending in `chunked`; any
other shape is `framed = False` and the connection carries nothing after that head.

    reader = RequestReader(sink)   # sink: on_head(head) -> int, on_body(bytes), on_complete()
    reader.feed(data)              # raises ReadError(status, error_reason) on what it refuses

`on_head` says what to read next: NEXT (the body, then the next request), LAST (the body, then
nothing: the request closes the connection) or STOP (nothing: the request was refused). What
is not read is dropped. Limits (ALB's, headers.py): the request line 16 KB, one field 16 KB,
head and trailer fields together 64 KB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from microforum.lb import speedups
from microforum.lb.headers import MAX_HEAD, MAX_HEADER, MAX_REQUEST_LINE

# Reader states (Final ints: compiled, C constants).
HEAD: Final = 0
LENGTH: Final = 1  # a body of known length: `remaining` bytes to come
CHUNK_SIZE: Final = 2  # a chunk-size line (or the last chunk's trailer section) to come
CHUNK_DATA: Final = 3  # `remaining` bytes of chunk data, then its CRLF
TRAILERS: Final = 4
DONE: Final = 5  # nothing more is read on this connection
# What `on_head` answers.
STOP: Final = 0
LAST: Final = 1
NEXT: Final = 2

_CR: Final = 13
_LF: Final = 10
_SP: Final = 32
_HT: Final = 9
MAX_CHUNK_LINE: Final = 4096  # a chunk-size line with its extensions (generous; ALB: not documented)
_PREFACE: Final = b"PRI * HTTP/2.0"  # RFC 9113 §3.4: the HTTP/2 connection preface
# Bytes that may appear in a head as sent by any well-behaved client, CR and LF aside: deleted
# by `translate`, so that what remains of a plain head is its CRLFs alone.
_VISIBLE: Final = bytes(range(0x20, 0x7F)) + b"\t"
_CRLFS: Final = tuple(b"\r\n" * n for n in range(128))
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


class ReadError(Exception):
    """A request the reader refuses: `status` (400, 505) and the access log's error_reason."""

    def __init__(self, status: int, error_reason: str = "-") -> None:
        super().__init__(status, error_reason)
        self.status = status
        self.error_reason = error_reason


class RequestHead:
    """A request head as received: every byte kept, nothing judged (desync.py judges)."""

    __slots__ = (
        "chunked", "framed", "headers", "keep_alive", "length", "line_ends", "method", "odd_lines",
        "plain", "raw", "target", "version", "version_text",
    )  # fmt: skip

    def __init__(self, raw: bytes, method: bytes, target: bytes, version: bytes,
                 headers: list[tuple[bytes, bytes]]) -> None:  # fmt: skip
        self.raw = raw  # request line and field lines, without the blank line
        self.method, self.target, self.version = method, target, version  # version as sent
        self.headers = headers  # (name as sent, value without surrounding SP/HT)
        self.plain = False  # only visible ASCII, CRLF line ends, no odd line: the fast path
        self.line_ends = True  # every line ended with CRLF (False: bare LF somewhere)
        self.odd_lines: list[tuple[str, bytes]] = []  # ("MissingHeaderColon"|"MultilineHeader", line)
        self.length = 0  # body bytes to read (Content-Length)
        self.chunked = False
        self.framed = True  # False: the body's length cannot be known exactly (see `frame`)
        self.keep_alive = True
        self.version_text = "1.1"  # see `version_text`

    def __repr__(self) -> str:
        return f"<RequestHead {self.method!r} {self.target!r} {self.version!r} {len(self.headers)} fields>"


class Sink(Protocol):
    """What the reader calls (proxy.ClientConnection)."""

    def on_head(self, head: RequestHead) -> int: ...
    def on_body(self, body: bytes) -> None: ...
    def on_complete(self) -> None: ...


def split_head(raw: bytes) -> RequestHead:
    """The parts of a head (`raw`: no leading empty line, no blank line at the end)."""
    crlf = raw.count(b"\r\n")
    # Lines end with CRLF; a head with no CRLF at all ends them with bare LFs (tolerated:
    # NonCrLfLineTermination). Otherwise a lone CR or LF is a byte of its line (Bad there).
    bare_lines = crlf == 0 and _LF in raw
    lines = raw.split(b"\n") if bare_lines else raw.split(b"\r\n")
    method, target, version = split_request_line(lines[0])
    headers: list[tuple[bytes, bytes]] = []
    head = RequestHead(raw, method, target, version, headers)
    head.line_ends = not bare_lines
    odd = head.odd_lines
    for i in range(1, len(lines)):
        line = lines[i]
        name, colon, value = line.partition(b":")
        if not colon:
            folded = line and (line[0] == _SP or line[0] == _HT)
            odd.append(("MultilineHeader" if folded else "MissingHeaderColon", line))
        else:
            headers.append((name, value.strip(b" \t")))
    # Plain: visible ASCII, tabs and CRLF line ends only, every line a field (the fast path).
    head.plain = (not odd and crlf < len(_CRLFS) and raw.translate(None, _VISIBLE) == _CRLFS[crlf]
                  and _HT not in lines[0])  # fmt: skip
    head.version_text = version_text(version)
    return head


def version_text(version: bytes) -> str:
    """How the exchange treats a version: "1.1" (also HTTP/1.2-1.9, RFC 9110 §2.5), "1.0",
    "0.9" (none given), anything else "1.0" (answered, then the connection closes)."""
    if version == b"HTTP/1.1":
        return "1.1"
    if version == b"HTTP/1.0":
        return "1.0"
    if not version.strip(b" \t") or version.strip(b" \t") == b"HTTP/0.9":
        return "0.9"
    if len(version) == 8 and version.startswith(b"HTTP/1.") and version[7:].isdigit():
        return "1.1"
    return "1.0"


# (head, method, target, version, fields, end of the blank line)
Plain = tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes]], int]


def split_plain_py(data: bytes) -> Plain | None:
    """The head at the start of `data` split, when it is plain: CRLF line ends, a request line
    of visible ASCII with exactly two spaces, field lines of visible ASCII and tabs, each with
    a colon and not folded. None for anything else (`split_head` reads those)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    raw = data[:end]
    lines = raw.split(b"\r\n")
    line = lines[0]
    if line.count(b" ") != 2 or _HT in line or raw.translate(None, _VISIBLE) != _CRLFS[len(lines) - 1]:
        return None
    method, target, version = line.split(b" ")
    if not method or not target or not version:
        return None
    fields: list[tuple[bytes, bytes]] = []
    for i in range(1, len(lines)):
        name, colon, value = lines[i].partition(b":")
        if not colon or lines[i][0] == _SP or lines[i][0] == _HT:
            return None
        fields.append((name, value.strip(b" \t")))
    return raw, method, target, version, fields, end + 4


# `split_plain_py`, in C when built (lb/_speedups.c: one pass, no copy per line).
_SPLIT_PLAIN: Final[Callable[[bytes], Plain | None] | None] = speedups.helper("split_plain")


def split_request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """(method, request target, version as sent; b"" for HTTP/0.9's missing one).

    The target runs to the version's `HTTP/` (so a space inside it stays in it: SpaceInUri),
    or to the last space when there is no such version (then that is the version, judged)."""
    method, _, rest = line.partition(b" ")
    at = rest.find(b" HTTP/")
    if at < 0:
        at = rest.rfind(b" ")
        if at < 0:
            return method, rest, b""
    return method, rest[:at], rest[at + 1 :]


def frame(head: RequestHead) -> None:
    """Set the body's framing and whether the connection may carry another request.

    From the exactly named fields only (RFC 9112 §6): chunked when the last transfer coding is
    `chunked` (parameters aside), else equal valid Content-Lengths, else no body. Any other
    shape is not framed: no body is read and the connection ends with that request. Both
    fields at once, or a transfer coding before HTTP/1.1, end the connection too (§6.1, §6.3).
    """
    lengths: list[bytes] = []
    codings: list[bytes] = []
    tokens = b""
    for name, value in head.headers:
        size = len(name)
        if size == 14 or size == 17 or size == 10:
            lower = name.lower()
            if lower == b"content-length":
                lengths.append(value)
            elif lower == b"transfer-encoding":
                codings.extend(c.partition(b";")[0].strip(b" \t").lower() for c in value.split(b","))
            elif lower == b"connection":
                tokens = tokens + b"," + value.lower() if tokens else value.lower()
    version = head.version_text
    head.keep_alive = _keep_alive(tokens, version)
    if codings:
        head.chunked = codings[-1] == b"chunked" and codings.count(b"chunked") == 1
        head.framed = head.chunked
        if lengths or version != "1.1":
            head.keep_alive = False
    elif lengths:
        first = lengths[0]
        if first.isdigit() and len(first) <= 18 and all(v == first for v in lengths):
            head.length = int(first)
        else:
            head.framed = False
    if not head.framed:
        head.keep_alive = False


def _keep_alive(tokens: bytes, version: str) -> bool:
    """Whether the client connection stays open after this request (RFC 9112 §9.3)."""
    if version != "1.1" and version != "1.0":
        return False
    if not tokens:
        return version == "1.1"
    parts = [t.strip(b" \t") for t in tokens.split(b",")]
    if b"close" in parts or b"upgrade" in parts:  # Upgrade (WebSocket) is not proxied: close
        return False
    return version == "1.1" or b"keep-alive" in parts


class RequestReader:
    """Requests from one client connection, one after another (pipelining in order)."""

    __slots__ = ("buffer", "last", "on_body", "on_complete", "on_head", "previous",
                 "previous_whole", "remaining", "state", "trailer_bytes")  # fmt: skip

    def __init__(self, sink: Sink) -> None:
        # The sink's methods, bound once: compiled, a call is then a plain vectorcall.
        self.on_head: Callable[[RequestHead], int] = sink.on_head
        self.on_body: Callable[[bytes], None] = sink.on_body
        self.on_complete: Callable[[], None] = sink.on_complete
        self.state = HEAD
        self.buffer = b""  # bytes of an incomplete head or chunk line
        self.remaining = 0
        self.trailer_bytes = 0  # field bytes so far: the head's, then the trailers' (64 KB in all)
        self.last = False  # the request being read is the connection's last
        # The previous head when it was plain: a head repeated byte for byte is that one again
        # (split, checked and framed alike), handed on as the same object.
        self.previous: RequestHead | None = None
        self.previous_whole = b""  # its bytes with the blank line after them

    def __repr__(self) -> str:
        return f"<RequestReader state={self.state} buffered={len(self.buffer)} remaining={self.remaining}>"

    def stop(self) -> None:
        """Read nothing more on this connection."""
        self.state = DONE
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        while data and self.state != DONE:
            state = self.state
            if state == HEAD:
                previous = self.previous
                # A plain head has no empty line and only CRLF line ends: the same bytes followed
                # by CRLF CRLF (`previous_whole`) are the same head, ending at the same place.
                if previous is not None and data.startswith(self.previous_whole):
                    data = self._hand_on(previous, data[len(self.previous_whole) :])
                else:
                    data = self._head(data)
            elif state == LENGTH:
                data = self._length(data)
            else:
                data = self._chunked(data)

    def _head(self, data: bytes) -> bytes:
        if data[0] == _CR or data[0] == _LF:  # RFC 9112 §2.2: empty lines before a request line
            return data.lstrip(b"\r\n")  # (read anew by `feed`: it starts with neither now)
        if _SPLIT_PLAIN is not None:
            found = _SPLIT_PLAIN(data)
            if found is not None:  # the usual head, split in C
                raw, method, target, version, fields, after = found
                head = RequestHead(raw, method, target, version, fields)
                head.plain = True
                head.version_text = version_text(version)
                return self._read(head, data[after:])
        # The head ends at its first empty line: CRLF CRLF, or with bare LFs.
        end = data.find(b"\n\r\n")
        skip = 3
        bare = data.find(b"\n\n", 0, end if end >= 0 else len(data))
        if bare >= 0:
            end, skip = bare, 2
        if end < 0:
            self._incomplete(data)
            self.buffer = data
            return b""
        raw = data[: end - 1] if data[end - 1] == _CR else data[:end]
        return self._read(split_head(raw), data[end + skip :])

    def _read(self, head: RequestHead, rest: bytes) -> bytes:
        """Judge, frame and hand on a head; then read its body from `rest`."""
        _check_limits(head)
        frame(head)
        self.previous = head if head.plain else None
        self.previous_whole = head.raw + b"\r\n\r\n" if head.plain else b""
        return self._hand_on(head, rest)

    def _hand_on(self, head: RequestHead, rest: bytes) -> bytes:
        """Hand on a head judged and framed; then read its body from `rest`."""
        self.trailer_bytes = len(head.raw)
        then = self.on_head(head)
        if then == STOP:
            self.stop()
            return b""
        self.last = then == LAST or not head.framed
        if head.chunked:
            self.state = CHUNK_SIZE
        elif head.length and head.framed:
            self.state, self.remaining = LENGTH, head.length
        else:  # no body: complete already (`_complete`, the state still HEAD)
            self.on_complete()
            if self.last:
                self.stop()
        return rest

    def _complete(self) -> None:
        self.state = HEAD
        self.on_complete()
        if self.last:
            self.stop()

    def _incomplete(self, data: bytes) -> None:
        """Refuse a head that is already over a limit before it ends."""
        if data.startswith(_PREFACE):
            raise ReadError(505)
        line_end = data.find(b"\n")
        if (line_end < 0 and len(data) > MAX_REQUEST_LINE + 2) or len(data) > MAX_HEAD + MAX_REQUEST_LINE:
            raise ReadError(400, "RequestHeaderTooLarge")

    def _length(self, data: bytes) -> bytes:
        remaining = self.remaining
        if len(data) < remaining:
            self.remaining = remaining - len(data)
            self.on_body(data)
            return b""
        self.on_body(data if len(data) == remaining else data[:remaining])
        self._complete()
        return data[remaining:]

    def _chunked(self, data: bytes) -> bytes:
        state = self.state
        if state == CHUNK_DATA:
            remaining = self.remaining
            if remaining:
                piece = data[:remaining]
                self.remaining = remaining - len(piece)
                self.on_body(piece)
                data = data[len(piece) :]
                if self.remaining:
                    return b""
            if len(data) < 2:
                self.buffer = data
                return b""
            if data[0] != _CR or data[1] != _LF:
                raise ReadError(400)  # chunk data not followed by CRLF
            self.state = CHUNK_SIZE
            return data[2:]
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) > (MAX_CHUNK_LINE if state == CHUNK_SIZE else MAX_HEADER):
                raise ReadError(400, "RequestHeaderTooLarge" if state == TRAILERS else "-")
            self.buffer = data
            return b""
        line = data[:end]
        if state == CHUNK_SIZE:
            size = _chunk_size(line)
            if size:
                self.state, self.remaining = CHUNK_DATA, size
            else:
                self.state = TRAILERS
        elif line:  # a trailer field: never forwarded, counted with the head (docs/alb.md)
            self.trailer_bytes += len(line) + 2
            if len(line) > MAX_HEADER or self.trailer_bytes > MAX_HEAD:
                raise ReadError(400, "RequestHeaderTooLarge")
        else:
            self._complete()
        return data[end + 2 :]


def _chunk_size(line: bytes) -> int:
    """A chunk-size line's size (RFC 9112 §7.1: hex digits, then optional extensions)."""
    digits = line.partition(b";")[0].rstrip(b" \t")
    if not digits or len(digits) > 15 or any(b not in _HEX for b in digits):
        raise ReadError(400)
    return int(digits, 16)


def _check_limits(head: RequestHead) -> None:
    """ALB's head limits (docs/alb.md, "Limits"): the whole request line 16 KB, one field
    (name and value) 16 KB; the whole head's 64 KB is checked with its size (decide.py)."""
    if head.raw.startswith(_PREFACE):
        raise ReadError(505)
    if len(head.raw) <= MAX_HEADER and len(head.raw) <= MAX_REQUEST_LINE:
        return  # (the usual head: under both limits at once)
    line = len(head.method) + len(head.target) + len(head.version) + 2
    if line > MAX_REQUEST_LINE or len(head.raw) > MAX_HEAD + MAX_REQUEST_LINE:
        raise ReadError(400, "RequestHeaderTooLarge")
    for name, value in head.headers:
        if len(name) + len(value) > MAX_HEADER:
            raise ReadError(400, "RequestHeaderTooLarge")
