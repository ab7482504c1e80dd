"""Desync classification (http-desync-guardian's tiers and reasons) and mode decisions."""

from __future__ import annotations

import pytest

from microforum.lb.desync import SAME_LETTERS, classify, classify_parts, decide, similarity
from microforum.lb.reader import split_head

H = [(b"Host", b"a")]
V11 = b"HTTP/1.1"


@pytest.mark.parametrize(
    ("method", "url", "version", "headers", "expected"),
    [
        (b"GET", b"/", V11, H, ("Compliant", "-")),
        (b"POST", b"/", V11, [*H, (b"Content-Length", b"5")], ("Compliant", "-")),
        (b"POST", b"/", V11, [*H, (b"Transfer-Encoding", b"chunked")], ("Compliant", "-")),
        (b"GET", b"/", V11, [*H, (b"X", b"caf\xc3\xa9")], ("Compliant", "-")),  # obs-text
        (b"GET", b"/", V11, [*H, (b"X", b"a\x01b")], ("Acceptable", "NonCompliantHeader")),
        (b"GET", b"/", V11, [*H, (b"Content-Length", b"0")], ("Acceptable", "GetHeadZeroContentLength")),
        (b"GET", b"/a b", V11, H, ("Acceptable", "SpaceInUri")),
        (b"GET", b"/", b"HTTP/1.2", H, ("Acceptable", "NonCompliantVersion")),
        (
            b"GET",
            b"/",
            V11,
            [*H, (b"Content-Length", b"5")],
            ("Ambiguous", "UndefinedContentLengthSemantics"),
        ),
        (
            b"HEAD",
            b"/",
            V11,
            [*H, (b"Transfer-Encoding", b"chunked")],
            ("Ambiguous", "UndefinedTransferEncodingSemantics"),
        ),
        (
            b"POST",
            b"/",
            b"HTTP/1.0",
            [*H, (b"Transfer-Encoding", b"chunked")],
            ("Ambiguous", "UndefinedTransferEncodingSemantics"),
        ),
        (
            b"POST",
            b"/",
            V11,
            [*H, (b"Content-Length", b"5"), (b"Content-Length", b"5")],
            ("Ambiguous", "DuplicateContentLength"),
        ),
        (
            b"POST",
            b"/",
            V11,
            [*H, (b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")],
            ("Ambiguous", "BothTeClPresent"),
        ),
        (b"POST", b"/", V11, [*H, (b"Content_Length", b"5")], ("Ambiguous", "SuspiciousHeader")),
        (b"POST", b"/", V11, [*H, (b"Transfer_Encoding", b"chunked")], ("Ambiguous", "SuspiciousHeader")),
        (b"GET", b"/a\x01", V11, H, ("Ambiguous", "AmbiguousUri")),
        (b"GET", b"/a\x00", V11, H, ("Severe", "BadUri")),
        (b"GET", b"/", V11, [*H, (b"X", b"a\rb")], ("Severe", "BadHeader")),
        (
            b"POST",
            b"/",
            V11,
            [*H, (b"Content-Length", b"5"), (b"Content-Length", b"6")],
            ("Severe", "MultipleContentLength"),
        ),
        (b"POST", b"/", V11, [*H, (b"Content-Length", b"-1")], ("Severe", "BadContentLength")),
        (b"POST", b"/", V11, [*H, (b"Content-Length", b"5x")], ("Severe", "BadContentLength")),
        (
            b"POST",
            b"/",
            V11,
            [*H, (b"Transfer-Encoding", b"chunked, chunked")],
            ("Severe", "MultipleTransferEncodingChunked"),
        ),
        (b"POST", b"/", V11, [*H, (b"Transfer-Encoding", b"gzip")], ("Compliant", "-")),  # a known coding
        (b"POST", b"/", V11, [*H, (b"Transfer---Encoding", b"chunked")], ("Ambiguous", "SuspiciousHeader")),
        (b"GET", b"/", b"", H, ("Acceptable", "NonCompliantVersion")),  # HTTP/0.9
        (b"GET", b"/", b"HTTP/1.1 HTTP/1.1", H, ("Severe", "BadVersion")),
        (b"G(T", b"/", V11, H, ("Severe", "BadMethod")),
        (b"POST", b"/", V11, [*H, (b"Transfer-Encoding", b"xchunked")], ("Severe", "BadTransferEncoding")),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) and isinstance(v[0], str) else None,
)
def test_classify(method, url, version, headers, expected):
    assert classify_parts(method, url, version, headers) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b"GET / HTTP/1.1\r\nHost: a", ("Compliant", "-")),
    (b"GET / HTTP/1.1\nHost: a", ("Acceptable", "NonCrLfLineTermination")),
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded", ("Ambiguous", "MultilineHeader")),
    (b"GET / HTTP/1.1\r\nHost a", ("Ambiguous", "MissingHeaderColon")),
    (b"GET HTTP/1.1\r\nHost: a", ("Ambiguous", "MissingUri")),
    (b"GET /a\nb HTTP/1.1\r\nHost: a", ("Severe", "BadUri")),  # a bare LF is no line end here
    (b"GET / HTTP/1.1\r\nX: a\rb", ("Severe", "BadHeader")),
])  # fmt: skip
def test_classify_a_head_as_read(raw, expected):
    assert classify(split_head(raw)) == expected


@pytest.mark.parametrize(("name", "expected"), [
    (b"Transfer-Encoding", 0), (b"transfer-encoding", 0), (b"Transfer-Encoding ", SAME_LETTERS),
    (b"\x01Transfer-Encoding", SAME_LETTERS), (b"Transfer_Encoding", SAME_LETTERS),
    (b"Tran\xc5\xbffer-Encoding", SAME_LETTERS), (b"Transfer-Encodings", 2), (b"Transfer", 2),
    (b"X-Transfer-Encoding", 2),
])  # fmt: skip
def test_similarity_to_transfer_encoding(name, expected):
    assert similarity(b"transfer-encoding", name) == expected


@pytest.mark.parametrize(("mode", "classification", "decision"), [
    ("monitor", "Severe", "allow"),
    ("defensive", "Acceptable", "allow"),
    ("defensive", "Ambiguous", "allow-then-close"),
    ("defensive", "Severe", "block"),
    ("strictest", "Compliant", "allow"),
    ("strictest", "Acceptable", "block"),
    ("strictest", "Ambiguous", "block"),
])  # fmt: skip
def test_decide(mode, classification, decision):
    assert decide(mode, classification) == decision
