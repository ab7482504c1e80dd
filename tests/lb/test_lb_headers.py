"""Header rewriting: X-Forwarded-For, trace ids, hop-by-hop removal; access-log lines; figures."""

from __future__ import annotations

import re

import pytest

from microforum.lb import accesslog, headers
from microforum.lb.metrics import Metrics, percentile
from microforum.lb.responses import error_body

NEW = "1-5759e988-bd862e3fe1be46a994272793"


@pytest.mark.parametrize(("incoming", "expected"), [
    (None, f"Root={NEW}"),
    ("Root=1-67891233-abcdef012345678912345678", f"Self={NEW};Root=1-67891233-abcdef012345678912345678"),
    ("Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app",
     f"Self={NEW};Root=1-67891233-abcdef012345678912345678;CalledFrom=app"),
    ("CalledFrom=app", f"Root={NEW};CalledFrom=app"),  # ⚠ neither Root nor Self
])  # fmt: skip
def test_trace_id_rules(incoming, expected):
    assert headers.trace_id(incoming, NEW) == expected


def test_trace_id_over_7kb_of_headers_keeps_only_root():
    value = "Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;A=b"
    assert headers.trace_id(value, NEW, headers_size=8 * 1024) == "Root=1-67891233-abcdef012345678912345678"
    assert headers.trace_id("A=b", NEW, headers_size=8 * 1024) == f"Root={NEW}"


def test_trace_ids_are_fresh_x_ray_ids_with_the_current_second():
    made = []

    def random_bytes(n: int) -> bytes:
        made.append(n)
        return bytes((i * 7 + len(made)) % 256 for i in range(n))

    source = headers.TraceIds(random_bytes)
    # (BATCH read on the instance: compiled, the class attribute is a descriptor)
    ids = [source.new(0x5759E988).decode() for _ in range(source.BATCH + 1)]
    ids.append(source.new(0x5759E989).decode())
    assert all(headers.is_trace_id(i) for i in ids)
    assert ids[0].startswith("1-5759e988-") and ids[-1].startswith("1-5759e989-")
    assert len(made) == 2 and len(set(ids)) == len(ids)  # one draw per batch, no repeats
    roots = [source.root(0x5759E98A).decode() for _ in range(3)]
    assert all(r.startswith("Root=1-5759e98a-") and headers.is_trace_id(r[5:]) for r in roots)
    assert len({*ids, *(r[5:] for r in roots)}) == len(ids) + 3
    real = headers.TraceIds()
    assert len({real.new(1) for _ in range(1000)}) == 1000


def test_new_trace_id_shape():
    trace = headers.new_trace_id(0x5759E988, (1 << 96) - 1)
    assert trace == "1-5759e988-" + "f" * 24 and headers.is_trace_id(trace)
    assert headers.is_trace_id(headers.new_trace_id(1, 5))


@pytest.mark.parametrize(("incoming", "value", "count"), [
    ([], "10.0.0.9", 1),
    ([b"127.0.0.4"], "127.0.0.4, 10.0.0.9", 2),
    ([b"127.0.0.4, 127.0.0.8"], "127.0.0.4, 127.0.0.8, 10.0.0.9", 3),
    ([b"1.1.1.1", b"2.2.2.2"], "1.1.1.1, 2.2.2.2, 10.0.0.9", 3),
])  # fmt: skip
def test_forwarded_for_appends(incoming, value, count):
    assert headers.forwarded_for(incoming, "10.0.0.9") == (value, count)


def test_request_head_drops_hop_by_hop_and_invalid_names():
    kept = headers.request_head(
        b"GET / HTTP/1.1\r\n",
        [(b"Host", b"a"), (b"Connection", b"close, X-Private"), (b"X-Private", b"1"),
         (b"Keep-Alive", b"5"), (b"TE", b"trailers"), (b"Upgrade", b"h2c"), (b"Expect", b"100-continue"),
         (b"X-Forwarded-Proto", b"https"), (b"Bad_Name", b"1"), (b"Accept", b"*/*")],
        b"X-Forwarded-For: 1.2.3.4\r\n\r\n",
        drop_invalid=True,
        also_drop=headers.connection_tokens([b"close, X-Private"]),
    )  # fmt: skip
    assert kept == b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"


