"""Request smuggling and malformed HTTP through the load balancer, as ALB's modes answer them.

Every attempt carries a second, smuggled request (`/smuggled`); no backend may ever see it.
"""

from __future__ import annotations

import socket

import pytest
from lb_harness import Harness
from lb_helpers import stack
from test_lb_proxy import raw

pytestmark = pytest.mark.timeout(60)

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def harness(mode: str) -> Harness:
    lb = Harness(stack(f"load_balancer: {{desync_mitigation_mode: {mode}}}"))
    lb.backend("mono-1", "monolith")
    return lb


@pytest.fixture(scope="module")
def defensive():
    lb = harness("defensive")
    yield lb
    lb.close()


def paths(lb: Harness) -> list[str]:
    return [r["url"] for b in lb.backends for r in b.app_requests()]


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.mark.parametrize(
    "attack",
    [
        # two different Content-Lengths (Severe: MultipleContentLength)
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd" + SMUGGLED,
        # a bad chunk size
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + SMUGGLED,
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n" + SMUGGLED,
        # chunked twice, an unknown coding, a bad length (Severe)
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\nx" + SMUGGLED,
        # NUL and a bare CR in a header
        b"GET /a HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n" + SMUGGLED,
        b"GET /a HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" + SMUGGLED,
        # not HTTP at all
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + SMUGGLED,
    ],
    ids=[
        "two-cl",
        "chunk-zz",
        "chunk-neg",
        "te-twice",
        "cl-1x",
        "nul",
        "bare-cr",
        "tls",
    ],
)
def test_severe_or_malformed_gets_400_closes_and_reaches_no_target(defensive, attack):
    answer, closed = raw(defensive.port, attack)
    assert status_of(answer) == 400 and b"<title>400 Bad Request</title>" in answer
    assert closed and answer.count(b"HTTP/1.1") == 1
    assert "/smuggled" not in paths(defensive) and "/a" not in paths(defensive)
    # nothing leaked: no request counted as outstanding, no target connection left busy
    for _target, (slot, _tracker, pool) in defensive.lb.groups["monolith"].by_target.items():
        assert slot.outstanding == 0 and not pool.busy, (slot, pool)


@pytest.mark.parametrize(
    "attack",
    [
        # obs-fold (MultilineHeader), a space before the colon (SuspiciousHeader): Ambiguous
        b"GET /a HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n" + SMUGGLED,
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    ],
    ids=["obs-fold", "te-space"],
)
def test_ambiguous_is_forwarded_without_the_odd_field_then_closes(defensive, attack):
    before = len(paths(defensive))
    answer, closed = raw(defensive.port, attack)
    assert status_of(answer) == 200 and closed and answer.count(b"HTTP/1.1") == 1
    assert paths(defensive)[before:] == ["/a"]  # the request, never what followed it
    request = [r for b in defensive.backends for r in b.app_requests()][-1]
    names = [n.lower().strip() for n, _ in request["headers"]]
    assert "transfer-encoding" not in names and "folded" not in str(request["headers"])


def test_cl_te_is_forwarded_reframed_then_both_connections_close(defensive):
    # Ambiguous (BothTeClPresent): routed, but the body is taken as chunked, the
    # Content-Length removed, and the connections closed so nothing can follow it.
    attack = (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\nTransfer-Encoding: chunked"
              b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + SMUGGLED)  # fmt: skip
    answer, closed = raw(defensive.port, attack)
    assert status_of(answer) == 200 and b'"body": "abc"' in answer and closed
    assert b"Connection: close" in answer
    (request,) = [r for b in defensive.backends for r in b.app_requests() if r["url"] == "/echo"]
    names = [n.lower() for n, _ in request["headers"]]
    assert "content-length" not in names and "transfer-encoding" in names
    assert "/smuggled" not in paths(defensive)


