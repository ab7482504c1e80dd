"""Request and response head rewriting as ALB does it: XFF, X-Forwarded-*, trace id, hop-by-hop.

Pure functions from parsed header pairs (raw bytes, as the parser gave them) to the bytes sent on.

- X-Forwarded-For: the client's address is appended to what the client sent (`append` mode,
  the default; ", " separator); more than 30 addresses is refused with 463 (docs/alb.md §D, C).
- X-Forwarded-Proto and X-Forwarded-Port: overwritten with the listener's (docs/alb.md §D).
- X-Amzn-Trace-Id: created, or `Self` inserted/updated, as in `trace_id` below (docs/alb.md §D).
- Host is passed through unchanged (ALB's `preserve_host_header`; the brief asks Host to be
  preserved so services see what the client sent).
- Hop-by-hop headers (RFC 9110 §7.6.1: Connection and the headers it names, Keep-Alive,
  Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade) are not forwarded; the body's
  framing is re-written by the proxy. `Expect` is not forwarded: ALB answers 100 Continue itself.
- With `drop_invalid_header_fields` (ALB attribute), names outside `[-A-Za-z0-9]` are dropped.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Callable, Sequence
from typing import Final

from microforum.lb import speedups

# ALB's hard limits (docs/alb.md §D.5): request line 16 K, one header 16 K, whole head 64 K -> 400.
MAX_REQUEST_LINE: Final = 16 * 1024
MAX_HEADER: Final = 16 * 1024
MAX_HEAD: Final = 64 * 1024
MAX_XFF_ADDRESSES: Final = 30  # more gives 463 (ALB troubleshooting §463)
TRACE_REWRITE_LIMIT: Final = 7 * 1024  # headers over 7 KB: trace header reduced to Root (D.3)

# Hop-by-hop header names (RFC 9110 §7.6.1), lower-cased: never relayed as they are.
HOP_BY_HOP: Final = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade",
})  # fmt: skip
# Dropped from the client's head (our own framing, Expect and X-Forwarded-*/trace take their
# place) and from the target's (our framing replaces Content-Length).
_DROP_ALWAYS: Final = HOP_BY_HOP | {
    b"expect", b"content-length", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port",
    b"x-amzn-trace-id",
}  # fmt: skip
_RESPONSE_DROP: Final = HOP_BY_HOP | {b"content-length"}
_INVALID_NAME: Final = re.compile(rb"[^-A-Za-z0-9]").search
_MASK96: Final = (1 << 96) - 1
_TRACE_ID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")


def new_trace_id(epoch_seconds: int, random96: int) -> str:
    """An X-Ray id: `1-` + 8 hex digits of epoch seconds + `-` + 24 hex random digits."""
    return "1-%08x-%024x" % (epoch_seconds & 0xFFFFFFFF, random96 & _MASK96)  # noqa: UP031 - faster


class TraceIds:
    """Fresh X-Ray ids, as `new_trace_id` makes them but cheaper per request: the epoch part is
    formatted once per second and the random parts cut from a batch of random bytes, all at
    once (each request takes one from the list). Bytes, as they go into the head sent on and
    the access log."""

    __slots__ = ("_parts", "_prefix", "_random", "_root", "_second")
    BATCH = 64  # ids per call to the random source

    def __init__(self, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random_bytes
        self._parts: list[bytes] = []  # random parts not used yet (24 hex digits each)
        self._second = -1
        self._prefix = self._root = b""

    def new(self, epoch_seconds: int) -> bytes:
        if epoch_seconds != self._second:
            self._start_second(epoch_seconds)
        parts = self._parts
        return self._prefix + (parts.pop() if parts else self._refill())

    def root(self, epoch_seconds: int) -> bytes:
        """`Root=` and a new id: the X-Amzn-Trace-Id of a request that brought none."""
        if epoch_seconds != self._second:
            self._start_second(epoch_seconds)
        parts = self._parts
        return self._root + (parts.pop() if parts else self._refill())

    def _start_second(self, epoch_seconds: int) -> None:
        self._second = epoch_seconds
        self._prefix = new_trace_id(epoch_seconds, 0)[:11].encode()  # "1-" + 8 hex digits + "-"
        self._root = b"Root=" + self._prefix

    def _refill(self) -> bytes:
        """A new batch of random parts; one of them, taken."""
        pool = binascii.hexlify(self._random(12 * self.BATCH))
        self._parts = [pool[at : at + 24] for at in range(0, len(pool), 24)]
        return self._parts.pop()


def is_trace_id(value: str) -> bool:
    """Whether `value` has the shape of an X-Ray trace id."""
    return _TRACE_ID.match(value) is not None


def trace_id(incoming: str | None, new_id: str, headers_size: int = 0) -> str:
    """The X-Amzn-Trace-Id value to forward (docs/alb.md §D).

    Absent: `Root=<new>`. With `Self`: its value is replaced. With `Root` but no `Self`:
    `Self=<new>` is put in front. Unknown fields are kept. Headers over 7 KB: only a `Root`.
    ⚠ A header with neither Root nor Self (not documented) gets `Root=<new>` in front.
    """
    if incoming is None:
        return f"Root={new_id}"
    fields = [f.strip() for f in incoming.split(";") if f.strip()]
    names = [f.partition("=")[0] for f in fields]
    if headers_size > TRACE_REWRITE_LIMIT:
        root = next((f for f in fields if f.startswith("Root=")), f"Root={new_id}")
        return root
    if "Self" in names:
        fields[names.index("Self")] = f"Self={new_id}"
        return ";".join(fields)
    if "Root" in names:
        return ";".join([f"Self={new_id}", *fields])
    return ";".join([f"Root={new_id}", *fields])


def forwarded_for(incoming: Sequence[bytes], client_ip: str) -> tuple[str, int]:
    """(X-Forwarded-For value, number of addresses in it) in `append` mode."""
    parts = [p.strip() for value in incoming for p in value.decode("latin-1").split(",")]
    parts = [p for p in parts if p]
    parts.append(client_ip)
    return ", ".join(parts), len(parts)


_ABSOLUTE_FORM: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)(.*)", re.DOTALL).fullmatch


def origin_form(target: bytes) -> tuple[bytes, bytes] | None:
    """(origin-form target, authority) of an absolute-form request target
    (`http://host:81/a?q` -> (`/a?q`, `host:81`), any scheme, in any case); None for any other
    form. The path is what rules match and the target receives (docs/alb.md, "Request target")."""
    found = _ABSOLUTE_FORM(target)
    if found is None:
        return None
    authority = found.group(1).rpartition(b"@")[2]  # userinfo is never forwarded
    rest = found.group(2)
    return (rest if rest[:1] == b"/" else b"/" + rest), authority


def with_host(headers: list[tuple[bytes, bytes]], host: bytes) -> list[tuple[bytes, bytes]]:
    """`headers` with one Host, `host`, where the first was (or first when there was none)."""
    out: list[tuple[bytes, bytes]] = []
    placed = False
    for name, value in headers:
        if name.lower() == b"host":
            if not placed:
                out.append((name, host))
                placed = True
        else:
            out.append((name, value))
    return out if placed else [(b"Host", host), *out]


def connection_tokens(values: Sequence[bytes]) -> frozenset[bytes]:
    """Lower-cased header names listed in Connection headers (hop-by-hop by declaration);
    never Host, which every request needs (`Connection: Host` must not strip it)."""
    return frozenset(t.strip().lower() for v in values for t in v.split(b",") if t.strip()) - {b"host"}


_UNSAFE_IN_TARGET: Final = re.compile(rb"[\x00-\x20\x7f]")
_LINE_BREAKS: Final = b"\r\n\x00"


def request_line(method: bytes, target: bytes) -> bytes:
    """The request line sent to a target: always HTTP/1.1; control bytes and spaces in the
    target percent-encoded and CR, LF, NUL left out of the method, so that a request that was
    let through (monitor mode) still reaches the target as one line."""
    if _UNSAFE_IN_TARGET.search(target) is not None:
        target = _UNSAFE_IN_TARGET.sub(lambda m: b"%%%02X" % m.group()[0], target)
    if not method.isalpha():
        method = method.translate(None, _LINE_BREAKS)
    return b"%s %s HTTP/1.1\r\n" % (method, target)


def forwardable(name: bytes, value: bytes) -> bool:
    """Whether a field of a non-compliant request may be relayed: not empty, no CR, LF or NUL,
    not a look-alike of the framing fields (the target might frame by it: docs/alb.md)."""
    if not name.strip(b" \t") or name.translate(None, _LINE_BREAKS) != name:
        return False
    if value.translate(None, _LINE_BREAKS) != value:
        return False
    squeezed = bytes(b | 0x20 for b in name if 0x41 <= (b & 0xDF) <= 0x5A)
    return squeezed not in (b"contentlength", b"transferencoding") or name.lower() in _DROP_ALWAYS


def request_head(
    request_line: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    extra: bytes,
    *,
    drop_invalid: bool,
    also_drop: frozenset[bytes] = frozenset(),
    sanitize: bool = False,
) -> bytes:
    """The head sent to the target: kept headers, then `extra` (our X-Forwarded-*, trace id,
    framing lines, each ending CRLF), then the blank line. With `sanitize` (a request that is
    not Compliant), only `forwardable` fields are kept."""
    out = [request_line]
    for name, value in headers:
        lower = name.lower()
        if lower in _DROP_ALWAYS or lower in also_drop:
            continue
        if drop_invalid and _INVALID_NAME(name) is not None:
            continue
        if sanitize and not forwardable(name, value):
            continue
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(extra)
    return b"".join(out)


def head_of_py(data: bytes) -> bytes | None:
    """The head at the start of `data` without its blank line; None when it has none."""
    head, blank, _ = data.partition(b"\r\n\r\n")
    return head if blank else None


def forward_raw_py(chunk: bytes, forwarded: bytes, trace: bytes) -> bytes:
    """The head for the target when the client's can go as received: the head at the start of
    `chunk` (all of it when it has no blank line), then `forwarded` (X-Forwarded-* lines) and
    the trace id, and the blank line."""
    return b"%s\r\n%sX-Amzn-Trace-Id: %s\r\n\r\n" % (chunk.partition(b"\r\n\r\n")[0], forwarded, trace)


# `head_of_py` and `forward_raw_py`, in C when built (lb/_speedups.c: no tuple, no extra copy).
head_of: Final[Callable[[bytes], bytes | None]] = speedups.helper("head_of") or head_of_py
forward_raw: Final[Callable[[bytes, bytes, bytes], bytes]] = speedups.helper("forward_raw") or forward_raw_py


# `relayable` (here and in lb/_speedups.c) looks at a line's first letter (as a byte,
# lower-cased) before comparing names: only lines starting like a HOP_BY_HOP name can be one
# (c with n fourth, k, p, t, u). Checked against HOP_BY_HOP here, so that the set stays the
# one source: a name it gains that the filter would miss stops the import.
_FILTER: Final = (frozenset(b"ckptu"), ord("n"))
if any(n[0] not in _FILTER[0] or (n[0] == ord("c") and n[3] != _FILTER[1]) for n in HOP_BY_HOP):
    raise RuntimeError("headers.HOP_BY_HOP has a name relayable's first-letter filter misses")
_LOWER: Final = 0x20  # OR-ed into an ASCII letter: its lower case
_C: Final = ord("c")
_K: Final = ord("k")
_N: Final = ord("n")
_P: Final = ord("p")
_T: Final = ord("t")
_U: Final = ord("u")
_RELAYABLE_C: Final[Callable[[bytes, frozenset[bytes]], bool] | None] = speedups.helper("relayable")


# On a lower-cased response head: a hop-by-hop field (HOP_BY_HOP), `Connection: keep-alive`
# alone aside (the client connection stays open too). `relayable_py` says the same line by line.
_HOP_NAMES: Final = b"|".join(sorted(n for n in HOP_BY_HOP if n != b"connection"))
hop_field: Final = re.compile(
    rb"\r\n(?:%s|connection(?![ \t]*:[ \t]*keep-alive[ \t]*(?:\r|$)))[ \t]*:" % _HOP_NAMES
).search


def relayable(head: bytes) -> bool:
    """`relayable_py`, in C when built (lb/_speedups.c); interpreted, one regular expression
    on the lower-cased head (C too, and fewer bytecodes than the line loop)."""
    if _RELAYABLE_C is not None:
        return _RELAYABLE_C(head, HOP_BY_HOP)
    return hop_field(head.lower()) is None


def relayable_py(head: bytes) -> bool:
    """Whether a response head (status line and headers, without the blank line) may go to the
    client as received: it has no hop-by-hop header, except `Connection: keep-alive` (the client
    connection stays open too). Most lines are passed on one byte in: the common names do not
    start like a hop-by-hop one (`Content-…` is told from `Connection` by its fourth letter)."""
    lines = head.split(b"\r\n")
    for i in range(1, len(lines)):
        line = lines[i]
        first = line[0] | _LOWER if line else 0
        if first == _C:
            if len(line) < 4 or line[3] | _LOWER != _N:
                continue
        elif first != _T and first != _K and first != _P and first != _U:
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t").lower()
        if (
            colon
            and name in HOP_BY_HOP
            and (name != b"connection" or value.strip(b" \t").lower() != b"keep-alive")
        ):
            return False
    return True


# The head of a read that may be one whole, plain answer (whole_response_py): an HTTP/1.1
# status line with a status 200-599, then fields of a token, a colon and text, then the blank line.
_WHOLE_HEAD: Final = re.compile(
    rb"HTTP/1\.1 ([2-5][0-9][0-9]) [\t\x20-\x7e]*\r\n"
    rb"((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*)\r\n"
)


def whole_response_py(data: bytes, names: frozenset[bytes], max_head: int) -> int:
    """The status of a read from a target that is one whole answer the client may get as
    received, 0 for any other read (the target connection's parser then reads it: this is the
    usual answer's shortcut past the parser, and accepts a subset of what the parser accepts).

    Whole and plain: an HTTP/1.1 status line with a status 200-599 but 204 and 304 (no 1xx, no
    answer without a body), then fields of a token, a colon and visible ASCII, SP or HTAB (no
    obs-fold, no obs-text), exactly one Content-Length of 1-15 digits, and no field named in
    `names` (HOP_BY_HOP) but `Connection: keep-alive`; a head of at most `max_head` bytes (without
    its blank line) and a body that is exactly the rest of the read."""
    found = _WHOLE_HEAD.match(data)
    if found is None:
        return 0
    status = int(found.group(1))
    length = -1
    for line in found.group(2).split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        name, value = name.lower(), value.strip(b" \t")
        if name == b"content-length":
            if length >= 0 or not value.isdigit() or len(value) > 15:
                return 0
            length = int(value)
        elif name in names and (name != b"connection" or value.lower() != b"keep-alive"):
            return 0
    end = found.end()
    if status in (204, 304) or length < 0 or end - 4 > max_head or len(data) - end != length:
        return 0
    return status


# `whole_response_py`, in C when built (lb/_speedups.c: one pass, no regular expression).
whole_response: Final[Callable[[bytes, frozenset[bytes], int], int]] = (
    speedups.helper("whole_response") or whole_response_py
)


def response_head(status_line: bytes, headers: Sequence[tuple[bytes, bytes]], extra: bytes) -> bytes:
    """The head sent to the client: the target's headers minus hop-by-hop ones, then `extra`
    (framing, Connection, cookies) and the blank line."""
    out = [status_line]
    also: frozenset[bytes] = frozenset()
    for name, value in headers:
        if name.lower() == b"connection":
            also = also | connection_tokens([value])
    for name, value in headers:
        lower = name.lower()
        if lower in _RESPONSE_DROP or lower in also:
            continue
        out.append(b"%s: %s\r\n" % (name, value))
    out.append(extra)
    return b"".join(out)
