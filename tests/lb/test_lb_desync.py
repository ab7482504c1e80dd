"""Desync classification (http-desync-guardian's tiers and reasons) and mode decisions."""

from __future__ import annotations

import pytest

from microforum.lb.desync import classify, classify_parse_error, decide

H = [(b"Host", b"a")]


@pytest.mark.parametrize(
    ("method", "url", "version", "headers", "expected"),
    [
        (b"GET", b"/", "1.1", H, ("Compliant", "-")),
        (b"POST", b"/", "1.1", [*H, (b"Content-Length", b"5")], ("Compliant", "-")),
        (b"POST", b"/", "1.1", [*H, (b"Transfer-Encoding", b"chunked")], ("Compliant", "-")),
        (b"GET", b"/", "1.1", [*H, (b"X", b"caf\xc3\xa9")], ("Acceptable", "NonCompliantHeader")),
        (b"GET", b"/", "1.1", [*H, (b"Content-Length", b"0")], ("Acceptable", "GetHeadZeroContentLength")),
        (b"GET", b"/a b", "1.1", H, ("Acceptable", "SpaceInUri")),
        (b"GET", b"/", "1.2", H, ("Acceptable", "NonCompliantVersion")),
        (
            b"GET",
            b"/",
            "1.1",
            [*H, (b"Content-Length", b"5")],
            ("Ambiguous", "UndefinedContentLengthSemantics"),
        ),
        (
            b"HEAD",
            b"/",
            "1.1",
            [*H, (b"Transfer-Encoding", b"chunked")],
            ("Ambiguous", "UndefinedTransferEncodingSemantics"),
        ),
        (
            b"POST",
            b"/",
            "1.0",
            [*H, (b"Transfer-Encoding", b"chunked")],
            ("Ambiguous", "UndefinedTransferEncodingSemantics"),
        ),
        (
            b"POST",
            b"/",
            "1.1",
            [*H, (b"Content-Length", b"5"), (b"Content-Length", b"5")],
            ("Ambiguous", "DuplicateContentLength"),
        ),
        (
            b"POST",
            b"/",
            "1.1",
            [*H, (b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")],
            ("Ambiguous", "BothTeClPresent"),
        ),
        (b"POST", b"/", "1.1", [*H, (b"Content_Length", b"5")], ("Ambiguous", "SuspiciousHeader")),
        (b"POST", b"/", "1.1", [*H, (b"Transfer_Encoding", b"chunked")], ("Ambiguous", "SuspiciousHeader")),
        (b"GET", b"/a\x01", "1.1", H, ("Ambiguous", "AmbiguousUri")),
        (b"GET", b"/a\x00", "1.1", H, ("Severe", "BadUri")),
        (b"GET", b"/", "1.1", [*H, (b"X", b"a\rb")], ("Severe", "BadHeader")),
        (
            b"POST",
            b"/",
            "1.1",
            [*H, (b"Content-Length", b"5"), (b"Content-Length", b"6")],
            ("Severe", "MultipleContentLength"),
        ),
        (b"POST", b"/", "1.1", [*H, (b"Content-Length", b"-1")], ("Severe", "BadContentLength")),
        (b"POST", b"/", "1.1", [*H, (b"Content-Length", b"5x")], ("Severe", "BadContentLength")),
        (
            b"POST",
            b"/",
            "1.1",
            [*H, (b"Transfer-Encoding", b"chunked, chunked")],
            ("Severe", "MultipleTransferEncodingChunked"),
        ),
        (b"POST", b"/", "1.1", [*H, (b"Transfer-Encoding", b"gzip")], ("Severe", "BadTransferEncoding")),
        (b"POST", b"/", "1.1", [*H, (b"Transfer-Encoding", b"xchunked")], ("Severe", "BadTransferEncoding")),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) and isinstance(v[0], str) else None,
)
def test_classify(method, url, version, headers, expected):
    assert classify(method, url, version, headers) == expected


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


@pytest.mark.parametrize(("message", "reason"), [
    ("Duplicate Content-Length", "MultipleContentLength"),
    ("Invalid character in Content-Length", "BadContentLength"),
    ("Invalid character in chunk size", "BadTransferEncoding"),
    ("Request has invalid `Transfer-Encoding`", "BadTransferEncoding"),
    ("Invalid method encountered", "BadMethod"),
    ("Invalid HTTP version", "BadVersion"),
    ("Expected HTTP/, RTSP/ or ICE/", "BadUri"),
    ("Invalid header value char", "BadHeader"),
    ("Unexpected whitespace after header value", "MultilineHeader"),
])  # fmt: skip
def test_parse_errors_are_severe_with_a_reason(message, reason):
    assert classify_parse_error(message) == ("Severe", reason)
