"""What the access log writes of a client's bytes, and which error reasons it names.

Client-supplied fields (request, user agent, trace id, redirect URL) are quoted: printable ASCII
and well-formed UTF-8 text stay as sent; a quote and a backslash get a backslash; every other
byte (controls, DEL, C1 controls, bytes that are not UTF-8) is written as `\\xHH`. The
`error_reason` field names only codes from ALB's documented list, `-` otherwise
(docs/operations.md).
"""

from __future__ import annotations

import pytest

from microforum.lb import accesslog

ESCAPES = [
    (b"", b"-"),
    (b"curl/8.5.0", b"curl/8.5.0"),
    (b'say "hi"', b'say \\"hi\\"'),
    (b"back\\slash", b"back\\\\slash"),
    (b"\\x41", b"\\\\x41"),  # a literal backslash-x stays distinguishable from an escape
    (b"nul\x00", b"nul\\x00"),
    (b"tab\there", b"tab\\x09here"),
    (b"new\r\nline", b"new\\x0D\\x0Aline"),
    (b"del\x7f", b"del\\x7F"),
    (b"caf\xc3\xa9", b"caf\xc3\xa9"),  # é, well-formed UTF-8
    (b"\xe2\x82\xac and \xf0\x9f\x98\x80", b"\xe2\x82\xac and \xf0\x9f\x98\x80"),
    (b"\xc2\x85", b"\\xC2\\x85"),  # U+0085, a C1 control
    (b"\xff", b"\\xFF"),
    (b"latin-1 caf\xe9!", b"latin-1 caf\\xE9!"),
    (b"cut \xc3", b"cut \\xC3"),  # a sequence cut short
    (b"\xc3(", b"\\xC3("),
    (b"\xc0\xaf", b"\\xC0\\xAF"),  # overlong
    (b"\xed\xa0\x80", b"\\xED\\xA0\\x80"),  # a surrogate
    (b"\xf4\x90\x80\x80", b"\\xF4\\x90\\x80\\x80"),  # past U+10FFFF
    (b"\x80abc", b"\\x80abc"),  # a lone continuation byte
]


@pytest.mark.parametrize(("text", "written"), ESCAPES, ids=[repr(t)[:24] for t, _ in ESCAPES])
def test_client_bytes_are_escaped(text: bytes, written: bytes) -> None:
    assert accesslog.escaped_py(text) == written
    assert accesslog.escaped(text) == written  # the C helper when built, the same otherwise


def _error_field(reason: str) -> str:
    clock = accesslog.Clock()
    line = accesslog.line(
        clock, "app/s/local", "10.0.0.1:5000", "-", -1.0, -1.0, -1.0, 504, b"-", 120, 0,
        b"GET http://h:80/ HTTP/1.1", b"curl/8", "arn:tg", b"Root=1-0-0", "0", 1_700_000_000.0,
        1_700_000_001.0, "forward", "-", reason, "Compliant", "-", "TID_1",
    )  # fmt: skip
    return line.decode().split('"')[-10]


@pytest.mark.parametrize(
    ("reason", "logged"),
    [
        ("-", "-"),
        ("AWSALBTGCookieInvalid", "AWSALBTGCookieInvalid"),
        ("WeightedTargetGroupsUnhandledException", "WeightedTargetGroupsUnhandledException"),
        ("TargetTimeout", "-"),  # ours, not ALB's: ALB's log says it with the status codes
        ("TargetConnectionError", "-"),
        ("RequestHeaderTooLarge", "-"),
    ],
)
def test_error_reason_is_one_of_albs_documented_codes(reason: str, logged: str) -> None:
    assert _error_field(reason) == logged
    assert logged == "-" or logged in accesslog.ERROR_REASONS
