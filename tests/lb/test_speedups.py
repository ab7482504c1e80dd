"""The C helpers (lb/_speedups.c) give exactly what their Python references give.

The C file is compiled here as the build does it (native.compile_speedups) and loaded from the
temporary directory; each helper is run against its reference (`headers.relayable_py`,
`accesslog.escaped_py`) over tables, every combination of awkward pieces, and seeded random
inputs. Skipped without a C compiler or Python headers (CI has both).
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from microforum.lb import accesslog, headers, lifecycle
from microforum.lb.native import SPEEDUPS, compile_speedups, missing_tool

SOURCE = Path(__file__).resolve().parents[2] / "src" / "microforum" / "lb" / SPEEDUPS

pytestmark = pytest.mark.skipif(
    missing_tool() is not None and not str(missing_tool()).startswith("no mypyc"),
    reason=f"cannot compile: {missing_tool()}",
)


@pytest.fixture(scope="module")
def c(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    work = tmp_path_factory.mktemp("speedups")
    source = work / SPEEDUPS
    shutil.copy(SOURCE, source)
    library = compile_speedups(source)
    spec = importlib.util.spec_from_file_location("microforum.lb._speedups", library)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- relayable ---------------------------------------------------------------------------

NAMES = [
    b"Connection", b"connection", b"CONNECTION", b"Content-Length", b"Content-Type", b"Keep-Alive",
    b"TE", b"Te", b"te", b"Trailer", b"Transfer-Encoding", b"Upgrade", b"Proxy-Connection",
    b"Pragma", b"Conn", b"Con", b"C", b"Tk", b"X-A", b"Date", b"U", b"k", b"Connection ",
    b"Connection\t", b"", b"Cxnnection",
]  # fmt: skip
VALUES = [b"keep-alive", b" Keep-Alive ", b"\tkeep-alive\t", b"close", b"", b"chunked",
          b"keep-alive, te", b"keep-alivex", b"KEEP-ALIVE"]  # fmt: skip
SEPARATORS = [b": ", b":", b" : ", b"\t:", b""]


def test_relayable_agrees_on_every_name_value_and_separator(c: ModuleType) -> None:
    for name, value, separator in itertools.product(NAMES, VALUES, SEPARATORS):
        for head in (
            b"HTTP/1.1 200 OK\r\nDate: x\r\n" + name + separator + value,
            b"HTTP/1.1 200 OK\r\n" + name + separator + value + b"\r\nServer: y",
            b"HTTP/1.1 200 OK\r\n" + name + separator + value + b"\r\n",
        ):
            assert c.relayable(head, headers.HOP_BY_HOP) is headers.relayable_py(head), head


@pytest.mark.parametrize("head", [
    b"", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\rConnection: close", b"HTTP/1.1 200 OK\nConnection: close",
    b"HTTP/1.1 200 OK\r\r\nConnection: close", b"\r\nUpgrade: h2c", b"\r\n\r\nTE: x",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked",
    b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: keep-alive",
    b"HTTP/1.1 200 OK\r\nX: \xff\xfe\r\nCon\xe9ction: close",
])  # fmt: skip
def test_relayable_agrees_on_odd_heads(c: ModuleType, head: bytes) -> None:
    assert c.relayable(head, headers.HOP_BY_HOP) is headers.relayable_py(head)


def test_relayable_agrees_on_random_heads(c: ModuleType) -> None:
    pieces = [b"\r\n", b"\r", b"\n", b":", b" ", b"\t", b"-", b"a", b"C", b"o", b"n", b"e",
              b"c", b"t", b"i", b"keep-alive", b"connection", b"te", b"upgrade", b"Content"]  # fmt: skip
    rng = random.Random(1)
    for _ in range(20_000):
        head = b"HTTP/1.1 200 OK" + b"".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        assert c.relayable(head, headers.HOP_BY_HOP) is headers.relayable_py(head), head


def test_relayable_uses_the_names_it_is_given(c: ModuleType) -> None:
    head = b"HTTP/1.1 200 OK\r\nTrailer: x"
    assert c.relayable(head, headers.HOP_BY_HOP) is False
    assert c.relayable(head, frozenset({b"te"})) is True


@pytest.mark.parametrize("args", [(), (b"x",), ("text", frozenset()), (b"x", [b"te"])])
def test_relayable_refuses_wrong_arguments(c: ModuleType, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        c.relayable(*args)


# --- escaped -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    b"", b"-", b"GET http://h:80/ HTTP/1.1", b'"', b"\\", b'\\"', b'a"b\\c"', b'""""',
    b"Root=1-5759e988-bd862e3fe1be46a994272793", b"\xff\x00\"", b"x" * 5000 + b'"',
    b"\t\r\n\x7f", b"caf\xc3\xa9", b"\xc2\x85\xc2\xa0", b"\xe0\x9f\x80\xe0\xa0\x80",
    b"\xed\x9f\xbf\xed\xa0\x80", b"\xf0\x8f\xbf\xbf\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf\xf4\x90\x80\x80",
    b"\xf5\x80", b"\xc3", b"\xe2\x82", b"\x80", b"\xc1\xbf", b"x" * 5000 + b"\x00",
])  # fmt: skip
def test_escaped_agrees(c: ModuleType, text: bytes) -> None:
    assert c.escaped(text) == accesslog.escaped_py(text)


