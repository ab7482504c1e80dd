"""The exchange without sockets: transcripts of bytes in and out of a client connection and a
keep-alive target connection (tests/lb/fakes.py), through a real LoadBalancer in memory."""

from __future__ import annotations

import asyncio

import pytest
from fakes import Rig

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def rig(tmp_path):
    loop = asyncio.new_event_loop()  # (spawned tasks need one; nothing here waits on it)
    asyncio.set_event_loop(loop)
    rig = Rig(tmp_path)
    yield rig
    rig.lb.ctx.log.close()
    asyncio.set_event_loop(None)
    loop.close()


def forwarded_head(rig: Rig) -> list[bytes]:
    """The lines of the head the target received (our X-Forwarded-* and trace id included)."""
    return rig.target.data().split(b"\r\n\r\n")[0].split(b"\r\n")


def test_a_get_is_forwarded_with_albs_fields_and_its_answer_relayed(rig):
    rig.client_sends(b"GET /a?b=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    lines = forwarded_head(rig)
    assert lines[:2] == [b"GET /a?b=1 HTTP/1.1", b"Host: h"]
    assert lines[2:5] == [
        b"X-Forwarded-For: 127.0.0.1",
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Port: 8080",
    ]
    assert lines[5].startswith(b"X-Amzn-Trace-Id: Root=1-")
    assert rig.peer.data() == b""  # nothing before the target answers
    rig.target_sends(OK)
    assert rig.peer.data() == OK  # relayed as received: nothing in it to rewrite
    assert rig.client.queue == [] and not rig.pool.busy  # the target connection back in the pool


def test_pipelined_requests_are_answered_in_order_one_at_a_time(rig):
    rig.client_sends(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert forwarded_head(rig)[0] == b"GET /1 HTTP/1.1"
    assert "pause" in rig.peer.events  # reading stops while the second waits
    rig.target_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert forwarded_head(rig)[0] == b"GET /2 HTTP/1.1"  # only now: no pipelining to targets
    rig.target_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
    assert rig.peer.data().count(b"HTTP/1.1 200 OK") == 2 and "resume" in rig.peer.events


def test_expect_100_continue_is_answered_by_the_load_balancer(rig):
    rig.client_sends(b"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert rig.peer.data() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not any(line.lower().startswith(b"expect") for line in forwarded_head(rig))
    rig.client_sends(b"abc")
    assert rig.target.data() == b"abc"


def test_a_head_answer_has_no_body(rig):
    rig.client_sends(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    rig.target.data()
    rig.target_sends(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
    assert rig.peer.data().endswith(b"Content-Length: 5\r\n\r\n")
    rig.client_sends(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")  # the connection goes on
    assert forwarded_head(rig)[0] == b"GET /next HTTP/1.1"


def test_a_chunked_body_is_relayed_rechunked_and_its_trailers_dropped(rig):
    rig.client_sends(b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    rig.client_sends(b"3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n")
    sent = rig.target.data()
    assert sent.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n") and b"X-Trailer" not in sent


def test_a_client_closing_mid_body_cuts_the_target_connection_and_logs_400(rig):
    rig.client_sends(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    rig.client.eof_received()
    assert "abort" in rig.target.events
    (line,) = rig.access_log()
    assert line.split(" ")[8:10] == ["400", "-"]


def test_a_severe_request_is_refused_and_nothing_reaches_the_target(rig):
    rig.client_sends(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert rig.target.data() == b""
    answer = rig.peer.data()
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer
    assert rig.access_log()[0].endswith(f'"Severe" "MultipleContentLength" {rig.client.conn_trace}')


def test_a_repeated_head_is_decided_once_and_forwarded_afresh(rig):
    # decide() is pure: a head repeated byte for byte on the connection reuses its decision;
    # each request still gets its own trace id, target bytes and log line.
    get = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    decisions, heads = [], []
    for data in (get, get, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"):
        rig.client_sends(data)
        decisions.append(rig.client.queue[0].d)
        heads.append(forwarded_head(rig))
        rig.target_sends(OK)
        assert rig.peer.data() == OK
    assert decisions[0] is decisions[1] and decisions[2] is not decisions[1]
    assert heads[0][:5] == heads[1][:5] and heads[0][5] != heads[1][5]  # a new trace id
    assert heads[2][0] == b"GET /b HTTP/1.1"
    assert [line.split(" ")[12] for line in rig.access_log()] == ['"GET', '"GET', '"GET']
    assert [line.split(" ")[13] for line in rig.access_log()] == [
        "http://h:8080/a", "http://h:8080/a", "http://h:8080/b",
    ]  # fmt: skip
