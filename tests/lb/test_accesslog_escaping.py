"""What the access log writes of a client's bytes, and which error reasons it names.

Client-supplied fields (request, user agent, trace id, redirect URL) are quoted and written as
ALB writes them: printable ASCII as sent; every other byte (controls, DEL, each byte of a
non-ASCII character, UTF-8 or not) and the quote and the backslash as `\\xhh`. The
`error_reason` field names only codes from ALB's documented list, `-` otherwise
(docs/operations.md).
"""

from __future__ import annotations

import pytest

from microforum.lb import accesslog

ESCAPES = [
    (b"", b"-"),
    (b"curl/8.5.0 (x86_64; +https://curl.se/)", b"curl/8.5.0 (x86_64; +https://curl.se/)"),
    (b'say "hi"', b"say \\x22hi\\x22"),
    (b"back\\slash", b"back\\x5cslash"),
    (b"\\x41", b"\\x5cx41"),  # a literal backslash-x stays distinguishable from an escape
    (b"nul\x00", b"nul\\x00"),
    (b"tab\there", b"tab\\x09here"),
    (b"new\r\nline", b"new\\x0d\\x0aline"),
    (b"del\x7f", b"del\\x7f"),
    (b"caf\xc3\xa9", b"caf\\xc3\\xa9"),  # UTF-8 too: the log is ASCII
    (b"\xf0\x9f\x98\x80", b"\\xf0\\x9f\\x98\\x80"),
    (b"latin-1 caf\xe9!", b"latin-1 caf\\xe9!"),  # not UTF-8
    (b"\xff\x80", b"\\xff\\x80"),
    (b"~ and space", b"~ and space"),  # the printable edges stay
]


@pytest.mark.parametrize(("text", "written"), ESCAPES, ids=[repr(t)[:24] for t, _ in ESCAPES])
def test_client_bytes_are_escaped(text: bytes, written: bytes) -> None:
    assert accesslog.escaped_py(text) == written
    assert accesslog.escaped(text) == written  # the C helper when built, the same otherwise


@pytest.mark.parametrize(
    ("reason", "logged"),
    [
        ("-", "-"),
        ("AWSALBTGCookieInvalid", "AWSALBTGCookieInvalid"),
        ("WeightedTargetGroupsUnhandledException", "WeightedTargetGroupsUnhandledException"),
        ("LambdaInvalidResponse", "LambdaInvalidResponse"),
        ("TargetTimeout", "-"),  # ours, not ALB's: ALB's log says it with the status codes
        ("TargetConnectionError", "-"),
        ("RequestHeaderTooLarge", "-"),
    ],
)
def test_error_reason_is_one_of_albs_documented_codes(reason: str, logged: str) -> None:
    assert accesslog.logged_error_reason(reason) == logged


def test_a_line_names_no_undocumented_error_reason() -> None:
    record = accesslog.LogRecord(
        "app/s/local", "10.0.0.1:5000", "-", -1.0, -1.0, -1.0, 504, b"-", 120, 0,
        b"GET http://h:80/ HTTP/1.1", b"curl/8", "arn:tg", b"Root=1-0-0", "0", 1_700_000_000.0,
        1_700_000_001.0, "forward", "-", "TargetTimeout", "Compliant", "-", "TID_1",
    )  # fmt: skip
    line = accesslog.line(accesslog.Clock(), record)
    assert line.decode().split('"')[-10] == "-"  # the error_reason field
