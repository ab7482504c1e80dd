"""HTTP desync (request smuggling) classification, as ALB's desync mitigation does it. Pure.

ALB classifies each request with AWS's http-desync-guardian as Compliant, Acceptable,
Ambiguous or Severe, with a reason that the access log records, and acts on it by mode
(docs/alb.md, "Desync mitigation"):

    classification  monitor   defensive (default)        strictest
    Compliant       allow     allow                      allow
    Acceptable      allow     allow                      400, close
    Ambiguous       allow     forward, then close both   400, close
    Severe          allow     400, close client          400, close

`classify` reproduces the library's rules on the head exactly as received (reader.py keeps
every byte), so that every one of its public test vectors gets the library's tier and reason
(tests/lb/test_lb_desync_vectors.py). What is then forwarded is framed strictly (reader.py,
headers.py): a field that looks like Content-Length or Transfer-Encoding without being one is
never relayed, and a request whose body length cannot be told ends its connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from microforum.lb.reader import RequestHead

COMPLIANT: Final = "Compliant"
ACCEPTABLE: Final = "Acceptable"
AMBIGUOUS: Final = "Ambiguous"
SEVERE: Final = "Severe"
# Tiers, ranked; a header field's own tier (name and value) ranks Compliant < NonCompliant < Bad.
_RANK: Final = {COMPLIANT: 0, ACCEPTABLE: 1, AMBIGUOUS: 2, SEVERE: 3}
_OK: Final = 0
_NON_COMPLIANT: Final = 1
_BAD: Final = 2

ALLOW: Final = "allow"
ALLOW_THEN_CLOSE: Final = "allow-then-close"
BLOCK: Final = "block"

_DECISIONS: Final = {
    "monitor": {COMPLIANT: ALLOW, ACCEPTABLE: ALLOW, AMBIGUOUS: ALLOW, SEVERE: ALLOW},
    "defensive": {COMPLIANT: ALLOW, ACCEPTABLE: ALLOW, AMBIGUOUS: ALLOW_THEN_CLOSE, SEVERE: BLOCK},
    "strictest": {COMPLIANT: ALLOW, ACCEPTABLE: BLOCK, AMBIGUOUS: BLOCK, SEVERE: BLOCK},
}

# Byte classes (RFC 9110 §5.6.2 tchar; field values: VCHAR, obs-text, SP, HTAB; "bad": CR LF NUL).
_TCHAR: Final = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_BAD_BYTES: Final = frozenset(b"\r\n\x00")
_VALUE_BYTES: Final = frozenset(range(0x20, 0x7F)) | frozenset(range(0x80, 0x100)) | {0x09}
_TE: Final = b"transfer-encoding"
_CL: Final = b"content-length"
_CODINGS: Final = (b"chunked", b"compress", b"deflate", b"gzip", b"identity")
# Identical (equal ignoring case), same letters (differs by non-letters only), or distant.
_IDENTICAL: Final = 0
SAME_LETTERS: Final = 1
_SAME_LETTERS: Final = SAME_LETTERS
_DISTANT: Final = 2


def decide(mode: str, classification: str) -> str:
    """What the load balancer does with a request of this classification in `mode`."""
    return _DECISIONS[mode][classification]


class _Verdict:
    """The worst tier seen so far and its reason: the first reason at the worst tier wins."""

    __slots__ = ("classification", "reason")

    def __init__(self) -> None:
        self.classification, self.reason = COMPLIANT, "-"

    def worse(self, classification: str, reason: str) -> None:
        if _RANK[classification] > _RANK[self.classification]:
            self.classification, self.reason = classification, reason


def classify(head: RequestHead) -> tuple[str, str]:
    """(classification, reason) of a request head as received; reason "-" when Compliant."""
    return classify_parts(head.method, head.target, head.version, head.headers,
                          line_ends=head.line_ends, odd_lines=head.odd_lines)  # fmt: skip


def classify_parts(method: bytes, uri: bytes, version: bytes, headers: Sequence[tuple[bytes, bytes]],
                   *, line_ends: bool = True,
                   odd_lines: Sequence[tuple[str, bytes]] = ()) -> tuple[str, str]:  # fmt: skip
    """`classify` on a head's parts (the version as sent, b"" for none)."""
    verdict = _Verdict()
    if not line_ends:
        verdict.worse(ACCEPTABLE, "NonCrLfLineTermination")
    if not version and uri.startswith(b"HTTP/1."):
        verdict.worse(AMBIGUOUS, "MissingUri")
    for reason, _line in odd_lines:
        verdict.worse(AMBIGUOUS, reason)
    if version >= b"HTTP/2":  # HTTP/2 and later: not classified (the caller answers 505)
        return verdict.classification, verdict.reason
    if not version.strip(b" \t"):
        version = b"HTTP/0.9"
    encodings: list[bytes] = []
    lengths: list[bytes] = []
    for name, value in headers:
        _check_field(name, value, verdict, encodings, lengths)
    if encodings or lengths:
        _check_framing(method, version, encodings, lengths, verdict)
    if any(b not in _TCHAR for b in method):
        verdict.worse(SEVERE, "BadMethod")
    _check_version(version, verdict)
    _check_uri(uri, verdict)
    return verdict.classification, verdict.reason