# Pieces of UTF-8 (whole and cut short), controls and specials, glued at random (long enough
# for the eight-bytes-at-a-time scan to meet each of them anywhere in a word).
PIECES = [b"a", b" ", b'"', b"\\", b"\x00", b"\x1f", b"\x7f", b"\xff", b"\x80", b"\xc2", b"\x85",
          b"\xc3\xa9", b"\xe2\x82\xac", b"\xe2\x82", b"\xed\xa0", b"\xf0\x9f\x98\x80", b"\xf0\x9f",
          b"\xf4\x90"]  # fmt: skip


def test_escaped_agrees_on_random_text(c: ModuleType) -> None:
    rng = random.Random(2)
    for _ in range(20_000):
        text = b"".join(rng.choice(PIECES) for _ in range(rng.randrange(12)))
        text = b"abcdefgh"[: rng.randrange(9)] + text if rng.random() < 0.5 else text
        assert c.escaped(text) == accesslog.escaped_py(text), text


def test_escaped_returns_clean_text_itself(c: ModuleType) -> None:
    text = b"Mozilla/5.0 (X11; Linux x86_64)"
    assert c.escaped(text) is text


def test_escaped_refuses_str(c: ModuleType) -> None:
    with pytest.raises(TypeError):
        c.escaped("text")


# --- head_of and forward_raw -------------------------------------------------------------

CHUNKS = [
    b"", b"\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nok",
    b"a\r\n\r", b"a\n\n\r\n\r\n", b"\r\r\n\n\r\n\r\n", b"x" * 70000 + b"\r\n\r\n" + b"y",
]  # fmt: skip


@pytest.mark.parametrize("chunk", CHUNKS)
def test_head_of_and_forward_raw_agree(c: ModuleType, chunk: bytes) -> None:
    assert c.head_of(chunk) == headers.head_of_py(chunk)
    forwarded = b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Port: 80\r\n"
    trace = b"Root=1-5759e988-bd862e3fe1be46a994272793"
    assert c.forward_raw(chunk, forwarded, trace) == headers.forward_raw_py(chunk, forwarded, trace)


def test_head_of_and_forward_raw_agree_on_random_bytes(c: ModuleType) -> None:
    rng, pieces = random.Random(3), [b"\r", b"\n", b"a", b"\r\n", b"\r\n\r\n"]
    for _ in range(20_000):
        chunk = b"".join(rng.choice(pieces) for _ in range(rng.randrange(10)))
        assert c.head_of(chunk) == headers.head_of_py(chunk), chunk
        assert c.forward_raw(chunk, b"F\r\n", b"T") == headers.forward_raw_py(chunk, b"F\r\n", b"T"), chunk


@pytest.mark.parametrize("args", [(b"x", b"y"), ("x", b"y", b"z"), (b"x", b"y", None)])
def test_forward_raw_refuses_wrong_arguments(c: ModuleType, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        c.forward_raw(*args)


@pytest.mark.parametrize("data", ["text", None, bytearray(b"a\r\n\r\n")])
def test_head_of_refuses_anything_but_bytes(c: ModuleType, data: object) -> None:
    with pytest.raises(TypeError):
        c.head_of(data)


# --- split_plain -------------------------------------------------------------------------

HEADS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nX:  \t v \t\r\nY:\r\nZ:a:b\r\n\r\n",
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",  # three spaces: not plain
    b"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET / HTTP/1.1\r\nHost: a\nb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
    b"GET /\t HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",  # incomplete
    b" / HTTP/1.1\r\n\r\n",
    b"GET / \r\n\r\n",
]


