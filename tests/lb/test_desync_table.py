"""Desync classification tables (lb/desync.py, `classify_parts` on a head's parts as sent): two
findings in one request (the worst tier wins, the first reason of equal tier stays),
SuspiciousHeader for look-alike names made with other token characters, the edges of every
byte class and limit, and each mode's decision. Pure: no socket. What the tiers and reasons
are, and the public vectors they come from: docs/alb.md ("Desync mitigation")."""

from __future__ import annotations

import pytest

from microforum.lb.desync import classify_parts, decide, similarity

H = [(b"Host", b"a")]
CL, TE = b"Content-Length", b"Transfer-Encoding"
V11, V10 = b"HTTP/1.1", b"HTTP/1.0"
MODES = ("monitor", "defensive", "strictest")
IDENTICAL, SAME_LETTERS, DISTANT = 0, 1, 2


def request(method: bytes, uri: bytes, version: bytes, *headers: tuple[bytes, bytes]) -> tuple:
    """classify_parts's arguments (a Host first); the tests classify them, so that a mutant,
    switched on only while a test runs, is the code that does it."""
    return method, uri, version, [*H, *headers]


TWO_FINDINGS = {
    # The case: a GET with a body length and a coding. gzip is a coding the library
    # knows (its vector "Both Transfer-Encoding and Content-Length" is Ambiguous, not Severe),
    # so three Ambiguous findings: the first one's reason stays.
    "get-cl-and-te-gzip": (
        request(b"GET", b"/", V11, (CL, b"5"), (TE, b"gzip")),
        ("Ambiguous", "UndefinedTransferEncodingSemantics"),
    ),
    "get-te-gzip-then-cl": (
        request(b"GET", b"/", V11, (TE, b"gzip"), (CL, b"5")),
        ("Ambiguous", "UndefinedTransferEncodingSemantics"),
    ),
    # Ambiguous (GET with a length) and Severe (a coding nobody knows): Severe, whatever the order
    "get-cl-and-bad-coding": (
        request(b"GET", b"/", V11, (CL, b"5"), (TE, b"xgzip")),
        ("Severe", "BadTransferEncoding"),
    ),
    "bad-coding-then-get-cl": (
        request(b"GET", b"/", V11, (TE, b"xgzip"), (CL, b"5")),
        ("Severe", "BadTransferEncoding"),
    ),
    "suspicious-then-bad-header": (
        request(b"POST", b"/", V11, (b"Content.Length", b"5"), (b"X", b"a\x00")),
        ("Severe", "BadHeader"),
    ),
    "ambiguous-uri-then-bad-version": (
        request(b"GET", b"/a\x01", b"HTTP/1.:"),
        ("Severe", "BadVersion"),
    ),
    # Severe first, then Ambiguous and Acceptable: Severe keeps its reason
    "bad-header-then-get-cl-then-space": (
        request(b"GET", b"/a b", V11, (b"X", b"a\rb"), (CL, b"5")),
        ("Severe", "BadHeader"),
    ),
    "multiple-cl-then-bad-method": (
        request(b"G(T", b"/", V11, (CL, b"1"), (CL, b"2")),
        ("Severe", "MultipleContentLength"),
    ),
    # Acceptable first, Ambiguous later: Ambiguous
    "non-compliant-header-then-get-cl": (
        request(b"GET", b"/", V11, (b"X", b"a\x7f"), (CL, b"5")),
        ("Ambiguous", "UndefinedContentLengthSemantics"),
    ),
    "space-in-uri-then-suspicious": (
        request(b"POST", b"/a b", V11, (b"Content_Length", b"5")),
        ("Ambiguous", "SuspiciousHeader"),
    ),
    # equal tiers: the first reason stays
    "duplicate-cl-then-both-te-cl": (
        request(b"POST", b"/", V11, (CL, b"5"), (CL, b"5"), (TE, b"chunked")),
        ("Ambiguous", "DuplicateContentLength"),
    ),
    "ambiguous-uri-after-get-cl": (
        request(b"GET", b"/a\x01", V11, (CL, b"5")),
        ("Ambiguous", "UndefinedContentLengthSemantics"),
    ),
    "http09-then-non-compliant-header": (
        request(b"GET", b"/", b"", (b"X", b"\x7f")),
        ("Acceptable", "NonCompliantHeader"),
    ),
    "http10-chunked-with-cl": (
        request(b"POST", b"/", V10, (CL, b"5"), (TE, b"chunked")),
        ("Ambiguous", "UndefinedTransferEncodingSemantics"),
    ),
}


@pytest.mark.parametrize(("args", "expected"), TWO_FINDINGS.values(), ids=TWO_FINDINGS.keys())
def test_the_worst_finding_wins(args: tuple, expected: tuple[str, str]) -> None:
    assert classify_parts(*args) == expected


