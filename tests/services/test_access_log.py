"""The access log's batched writes: whole lines per write, at most PIPE_BUF; nothing lost on SIGTERM.

The writer is checked on a SOCK_SEQPACKET socket pair, which keeps each write(2) as one
message, so the tests see exactly where the writes fell. The functional test runs a real
`microforum serve` with a flush delay far longer than the test: a line it prints can only
have been written by the shutdown path.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import serving

from helpers import output_of
from microforum.services.accesslog import PIPE_BUF, AccessLog


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.setblocking(False)
    with ours, theirs:
        yield ours, theirs


def _writes(sock: socket.socket) -> list[bytes]:
    """Every write received so far, one message each."""
    found = []
    while True:
        try:
            found.append(sock.recv(1 << 16))
        except BlockingIOError:
            return found


def test_without_an_event_loop_each_line_is_written_at_once(pair: tuple[socket.socket, ...]) -> None:
    ours, theirs = pair
    log = AccessLog(ours.fileno())
    log.write("one\n")
    log.write("two\n")
    assert _writes(theirs) == [b"one\n", b"two\n"]


def test_on_a_loop_lines_wait_for_the_flush_and_go_in_one_write(pair: tuple[socket.socket, ...]) -> None:
    ours, theirs = pair
    log = AccessLog(ours.fileno(), delay=3600)

    async def main() -> list[bytes]:
        for n in range(3):
            log.write(f"line {n}\n")
        assert "pending=3 lines" in repr(log)
        return _writes(theirs)

    assert asyncio.run(main()) == []
    log.flush()
    assert _writes(theirs) == [b"line 0\nline 1\nline 2\n"]
    log.flush()  # nothing pending: no empty write
    assert _writes(theirs) == []


def test_the_timer_writes_what_is_pending(pair: tuple[socket.socket, ...]) -> None:
    ours, theirs = pair
    log = AccessLog(ours.fileno(), delay=0)

    async def main() -> None:
        log.write("a\n")
        log.write("b\n")
        await asyncio.sleep(0)  # one turn: the timer (delay 0) fires
        await asyncio.sleep(0)

    asyncio.run(main())
    assert _writes(theirs) == [b"a\nb\n"]


def test_writes_hold_whole_lines_and_at_most_pipe_buf_bytes(pair: tuple[socket.socket, ...]) -> None:
    ours, theirs = pair
    log = AccessLog(ours.fileno(), delay=3600)
    lines = [f"{n:04d} {'x' * 90}\n" for n in range(200)]  # 96 bytes each, 19 200 in all

    async def main() -> None:
        for line in lines:
            log.write(line)
        log.flush()

    asyncio.run(main())
    writes = _writes(theirs)
    assert b"".join(writes).decode() == "".join(lines)
    assert all(len(w) <= PIPE_BUF and w.endswith(b"\n") for w in writes)
    assert len(writes) == -(-len(lines) // (PIPE_BUF // 96))  # as full as whole lines allow


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_writes_the_last_requests_lines(tmp_path: Path, workers: str) -> None:
    env = {"MICROFORUM_ACCESS_LOG_DELAY": "3600"}  # only shutdown can write these lines
    with serving("users", tmp_path, env, "--workers", workers) as users:
        traces = [users.get("/api/users/2").headers["x-amzn-trace-id"] for _ in range(4)]
        users.process.send_signal(signal.SIGTERM)
        assert users.process.wait(30) == 0
        output = output_of(users.process)
    logged = [json.loads(ln) for ln in output.splitlines() if ln.startswith("{")]
    assert {entry["trace_id"] for entry in logged} >= set(traces), output