@pytest.mark.parametrize("data", HEADS)
def test_split_plain_agrees_with_its_reference_and_the_general_reader(c: ModuleType, data: bytes) -> None:
    from microforum.lb.reader import split_head, split_plain_py

    found = c.split_plain(data)
    assert found == split_plain_py(data)
    if found is not None:  # what the general reader makes of the same head
        raw, method, target, version, fields, _after = found
        head = split_head(raw)
        assert head.plain and (head.method, head.target, head.version, head.headers) == (
            method, target, version, fields,
        )  # fmt: skip


def test_split_plain_agrees_on_random_heads(c: ModuleType) -> None:
    from microforum.lb.reader import split_plain_py

    rng = random.Random(14)
    pieces = [b"GET", b" ", b"/", b"HTTP/1.1", b"\r\n", b"\r", b"\n", b":", b"\t", b"a", b"\x00", b"\xff"]
    for _ in range(3000):
        data = b"GET / HTTP/1.1\r\n" + b"".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        data += b"\r\n\r\n"
        assert c.split_plain(data) == split_plain_py(data), data


# --- compose -----------------------------------------------------------------------------

TIMES = [-1.0, 0.0, 0.0004, 0.0123, 0.9994, 0.9999999, 1.0, 1.0005, 12.3456, 86400.25, 1e7]
COUNTS = [0, 1, 4095, 4096, 123_456, 10**12, -7, 2**63 - 1, -(2**63)]
STAMPS = [1_700_000_000.0, 1_700_000_000.25, 1_700_000_000.999999, 1_700_000_001.5, 1_764_900_000.000001]
RUNS = [b"", b"Z app/s/local 10.0.0.1:5000 127.0.0.1:4000 ", b"200 200 ", b'" "curl/8" - - arn:tg "']
CLIENT = [b"", b"GET http://h:80/p?q HTTP/1.1", b'ag"ent\\\xff', b"Root=1-5759e988-bd862e3fe1be46a994272793"]


def compose_args(rng: random.Random, clock: accesslog.Clock) -> tuple[object, ...]:
    return (clock, rng.choice(RUNS), rng.choice(TIMES), rng.choice(TIMES), rng.choice(TIMES),
            rng.choice(RUNS), rng.choice(COUNTS), rng.choice(COUNTS), rng.choice(CLIENT),
            rng.choice(RUNS), rng.choice(CLIENT), rng.choice(RUNS), rng.choice(STAMPS),
            rng.choice(STAMPS), rng.choice(RUNS) + b"\n")  # fmt: skip


def test_compose_agrees_on_random_fields(c: ModuleType) -> None:
    rng = random.Random(3)
    clock_c, clock_py = accesslog.Clock(), accesslog.Clock()  # each side's cache, hit and missed
    for _ in range(5_000):
        seed = rng.random()
        line = c.compose(*compose_args(random.Random(seed), clock_c))
        assert line == accesslog.compose_py(*compose_args(random.Random(seed), clock_py))


def test_compose_refuses_wrong_arguments(c: ModuleType) -> None:
    args = list(compose_args(random.Random(1), accesslog.Clock()))
    for at, wrong in ((1, "text"), (6, 1.5), (8, None), (14, "tail")):
        with pytest.raises(TypeError):
            c.compose(*args[:at], wrong, *args[at + 1 :])
    with pytest.raises(TypeError):
        c.compose(*args[:-1])


def test_the_installed_package_has_the_c_helpers() -> None:
    # setup.py builds them at install time where a C compiler is (as here): the interpreted
    # load balancer uses them too. (A fresh interpreter: this module's fixture loads its own.)
    names = ("split_plain", "relayable", "head_of", "forward_raw", "escaped", "compose", "step")
    check = f"from microforum.lb import speedups; print([n for n in {names!r} if not speedups.helper(n)])"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- step --------------------------------------------------------------------------------