def _check_field(name: bytes, value: bytes, verdict: _Verdict, encodings: list[bytes],
                 lengths: list[bytes]) -> None:  # fmt: skip
    """One field: its own tier, an empty name, a look-alike of the framing fields; the framing
    fields (and their look-alikes) are collected for `_check_framing`."""
    te = similarity(_TE, name)
    cl = similarity(_CL, name) if te == _DISTANT else _DISTANT
    tier = max(_tier(name, _TCHAR), _tier(value, _VALUE_BYTES))
    if verdict.classification != SEVERE:
        if tier == _BAD:
            verdict.worse(SEVERE, "BadHeader")
        elif tier == _NON_COMPLIANT:
            verdict.worse(ACCEPTABLE, "NonCompliantHeader")
    trimmed = name.strip(b" \t")
    if not trimmed or trimmed[0] == 0x3A:  # ":"
        verdict.worse(AMBIGUOUS, "EmptyHeader")
    elif te == _IDENTICAL:
        encodings.append(value)
    elif cl == _IDENTICAL:
        lengths.append(value)
    elif tier != _BAD and (te == _SAME_LETTERS or cl == _SAME_LETTERS):
        (encodings if te == _SAME_LETTERS else lengths).append(value)
        verdict.worse(AMBIGUOUS, "SuspiciousHeader")


def _tier(data: bytes, allowed: frozenset[int]) -> int:
    """_OK when every byte of `data` is `allowed`, _BAD at the first byte of _BAD_BYTES, else
    _NON_COMPLIANT (a header name against _TCHAR, a value against _VALUE_BYTES)."""
    tier = _OK
    for b in data:
        if b not in allowed:
            if b in _BAD_BYTES:
                return _BAD
            tier = _NON_COMPLIANT
    return tier


def _check_framing(method: bytes, version: bytes, encodings: list[bytes], lengths: list[bytes],
                   verdict: _Verdict) -> None:  # fmt: skip
    if version <= b"HTTP/1.0" and encodings:
        verdict.worse(AMBIGUOUS, "UndefinedTransferEncodingSemantics")
        return
    if version < b"HTTP/1.0" and lengths:
        verdict.worse(AMBIGUOUS, "UndefinedContentLengthSemantics")
        return
    _check_encodings(encodings, verdict)
    length = _check_lengths(lengths, verdict)
    if method == b"GET" or method == b"HEAD":
        if encodings:
            verdict.worse(AMBIGUOUS, "UndefinedTransferEncodingSemantics")
        if length == 0:
            verdict.worse(ACCEPTABLE, "GetHeadZeroContentLength")
        elif length is not None:
            verdict.worse(AMBIGUOUS, "UndefinedContentLengthSemantics")
    if length is not None and encodings:
        verdict.worse(AMBIGUOUS, "BothTeClPresent")