def test_a_get_with_a_length_and_a_bad_coding_is_blocked_in_defensive_mode() -> None:
    """An Ambiguous finding cannot hide a Severe one: blocked, not forwarded-then-closed."""
    classification, _ = classify_parts(*request(b"GET", b"/", V11, (CL, b"5"), (TE, b"xgzip")))
    assert decide("defensive", classification) == "block"


SUSPICIOUS = "Ambiguous", "SuspiciousHeader"
ACCEPTABLE_NAME = "Acceptable", "NonCompliantHeader"
COMPLIANT = "Compliant", "-"


@pytest.mark.parametrize(("name", "expected"), [
    # token characters other than "_" in or around the name (the parser accepts them all)
    (b"Content.Length", SUSPICIOUS),
    (b"_Content-Length", SUSPICIOUS),
    (b"Transfer-Encoding.", SUSPICIOUS),
    (b"Transfer~Encoding", SUSPICIOUS),
    (b"content--length", SUSPICIOUS),
    (b"TRANSFER_ENCODING", SUSPICIOUS),
    (b"Content-Length:", SUSPICIOUS),  # ":" is no token character: Acceptable, then Ambiguous
    (b"Content::Length", SUSPICIOUS),
    (b"Content-Length[", SUSPICIOUS),
    (b"Cont ent-Length", SUSPICIOUS),  # white space after a letter is skipped
    (b"Tran\xc5\xbffer-Encoding", SUSPICIOUS),  # U+017F long s upper-cases to S
    # letters or digits around it: another field
    (b"Content-Length0", COMPLIANT),
    (b"Content-Length9", COMPLIANT),
    (b"0Content-Length", COMPLIANT),
    (b"Transfer-Encodinga", COMPLIANT),
    (b"Content-LengthZ", COMPLIANT),
    (b"Content-Lengtx", COMPLIANT),
    (b"Cont!ent-Length", COMPLIANT),  # "!" is a token character, not white space
    (b"X-Content-Length", COMPLIANT),
    (b"x_content-length", COMPLIANT),
    (b"Content-Type", COMPLIANT),
    # names that are not tokens at all
    (b"X Y", ACCEPTABLE_NAME),
    (b"\x0b", ACCEPTABLE_NAME),  # only SP and HTAB are trimmed: this name is not empty
    (b"X\rY", ("Severe", "BadHeader")),
    (b"Content\rLength", ("Severe", "BadHeader")),  # a bad name is never taken for the field
    # empty names
    (b"", ("Ambiguous", "EmptyHeader")),
    (b" \t", ("Ambiguous", "EmptyHeader")),
    (b":x", ("Ambiguous", "EmptyHeader")),
    (b";x", ACCEPTABLE_NAME),
])  # fmt: skip
def test_header_names(name: bytes, expected: tuple[str, str]) -> None:
    """Each name with a value that is right for the field it looks like (a length, or chunked
    for a Transfer-Encoding look-alike): only the name is found wrong."""
    value = b"chunked" if b"fer" in name.lower() else b"5"
    assert classify_parts(*request(b"POST", b"/", V11, (name, value))) == expected


@pytest.mark.parametrize(("important", "name", "expected"), [
    (TE, b"TRANSFER-ENCODING", IDENTICAL),
    (CL, b"cOnTeNt-LeNgTh", IDENTICAL),
    (CL, b"Content-Length.", SAME_LETTERS),
    (TE, b"Transfer--Encod\xc4\xb1", DISTANT),  # the look-alike i as the last two bytes, "ng" missing
    (TE, b"Transfer-Encod\xc4\xb1ng", SAME_LETTERS),  # U+0131 dotless i upper-cases to I
    (CL, b"Content-Lengtx", DISTANT),
])  # fmt: skip
def test_similarity(important: bytes, name: bytes, expected: int) -> None:
    assert similarity(important.lower(), name) == expected