def test_step_agrees_on_every_phase_and_event(c: ModuleType) -> None:
    for table, reference, illegal, phases in (
        (lifecycle._REQUEST, lifecycle.request_step_py, lifecycle._illegal_request, lifecycle.REQUEST_PHASES),
        (
            lifecycle._RESPONSE,
            lifecycle.response_step_py,
            lifecycle._illegal_response,
            lifecycle.RESPONSE_PHASES,
        ),
    ):
        step = functools.partial(c.step, table, len(lifecycle.EVENTS), illegal)
        for phase, event in itertools.product(range(len(phases)), range(len(lifecycle.EVENTS))):
            try:
                expected: object = reference(phase, event)
            except lifecycle.IllegalTransition as exc:
                with pytest.raises(lifecycle.IllegalTransition, match=str(exc)):
                    step(phase, event)
            else:
                assert step(phase, event) == expected


def test_step_refuses_wrong_arguments(c: ModuleType) -> None:
    with pytest.raises(TypeError):
        c.step((1, 2), 1, print, 0, 0)
    with pytest.raises(TypeError):
        c.step([1], 1, print, 0)


# --- whole_response ----------------------------------------------------------------------

MAX = 32 * 1024
ANSWERS = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200),
    (b"HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n", 404),
    (b"HTTP/1.1 503 \r\nX-A: \t b \t\r\nCONTENT-LENGTH: \t 02 \t\r\nConnection: Keep-Alive\r\n\r\nok", 503),
    (b"HTTP/1.1 299 x\r\nX!#$%&'*+-.^_`|~9: v\r\nContent-Length: 1\r\nY:\r\n\r\n!", 299),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokX", 0),  # a byte beyond the answer
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no", 0),  # the answer goes on
    (b"HTTP/1.1 200 OK\r\n\r\nok", 0),  # delimited by the close
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 0),
    (b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", 0),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2 2\r\n\r\nok", 0),
    (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", 0),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nok", 0),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0),
    (b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok", 0),
    (b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 600 x\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0),  # no space after the status
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0),
    (b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200 \xe9\r\nContent-Length: 0\r\n\r\n", 0),  # obs-text
    (b"HTTP/1.1 200 OK\r\nX: \x7f\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", 0),  # obs-fold
    (b"HTTP/1.1 200 OK\r\nX: a\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\r\nX: a\rContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", 0),
    (b"HTTP/1.1 200 OK\r\nX\x00: a\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n", 0),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 0),  # no blank line yet
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX + b"\r\nContent-Length: 0\r\n\r\n", 0),  # head too large
    (b"", 0),
    (b"HTTP/1.1 2", 0),
]


@pytest.mark.parametrize(("data", "status"), ANSWERS)
def test_whole_response_agrees_with_its_reference(c: ModuleType, data: bytes, status: int) -> None:
    assert headers.whole_response_py(data, headers.HOP_BY_HOP, MAX) == status
    assert c.whole_response(data, headers.HOP_BY_HOP, MAX) == status


def test_whole_response_holds_the_head_limit_to_the_byte(c: ModuleType) -> None:
    for size in (MAX - 1, MAX, MAX + 1):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: "
        data = head + b"a" * (size - len(head)) + b"\r\n\r\n"
        expected = 200 if size <= MAX else 0
        assert headers.whole_response_py(data, headers.HOP_BY_HOP, MAX) == expected
        assert c.whole_response(data, headers.HOP_BY_HOP, MAX) == expected


def test_whole_response_agrees_on_random_answers(c: ModuleType) -> None:
    pieces = [b"\r\n", b"\r", b"\n", b":", b" ", b"\t", b"a", b"0", b"2", b"\x00", b"\xff", b"\x7f",
              b"Content-Length: 2\r\n", b"content-length:0\r\n", b"Connection: keep-alive\r\n",
              b"TE: x\r\n", b"X-Y: z\r\n", b"\r\n\r\nok", b"ok"]  # fmt: skip
    rng = random.Random(13)
    for _ in range(20_000):
        data = b"HTTP/1.1 200 OK\r\n" + b"".join(rng.choice(pieces) for _ in range(rng.randrange(10)))
        assert c.whole_response(data, headers.HOP_BY_HOP, MAX) == headers.whole_response_py(
            data, headers.HOP_BY_HOP, MAX
        ), data


@pytest.mark.parametrize("args", [(), (b"x", headers.HOP_BY_HOP), ("x", headers.HOP_BY_HOP, 1),
                                  (b"x", [b"te"], 1), (b"x", headers.HOP_BY_HOP, "1")])  # fmt: skip
def test_whole_response_refuses_wrong_arguments(c: ModuleType, args: tuple[object, ...]) -> None:
    with pytest.raises(TypeError):
        c.whole_response(*args)