def _check_encodings(encodings: list[bytes], verdict: _Verdict) -> None:
    chunked_before = False
    for value in encodings:
        for item in value.split(b","):
            coding = item.strip(b" \t").partition(b";")[0].strip(b" \t").lower()
            if coding not in _CODINGS:
                verdict.worse(SEVERE, "BadTransferEncoding")
                continue
            is_chunked = coding == b"chunked"
            if is_chunked and chunked_before:
                verdict.worse(SEVERE, "MultipleTransferEncodingChunked")
            chunked_before = is_chunked


def _check_lengths(lengths: list[bytes], verdict: _Verdict) -> int | None:
    """The Content-Length, when one can be told (equal values count once)."""
    found: int | None = None
    for value in lengths:
        digits = value.strip(b" \t")
        if digits and (not digits.isdigit() or len(digits) > 19 or int(digits) >= 1 << 64):
            verdict.worse(SEVERE, "BadContentLength")
            continue
        number = int(digits) if digits else 0
        if found is None:
            found = number
        elif number != found:
            verdict.worse(SEVERE, "MultipleContentLength")
        else:
            verdict.worse(AMBIGUOUS, "DuplicateContentLength")
    return found


def _check_version(version: bytes, verdict: _Verdict) -> None:
    trimmed = version.strip(b" \t")
    if trimmed == b"HTTP/0.9":
        verdict.worse(ACCEPTABLE, "NonCompliantVersion")
        return
    if len(trimmed) != 8 or not trimmed.startswith(b"HTTP/1.") or not 0x30 <= trimmed[7] <= 0x39:
        verdict.worse(SEVERE, "BadVersion")
    elif len(trimmed) != len(version) or trimmed[7] > 0x31:
        verdict.worse(ACCEPTABLE, "NonCompliantVersion")


def _check_uri(uri: bytes, verdict: _Verdict) -> None:
    for b in uri:
        if b > 0x20 and b != 0x7F:
            continue
        if b in _BAD_BYTES:
            verdict.worse(SEVERE, "BadUri")
            return
        verdict.worse(ACCEPTABLE if b == 0x20 else AMBIGUOUS, "SpaceInUri" if b == 0x20 else "AmbiguousUri")


def similarity(important: bytes, name: bytes) -> int:
    """How close a field name is to `important` (lower-case letters and "-"): identical
    (ignoring case), the same letters (ignoring other bytes between and around them: a
    look-alike that some servers would take for it), or distant. Two non-ASCII letters that
    upper-case to ASCII (U+017F long s, U+0131 dotless i, in UTF-8) count as "s" and "i"."""
    size = len(name)
    if size < len(important):
        return _DISTANT
    at = _next_alnum(name, 0)
    identical = at == 0 and len(important) == size
    for c in important:
        if at == size:
            return _DISTANT
        same, after = _same_letter(c, name, at)
        if c == 0x2D:  # "-": any run of non-alphanumerics stands for it
            if not same:
                identical = False
            at = _next_alnum(name, after)
        elif not same:
            break
        else:
            at = after
            while at < size and name[at] <= 0x20:
                at += 1
    if at == size:
        return _IDENTICAL if identical else _SAME_LETTERS
    return _SAME_LETTERS if _next_alnum(name, at) == size else _DISTANT


def _same_letter(c: int, name: bytes, at: int) -> tuple[bool, int]:
    b = name[at]
    if c == (b | 0x20 if 0x41 <= b <= 0x5A else b):
        return True, at + 1
    if at + 1 < len(name) and (c, b, name[at + 1]) in _LOOK_ALIKES:
        return True, at + 2
    return False, at + 1


_LOOK_ALIKES: Final = frozenset({(0x73, 0xC5, 0xBF), (0x69, 0xC4, 0xB1)})


def _next_alnum(name: bytes, at: int) -> int:
    size = len(name)
    while at < size and not (0x30 <= name[at] <= 0x39 or 0x41 <= (name[at] & 0xDF) <= 0x5A):
        at += 1
    return at