def test_response_head_drops_hop_by_hop():
    head = headers.response_head(
        b"HTTP/1.1 200 OK\r\n",
        [(b"Connection", b"X-A"), (b"X-A", b"1"), (b"Transfer-Encoding", b"chunked"), (b"Server", b"s")],
        b"Transfer-Encoding: chunked\r\n\r\n",
    )
    assert head == b"HTTP/1.1 200 OK\r\nServer: s\r\nTransfer-Encoding: chunked\r\n\r\n"


FIELDS = ("elb", "client", "target", "request_time", "target_time", "response_time", "elb_status",
          "target_status", "received", "sent", "request", "user_agent", "target_group", "trace",
          "priority", "created", "sent_at", "action", "redirect_url", "error_reason",
          "classification", "classification_reason", "conn_trace")  # fmt: skip


def record(*values: object) -> accesslog.LogRecord:
    return accesslog.LogRecord(**dict(zip(FIELDS, values, strict=True)))  # type: ignore[arg-type]


def test_access_log_line_has_albs_fields_in_order():
    clock = accesslog.Clock()
    text = accesslog.line(clock, record(
        "app/s/local", "10.0.0.1:5000", "127.0.0.1:4000", 0.0004, 0.0123, 0.00005, 200, b"200",
        120, 340, b"GET http://h:80/p?q HTTP/1.1", b'curl/8 "x"', "arn:tg", f"Root={NEW}".encode(),
        "3", 1_700_000_000.25, 1_700_000_000.5, "forward", "-", "-", "Ambiguous", "BothTeClPresent",
        "TID_1",
    )).decode()  # fmt: skip
    fields = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', text)
    assert fields[:5] == ["http", "2023-11-14T22:13:20.500000Z", "app/s/local", "10.0.0.1:5000",
                          "127.0.0.1:4000"]  # fmt: skip
    assert fields[5:12] == ["0.000", "0.012", "0.000", "200", "200", "120", "340"]
    assert fields[12:14] == ['"GET http://h:80/p?q HTTP/1.1"', '"curl/8 \\x22x\\x22"']
    assert fields[16:22] == ["arn:tg", f'"Root={NEW}"', '"-"', '"-"', "3", "2023-11-14T22:13:20.250000Z"]
    assert fields[22:] == ['"forward"', '"-"', '"-"', '"127.0.0.1:4000"', '"200"', '"Ambiguous"',
                           '"BothTeClPresent"', "TID_1"]  # fmt: skip
    assert text.endswith("\n") and len(fields) == 30


def test_a_connections_line_cache_writes_what_line_writes():
    clock, cache, keyed_cache = accesslog.Clock(), accesslog.LineCache(), accesslog.LineCache()
    base = ["app/s/local", "10.0.0.1:5000", "127.0.0.1:4000", 0.0004, 0.0123, 0.00005, 200, b"200",
            120, 340, b"GET http://h:80/p?q HTTP/1.1", b"curl/8", "arn:tg", f"Root={NEW}".encode(),
            "3", 1_700_000_000.25, 1_700_000_000.5, "forward", "-", "-", "Compliant", "-",
            "TID_1"]  # fmt: skip
    changes = [  # one request after another on the connection, each changing some fields
        {}, {}, {2: "127.0.0.1:4001"}, {6: 502, 7: b"-", 20: "Ambiguous", 21: "BothTeClPresent"},
        {11: b'ag"ent'}, {14: "1"}, {15: 1_700_000_001.75}, {17: "redirect", 18: "https://h:443/p"},
        {19: "TargetTimeout"}, {1: "10.0.0.2:6000", 22: "TID_2"}, {12: "arn:tg2"},
        {3: 1.5, 4: -1.0, 5: 0.0}, {8: 5000, 9: 0}, {},
    ]  # fmt: skip
    keyed = [FIELDS.index(name) for name in accesslog.KEYED]
    key, previous = object(), base
    for change in changes:
        args = [change.get(i, v) for i, v in enumerate(base)]
        assert cache.line(clock, record(*args)) == accesslog.line(clock, record(*args))
        # Keyed as the load balancer keys them: a new key when a field the request brings
        # differs from the previous line's, the same key otherwise.
        if any(args[i] != previous[i] for i in keyed):
            key = object()
        previous = args
        keyed_record = record(*args)
        keyed_record.key = key
        assert keyed_cache.line(clock, keyed_record) == accesslog.line(clock, record(*args))


