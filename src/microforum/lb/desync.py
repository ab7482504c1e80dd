"""HTTP desync (request smuggling) classification, as ALB's desync mitigation does it. Pure.

ALB classifies each request with AWS's http-desync-guardian (ALB_SPEC E) as Compliant,
Acceptable, Ambiguous or Severe, with a reason that the access log records, and acts on it by
mode (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/
application-load-balancers.html#desync-mitigation-mode):

    classification  monitor   defensive (default)        strictest
    Compliant       allow     allow                      allow
    Acceptable      allow     allow                      400, close
    Ambiguous       allow     forward, then close both   400, close
    Severe          allow     400, close client          400, close

Our parser (llhttp, strict) refuses some Severe and Ambiguous shapes on its own (duplicate
Content-Length even with equal values, obs-fold lines, spaces in the URI, unknown methods).
`classify_parse_error` names those for the access log; they always get 400 and a closed
connection, whatever the mode, and never reach a target. ⚠ This is stricter than ALB for
`DuplicateContentLength` and `MultilineHeader` (Ambiguous there): a chosen, documented deviation.
Content-Length together with Transfer-Encoding is let through the parser (a leniency switched
on in proxy.py) so that it is classified `BothTeClPresent` and forwarded as defensive mode does,
re-framed as chunked with the Content-Length removed, then both connections are closed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

COMPLIANT: Final = "Compliant"
ACCEPTABLE: Final = "Acceptable"
AMBIGUOUS: Final = "Ambiguous"
SEVERE: Final = "Severe"
_RANK = {COMPLIANT: 0, ACCEPTABLE: 1, AMBIGUOUS: 2, SEVERE: 3}

ALLOW: Final = "allow"
ALLOW_THEN_CLOSE: Final = "allow-then-close"
BLOCK: Final = "block"

_DECISIONS = {
    "monitor": {COMPLIANT: ALLOW, ACCEPTABLE: ALLOW, AMBIGUOUS: ALLOW, SEVERE: ALLOW},
    "defensive": {COMPLIANT: ALLOW, ACCEPTABLE: ALLOW, AMBIGUOUS: ALLOW_THEN_CLOSE, SEVERE: BLOCK},
    "strictest": {COMPLIANT: ALLOW, ACCEPTABLE: BLOCK, AMBIGUOUS: BLOCK, SEVERE: BLOCK},
}

_BAD_BYTES = re.compile(rb"[\x00\r\n]").search  # NUL, CR, LF: Bad*
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search  # control characters except HTAB
_NON_COMPLIANT = re.compile(rb"[^\t\x20-\x7e]").search  # CTL or non-ASCII
_DIGITS = re.compile(rb"[0-9]{1,18}").fullmatch
_NAME_NOISE = re.compile(rb"[^a-z]")  # normalisation for SuspiciousHeader
_CL, _TE = b"content-length", b"transfer-encoding"
_CL_NORM, _TE_NORM = b"contentlength", b"transferencoding"


def decide(mode: str, classification: str) -> str:
    """What the load balancer does with a request of this classification in `mode`."""
    return _DECISIONS[mode][classification]


class _Verdict:
    __slots__ = ("classification", "reason")

    def __init__(self) -> None:
        self.classification, self.reason = COMPLIANT, "-"

    def worse(self, classification: str, reason: str) -> None:
        if _RANK[classification] > _RANK[self.classification]:
            self.classification, self.reason = classification, reason


def classify(
    method: bytes, url: bytes, version: str, headers: Sequence[tuple[bytes, bytes]]
) -> tuple[str, str]:
    """(classification, reason) of a parsed request; reason is "-" when Compliant."""
    verdict = _Verdict()
    _check_uri(url, verdict)
    if version not in ("1.1", "1.0"):
        verdict.worse(ACCEPTABLE, "NonCompliantVersion")
    lengths: list[bytes] = []
    encodings: list[bytes] = []
    for name, value in headers:
        lower = name.lower()
        if lower == _CL:
            lengths.append(value)
        elif lower == _TE:
            encodings.append(value)
        else:
            _check_other_header(lower, value, verdict)
    if lengths:
        _check_lengths(method, lengths, verdict)
    if encodings:
        _check_encodings(method, version, encodings, verdict)
    if lengths and encodings:
        verdict.worse(AMBIGUOUS, "BothTeClPresent")
    return verdict.classification, verdict.reason


def _check_uri(url: bytes, verdict: _Verdict) -> None:
    if _NON_COMPLIANT(url) is None:
        if b" " in url:
            verdict.worse(ACCEPTABLE, "SpaceInUri")
        return
    if _BAD_BYTES(url):
        verdict.worse(SEVERE, "BadUri")
    elif _CTL(url):
        verdict.worse(AMBIGUOUS, "AmbiguousUri")
    else:
        verdict.worse(ACCEPTABLE, "NonCompliantHeader")


def _check_other_header(lower: bytes, value: bytes, verdict: _Verdict) -> None:
    if not lower:
        verdict.worse(AMBIGUOUS, "EmptyHeader")
    elif _NON_COMPLIANT(value) is not None:
        if _BAD_BYTES(value):
            verdict.worse(SEVERE, "BadHeader")
        else:
            verdict.worse(ACCEPTABLE, "NonCompliantHeader")
    if lower[0:1] in (b"c", b"t") or b"_" in lower or b" " in lower:
        squeezed = _NAME_NOISE.sub(b"", lower.replace(b"_", b"-"))
        if squeezed in (_CL_NORM, _TE_NORM):  # e.g. Content_Length, Transfer-Encoding\x0b
            verdict.worse(AMBIGUOUS, "SuspiciousHeader")


def _check_lengths(method: bytes, lengths: list[bytes], verdict: _Verdict) -> None:
    values = [v.strip(b" \t") for v in lengths]
    if any(not v for v in values):
        verdict.worse(AMBIGUOUS, "EmptyHeader")
        return
    if any(_DIGITS(v) is None for v in values):
        verdict.worse(SEVERE, "BadContentLength")
        return
    if len(set(values)) > 1:
        verdict.worse(SEVERE, "MultipleContentLength")
    elif len(values) > 1:
        verdict.worse(AMBIGUOUS, "DuplicateContentLength")
    if method in (b"GET", b"HEAD"):
        if int(values[0]) == 0:
            verdict.worse(ACCEPTABLE, "GetHeadZeroContentLength")
        else:
            verdict.worse(AMBIGUOUS, "UndefinedContentLengthSemantics")


def _check_encodings(method: bytes, version: str, encodings: list[bytes], verdict: _Verdict) -> None:
    codings = [c.strip(b" \t").lower() for v in encodings for c in v.split(b",")]
    chunked = codings.count(b"chunked")
    if chunked > 1:
        verdict.worse(SEVERE, "MultipleTransferEncodingChunked")
    elif codings != [b"chunked"]:
        verdict.worse(SEVERE, "BadTransferEncoding")
    if method in (b"GET", b"HEAD") or version == "1.0":
        verdict.worse(AMBIGUOUS, "UndefinedTransferEncodingSemantics")


# llhttp's error messages (strict mode) -> the reason http-desync-guardian would give.
_PARSE_ERRORS = (
    ("content-length", "MultipleContentLength"),  # "Duplicate Content-Length"
    ("invalid character in content-length", "BadContentLength"),
    ("transfer-encoding", "BadTransferEncoding"),
    ("chunk", "BadTransferEncoding"),
    ("method", "BadMethod"),
    ("version", "BadVersion"),
    ("expected http/", "BadUri"),
    ("url", "BadUri"),
    ("whitespace after header value", "MultilineHeader"),
    ("header", "BadHeader"),
)


def classify_parse_error(message: str) -> tuple[str, str]:
    """(classification, reason) for a request the parser refused: always Severe."""
    text = message.lower()
    if "invalid character in content-length" in text:
        return SEVERE, "BadContentLength"
    for needle, reason in _PARSE_ERRORS:
        if needle in text:
            return SEVERE, reason
    return SEVERE, "BadHeader"