def test_oversized_request_line_and_header_get_400(defensive):
    answer, closed = raw(defensive.port, b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(answer) == 400 and closed
    answer, closed = raw(defensive.port, b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"b" * 17000 + b"\r\n\r\n")
    assert status_of(answer) == 400 and closed
    many = b"".join(b"X-%d: %s\r\n" % (i, b"c" * 1000) for i in range(70))
    answer, closed = raw(defensive.port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert status_of(answer) == 400 and closed


def trailers(size: int) -> bytes:
    return b"".join(b"X-T%05d: %s\r\n" % (i, b"t" * 90) for i in range(size // 100))


def test_trailers_count_toward_the_64_kb_of_headers(defensive):
    head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    answer, _ = raw(defensive.port, head + trailers(60_000) + b"\r\n", timeout=1)
    assert status_of(answer) == 200 and b'"body": "abc"' in answer  # under the limit: fine
    # Over 64 KB in all (the head's and the trailers' fields): 400, closed, whatever was sent.
    answer, closed = raw(defensive.port, head + trailers(70_000) + b"\r\n")
    assert status_of(answer) == 400 and closed
    big_head = head.replace(b"Host: a\r\n", b"Host: a\r\n" + trailers(40_000))
    answer, closed = raw(defensive.port, big_head + trailers(30_000) + b"\r\n")
    assert status_of(answer) == 400 and closed


def test_an_endless_trailer_section_is_cut_at_the_limit(defensive):
    answer, cut = b"", False
    with socket.create_connection(("127.0.0.1", defensive.port), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
        try:
            for _ in range(3000):  # 30 MB unless refused
                sock.sendall(trailers(10_000))
            while chunk := sock.recv(65536):
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            cut = True  # the LB closed while we still sent (its 400 may be lost to the reset)
    assert cut or status_of(answer) == 400
    assert not answer or status_of(answer) == 400


def test_trace_is_405_and_too_many_forwarded_for_is_463(defensive):
    answer, _ = raw(defensive.port, b"TRACE / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 405
    xff = ", ".join(f"10.0.0.{i}" for i in range(31)).encode()
    answer, _ = raw(defensive.port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: "
                    + xff + b"\r\n\r\n")  # fmt: skip
    assert status_of(answer) == 463
    answer, _ = raw(defensive.port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 400  # HTTP/1.1 without Host


@pytest.mark.parametrize(("mode", "status", "closed"), [
    ("monitor", 200, False),  # everything goes through, connection kept
    ("defensive", 200, True),  # Ambiguous: forwarded, then closed
    ("strictest", 400, True),  # Ambiguous and Acceptable are blocked
])  # fmt: skip
def test_modes_for_an_ambiguous_request(mode, status, closed):
    lb = harness(mode)
    try:
        # GET with a body length: UndefinedContentLengthSemantics (Ambiguous)
        answer, was_closed = raw(lb.port, b"GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab", 1.0)
        assert (status_of(answer), was_closed) == (status, closed)
        assert ("/x" in paths(lb)) is (status == 200)
    finally:
        lb.close()


def test_strictest_blocks_acceptable_but_defensive_allows_it(defensive):
    request = b"GET /y HTTP/1.2\r\nHost: a\r\nConnection: close\r\n\r\n"  # NonCompliantVersion
    assert status_of(raw(defensive.port, request)[0]) == 200
    lb = harness("strictest")
    try:
        assert status_of(raw(lb.port, request)[0]) == 400
    finally:
        lb.close()


def test_access_log_records_the_classification(tmp_path):
    lb = Harness(stack(), access_log=tmp_path / "a.log")
    lb.backend("mono-1", "monolith")
    try:
        raw(lb.port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        raw(lb.port, b"GET /z HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab", 1.0)
    finally:
        lb.close()
    lines = (tmp_path / "a.log").read_text().splitlines()
    assert any("400 - " in line and '"Severe" "MultipleContentLength"' in line for line in lines)
    assert any('"Ambiguous" "UndefinedContentLengthSemantics"' in line for line in lines)