def test_metrics_snapshot_and_percentiles():
    metrics = Metrics()
    for i in range(1, 101):
        metrics.target_response(200 if i <= 90 else 503, i / 1000)
    metrics.elb_response(502)
    metrics.elb_response(460)
    snap = metrics.snapshot()
    assert snap["RequestCount"] == 102
    assert (snap["HTTPCode_Target_2XX_Count"], snap["HTTPCode_Target_5XX_Count"]) == (90, 10)
    assert (snap["HTTPCode_ELB_5XX_Count"], snap["HTTPCode_ELB_4XX_Count"]) == (1, 1)
    assert (snap["TargetResponseTime_p50"], snap["TargetResponseTime_p99"]) == (0.05, 0.099)
    assert percentile([], 50) is None


@pytest.mark.parametrize(("status", "counted"), [
    (200, "2XX"), (299, "2XX"), (302, "3XX"), (404, "4XX"), (499, "4XX"), (500, "5XX"),
    (599, "5XX"), (600, "5XX"), (99, "5XX"), (101, None),
])  # fmt: skip
def test_metrics_count_each_target_status_in_its_class(status, counted):
    metrics = Metrics()
    metrics.target_response(status, 0.001)
    snap = metrics.snapshot()
    classes = {c: snap[f"HTTPCode_Target_{c}_Count"] for c in ("2XX", "3XX", "4XX", "5XX")}
    assert classes == {c: int(c == counted) for c in classes}
    assert snap["RequestCount"] == 1


def test_error_pages_look_like_albs():
    assert error_body(502) == (
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
    )


@pytest.mark.parametrize(("lines", "relayable"), [
    ([b"Content-Type: text/plain", b"Content-Length: 2"], True),
    ([b"Connection: keep-alive", b"Content-Length: 2"], True),
    ([b"connection:KEEP-ALIVE \t"], True),
    ([b"Connection: close"], False),
    ([b"CONNECTION: keep-alive, x-a"], False),
    ([b"Keep-Alive: timeout=5"], False),
    ([b"Transfer-Encoding: chunked"], False),
    ([b"te: trailers"], False),
    ([b"Trailer: X"], False),
    ([b"Upgrade: h2c"], False),
    ([b"Proxy-Connection: close"], False),
    ([b"Timing-Allow-Origin: *", b"Pragma: no-cache", b"Cache-Control: x", b"Cookie2: a"], True),
    ([b"Connection-Id: 7", b"Tea: earl grey", b"Upgraded: no", b"Keep-Alives: 0"], True),
    ([b"X-Note: Connection: close", b"X-B: \r"], True),
    ([b"Con"], True),
    ([b""], True),
])  # fmt: skip
def test_relayable_response_heads(lines, relayable):
    head = b"\r\n".join([b"HTTP/1.1 200 OK", *lines])
    assert headers.relayable(head) is relayable


def test_relayable_agrees_with_the_hop_by_hop_expression():
    names = [b"Connection", b"connection", b"Content-Length", b"Keep-Alive", b"TE", b"Te",
             b"Trailer", b"Transfer-Encoding", b"Upgrade", b"Proxy-Connection", b"Pragma",
             b"Conn", b"Tk", b"X-A", b"Date", b"U"]  # fmt: skip
    values = [b"keep-alive", b" Keep-Alive ", b"close", b"", b"chunked", b"keep-alive, te"]
    for name in names:
        for value in values:
            for separator in (b": ", b":", b" : "):
                head = b"HTTP/1.1 200 OK\r\nDate: x\r\n" + name + separator + value
                expected = headers.hop_field(head.lower()) is None
                assert headers.relayable_py(head) is expected, head  # the reference, line by line
                assert headers.relayable(head) is expected, head  # what runs (C, or the expression)


def test_relayable_catches_every_hop_by_hop_name_it_knows():
    # relayable tests first letters before names: a name added to the set must still be caught.
    for name in headers.HOP_BY_HOP:
        for spelled in (name, name.upper(), name.title()):
            head = b"HTTP/1.1 200 OK\r\nDate: x\r\n" + spelled + b": close"
            assert headers.relayable(head) is False, spelled


def test_every_hop_by_hop_rule_comes_from_the_one_set():
    from microforum.lb import decide

    for name in headers.HOP_BY_HOP:
        assert decide._KIND[name] != decide._PLAIN  # never forwarded as received
        assert headers.hop_field(b"HTTP/1.1 200 OK\r\n" + name + b": x") is not None
        assert not headers.relayable_py(b"HTTP/1.1 200 OK\r\n" + name.title() + b": x")