@pytest.mark.parametrize(("method", "version", "headers", "expected"), [
    (b"POST", V10, [(CL, b"5")], COMPLIANT),  # HTTP/1.0 defines Content-Length
    (b"POST", b"", [(CL, b"5")], ("Ambiguous", "UndefinedContentLengthSemantics")),  # HTTP/0.9
    (b"POST", b"HTTP/0.9", [(CL, b"5")], ("Ambiguous", "UndefinedContentLengthSemantics")),
    (b"POST", V11, [(CL, b" 5\t")], COMPLIANT),  # OWS is not part of it
    (b"POST", V11, [(CL, b"5\x0b")], ("Severe", "BadContentLength")),  # only SP and HTAB are OWS
    (b"POST", V11, [(CL, b"5X")], ("Severe", "BadContentLength")),
    (b"POST", V11, [(CL, b"")], COMPLIANT),  # an empty value counts as 0
    (b"GET", V11, [(CL, b" ")], ("Acceptable", "GetHeadZeroContentLength")),
    (b"HEAD", V11, [(CL, b"00")], ("Acceptable", "GetHeadZeroContentLength")),
    (b"POST", V11, [(CL, b"9" * 19)], COMPLIANT),  # 19 digits: under 2**64
    (b"POST", V11, [(CL, b"1" + b"0" * 19)], ("Severe", "BadContentLength")),  # 20 digits
    (b"POST", V11, [(CL, b"0" * 20)], ("Severe", "BadContentLength")),
    (b"POST", V11, [(CL, b"5, 5")], ("Severe", "BadContentLength")),
    (b"POST", V11, [(TE, b"chunked\x0b;a=b")], ("Severe", "BadTransferEncoding")),
    (b"POST", V11, [(TE, b"\x0bchunked")], ("Severe", "BadTransferEncoding")),
    (b"POST", V11, [(TE, b"chunkedX")], ("Severe", "BadTransferEncoding")),
    (b"POST", V11, [(TE, b"Xchunked")], ("Severe", "BadTransferEncoding")),
    (b"POST", V11, [(TE, b"chunked ; q=1")], COMPLIANT),  # parameters are not the coding
    (b"POST", V11, [(TE, b"\tChunked ")], COMPLIANT),
    (b"POST", V11, [(TE, b"gzip, chunked")], COMPLIANT),
    (b"POST", V11, [(TE, b"chunked"), (TE, b"chunked")], ("Severe", "MultipleTransferEncodingChunked")),
    (b"POST", V11, [(TE, b"chunked, gzip, chunked")], COMPLIANT),  # not twice in a row
    (b"GET", V11, [(b"TRANSFER-ENCODING", b"chunked")], ("Ambiguous", "UndefinedTransferEncodingSemantics")),
])  # fmt: skip
def test_lengths_and_encodings(method, version, headers, expected) -> None:
    assert classify_parts(*request(method, b"/", version, *headers)) == expected


@pytest.mark.parametrize(("version", "expected"), [
    (b"HTTP/1.0", COMPLIANT),
    (b"HTTP/1.9", ("Acceptable", "NonCompliantVersion")),
    (b"HTTP/1.:", ("Severe", "BadVersion")),
    (b"HTTP/1./", ("Severe", "BadVersion")),
    (b"HTTP/0.1", ("Severe", "BadVersion")),
    (b"HTTP/1.1\x0b", ("Severe", "BadVersion")),  # only SP and HTAB are trimmed
    (b"HTTP/1.1X", ("Severe", "BadVersion")),
    (b"HTTP/1.1 ", ("Acceptable", "NonCompliantVersion")),
    (b"\x0b", ("Severe", "BadVersion")),
    (b" X", ("Severe", "BadVersion")),  # (a bare "X" sorts after HTTP/2)
    (b" ", ("Acceptable", "NonCompliantVersion")),  # none: HTTP/0.9
    (b"HTTP/2", COMPLIANT),  # HTTP/2 and later: not classified (answered 505)
    (b"HTTP/2.0", COMPLIANT),
    (b"http/1.1", COMPLIANT),  # sorts after HTTP/2: answered 505 as well
])  # fmt: skip
def test_versions(version: bytes, expected: tuple[str, str]) -> None:
    assert classify_parts(*request(b"GET", b"/", version)) == expected


@pytest.mark.parametrize(("uri", "expected"), [
    (b"/a!", COMPLIANT),
    (b"/a?b=c", COMPLIANT),
    (b"/caf\xc3\xa9", COMPLIANT),
    (b"/a b", ("Acceptable", "SpaceInUri")),
    (b"/a\x7f", ("Ambiguous", "AmbiguousUri")),
    (b"/a\x1f", ("Ambiguous", "AmbiguousUri")),
    (b"/a\n", ("Severe", "BadUri")),
])  # fmt: skip
def test_uris(uri: bytes, expected: tuple[str, str]) -> None:
    assert classify_parts(*request(b"GET", uri, V11)) == expected


@pytest.mark.parametrize(("classification", "decisions"), [
    ("Compliant", ("allow", "allow", "allow")),
    ("Acceptable", ("allow", "allow", "block")),
    ("Ambiguous", ("allow", "allow-then-close", "block")),
    ("Severe", ("allow", "block", "block")),
])  # fmt: skip
def test_each_mode_decides(classification: str, decisions: tuple[str, str, str]) -> None:
    assert tuple(decide(mode, classification) for mode in MODES) == decisions
