"""Desync classification with more than one finding in a request (the worst wins, the first of
equal rank keeps its reason), SuspiciousHeader for every token character the parser accepts,
and the whole mode table (lb/desync.py; ALB's classification: docs/ of http-desync-guardian)."""

from __future__ import annotations

from typing import Any

import pytest

from microforum.lb.desync import classify, classify_parse_error, decide

H = [(b"Host", b"a")]
CL, TE = b"Content-Length", b"Transfer-Encoding"
MODES = ("monitor", "defensive", "strictest")


def row(method: bytes, url: bytes, version: str, *headers: tuple[bytes, bytes]) -> tuple[str, str]:
    return classify(method, url, version, [*H, *headers])


def request(method: bytes, url: bytes, version: str, *headers: tuple[bytes, bytes]) -> tuple[Any, ...]:
    """The arguments of `row`, classified inside the test: mutmut switches a mutant on only then."""
    return (method, url, version, *headers)


TWO_FINDINGS = [
    # a GET with a body length (Ambiguous) and a coding other than chunked (Severe): Severe
    (
        "get-cl-and-te-gzip",
        request(b"GET", b"/", "1.1", (CL, b"5"), (TE, b"gzip")),
        ("Severe", "BadTransferEncoding"),
    ),
    (
        "get-te-gzip-then-cl",
        request(b"GET", b"/", "1.1", (TE, b"gzip"), (CL, b"5")),
        ("Severe", "BadTransferEncoding"),
    ),
    # Acceptable found first, Ambiguous later: Ambiguous
    (
        "non-ascii-then-get-cl",
        request(b"GET", b"/", "1.1", (b"X", b"caf\xc3\xa9"), (CL, b"5")),
        ("Ambiguous", "UndefinedContentLengthSemantics"),
    ),
    (
        "space-in-uri-then-suspicious",
        request(b"POST", b"/a b", "1.1", (b"Content_Length", b"5")),
        ("Ambiguous", "SuspiciousHeader"),
    ),
    # Severe found first, Acceptable and Ambiguous later: Severe, with the first reason
    (
        "bad-uri-then-version",
        request(b"GET", b"/a\r", "1.2", (CL, b"5")),
        ("Severe", "BadUri"),
    ),
    (
        "bad-header-then-multiple-cl",
        request(b"POST", b"/", "1.1", (b"X", b"a\nb"), (CL, b"1"), (CL, b"2")),
        ("Severe", "BadHeader"),
    ),
    # two of the same rank: the first keeps its reason
    (
        "ambiguous-uri-then-get-cl",
        request(b"GET", b"/a\x01", "1.1", (CL, b"5")),
        ("Ambiguous", "AmbiguousUri"),
    ),
    (
        "version-then-non-compliant-header",
        request(b"GET", b"/", "0.9", (b"X", b"\xff")),
        ("Acceptable", "NonCompliantVersion"),
    ),
    (
        "both-te-cl-after-duplicate-cl",
        request(
            b"POST",
            b"/",
            "1.1",
            (CL, b"5"),
            (CL, b"5"),
            (TE, b"chunked"),
        ),
        ("Ambiguous", "DuplicateContentLength"),
    ),
    (
        "http10-chunked-with-cl",
        request(b"POST", b"/", "1.0", (CL, b"5"), (TE, b"chunked")),
        ("Ambiguous", "UndefinedTransferEncodingSemantics"),
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"), [r[1:] for r in TWO_FINDINGS], ids=[r[0] for r in TWO_FINDINGS]
)
def test_the_worst_finding_wins(args: tuple[Any, ...], expected: tuple[str, str]) -> None:
    assert row(*args) == expected


def test_a_get_with_content_length_and_gzip_is_blocked_in_defensive_mode() -> None:
    classification, _ = row(b"GET", b"/", "1.1", (CL, b"5"), (TE, b"gzip"))
    assert decide("defensive", classification) == "block"


@pytest.mark.parametrize(
    "name",
    [
        b"Content.Length",
        b"_Content-Length",
        b"Transfer-Encoding.",
        b"Content_Length",
        b"content--length",
        b"Transfer~Encoding",
        b"TRANSFER_ENCODING",
        b"Content-Length\x0b",
        b" Transfer-Encoding",  # a space anywhere: checked whatever the first letter
        b"x_content-length",  # not suspicious: an x in front leaves "xcontentlength"
    ],
)
def test_suspicious_header_names(name: bytes) -> None:
    expected = ("Compliant", "-") if name.startswith(b"x") else ("Ambiguous", "SuspiciousHeader")
    assert row(b"POST", b"/", "1.1", (name, b"5")) == expected


@pytest.mark.parametrize(
    "name",
    [b"Content-Type", b"Connection", b"TE", b"Trailer", b"X-Content-Length", b"Content-MD5"],
)
def test_look_alike_names_that_are_not_suspicious(name: bytes) -> None:
    assert row(b"POST", b"/", "1.1", (name, b"5")) == ("Compliant", "-")


@pytest.mark.parametrize(
    ("method", "version", "headers", "expected"),
    [
        (b"POST", "1.1", [(CL, b" 5\t")], ("Compliant", "-")),  # OWS is not part of it
        (b"POST", "1.1", [(b"content-length", b"5")], ("Compliant", "-")),  # names are case-insensitive
        (b"POST", "1.1", [(CL, b"")], ("Ambiguous", "EmptyHeader")),
        (b"POST", "1.1", [(CL, b"5"), (CL, b" ")], ("Ambiguous", "EmptyHeader")),
        (b"POST", "1.1", [(CL, b"9" * 18)], ("Compliant", "-")),
        (b"POST", "1.1", [(CL, b"9" * 19)], ("Severe", "BadContentLength")),
        (b"POST", "1.1", [(CL, b"5, 5")], ("Severe", "BadContentLength")),
        (b"POST", "1.1", [(CL, b"5\x0b")], ("Severe", "BadContentLength")),  # only SP and HTAB are OWS
        (b"POST", "1.1", [(CL, b"5X")], ("Severe", "BadContentLength")),
        (b"POST", "1.1", [(TE, b"chunked\x0b")], ("Severe", "BadTransferEncoding")),
        (b"POST", "1.1", [(TE, b"chunkedX")], ("Severe", "BadTransferEncoding")),
        (b"POST", "1.1", [(TE, b"\tchunked ")], ("Compliant", "-")),
        (b"HEAD", "1.1", [(CL, b"00")], ("Acceptable", "GetHeadZeroContentLength")),
        (b"HEAD", "1.1", [(CL, b"1")], ("Ambiguous", "UndefinedContentLengthSemantics")),
        (b"GET", "1.1", [(CL, b"1"), (CL, b"2")], ("Severe", "MultipleContentLength")),
        (b"POST", "1.1", [(TE, b" Chunked ")], ("Compliant", "-")),
        (b"POST", "1.1", [(TE, b"gzip"), (TE, b"chunked")], ("Severe", "BadTransferEncoding")),
        (b"POST", "1.1", [(TE, b"chunked"), (TE, b"chunked")], ("Severe", "MultipleTransferEncodingChunked")),
        (b"POST", "1.1", [(TE, b"gzip, chunked")], ("Severe", "BadTransferEncoding")),
        (b"GET", "1.1", [(TE, b"chunked")], ("Ambiguous", "UndefinedTransferEncodingSemantics")),
        (b"POST", "1.1", [(b"", b"x")], ("Ambiguous", "EmptyHeader")),
        (b"POST", "1.1", [(b"X", b"a\x00")], ("Severe", "BadHeader")),
        (b"POST", "1.1", [(b"X", b"a\tb")], ("Compliant", "-")),  # HTAB is allowed in a value
        (b"POST", "1.1", [(b"X", b"a\x7f")], ("Acceptable", "NonCompliantHeader")),
        (b"POST", "1.0", [], ("Compliant", "-")),
        (b"POST", "2.0", [], ("Acceptable", "NonCompliantVersion")),
    ],
)  # fmt: skip
def test_lengths_encodings_and_values(
    method: bytes, version: str, headers: list[tuple[bytes, bytes]], expected: tuple[str, str]
) -> None:
    assert classify(method, b"/", version, [*H, *headers]) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (b"/a?b=c", ("Compliant", "-")),
        (b"/a%20b", ("Compliant", "-")),
        (b"/a b", ("Acceptable", "SpaceInUri")),
        (b"/caf\xc3\xa9", ("Acceptable", "NonCompliantHeader")),
        (b"/caf\xc3\xa9 x", ("Acceptable", "NonCompliantHeader")),
        (b"/a\x7f", ("Ambiguous", "AmbiguousUri")),
        (b"/a\x1f", ("Ambiguous", "AmbiguousUri")),
        (b"/a\n", ("Severe", "BadUri")),
    ],
)
def test_uris(url: bytes, expected: tuple[str, str]) -> None:
    assert classify(b"GET", url, "1.1", H) == expected


@pytest.mark.parametrize(
    ("classification", "decisions"),
    [
        ("Compliant", ("allow", "allow", "allow")),
        ("Acceptable", ("allow", "allow", "block")),
        ("Ambiguous", ("allow", "allow-then-close", "block")),
        ("Severe", ("allow", "block", "block")),
    ],
)
def test_the_mode_table_in_full(classification: str, decisions: tuple[str, str, str]) -> None:
    assert tuple(decide(mode, classification) for mode in MODES) == decisions


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("Invalid URL", "BadUri"),
        ("Invalid header field char", "BadHeader"),
        ("Something new", "BadHeader"),  # an unknown refusal is still Severe
        ("Content-Length can't be present with Transfer-Encoding", "MultipleContentLength"),
        ("Invalid character in chunk extensions", "BadTransferEncoding"),
    ],
)
def test_more_parse_errors(message: str, reason: str) -> None:
    assert classify_parse_error(message) == ("Severe", reason)
