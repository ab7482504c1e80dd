"""The control channel over real loopback HTTP: token, endpoints, errors, the control file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microforum.errors import MicroforumError
from microforum.local.control import (
    MAX_PENDING_CONNECTIONS,
    ControlInfo,
    ControlServer,
    call,
    control_path,
    read_control,
)


async def _handler(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
    if path == "/status":
        return 200, {"method": method, "query": query}
    if path == "/restart":
        raise MicroforumError(f"restart service '{query.get('service')}': no such service")
    return 404, {"error": "nope"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    """A control server on a loop in a background thread, its file in tmp_path."""
    loop = asyncio.new_event_loop()
    control = ControlServer(_handler)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(control.start())
        control.write_file(control_path(tmp_path), "http://127.0.0.1:1")
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(5)
    yield control
    asyncio.run_coroutine_threadsafe(control.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def test_status_round_trip_through_the_control_file(server: ControlServer, tmp_path: Path) -> None:
    info = read_control(tmp_path)
    assert info == ControlInfo(server.url, server.token, os.getpid(), "http://127.0.0.1:1")
    assert stat.S_IMODE(control_path(tmp_path).stat().st_mode) == 0o600
    assert call(info, "GET", "/status?x=1") == {"method": "GET", "query": {"x": "1"}}


def test_wrong_token_is_refused(server: ControlServer, tmp_path: Path) -> None:
    info = read_control(tmp_path)
    forged = ControlInfo(info.url, "guess", info.pid, info.stack_url)
    with pytest.raises(MicroforumError, match="missing or wrong token"):
        call(forged, "GET", "/status")


def test_errors_come_back_as_one_line(server: ControlServer, tmp_path: Path) -> None:
    info = read_control(tmp_path)
    with pytest.raises(MicroforumError, match="restart service 'nope': no such service"):
        call(info, "POST", "/restart?service=nope")


def test_no_control_file_means_no_stack(tmp_path: Path) -> None:
    with pytest.raises(MicroforumError, match="no local stack is running") as info:
        read_control(tmp_path)
    assert info.value.hint is not None and "microforum up" in info.value.hint


def test_a_stale_control_file_says_nothing_answers(tmp_path: Path) -> None:
    control_path(tmp_path).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "token": "t", "pid": 999999, "stack_url": "x"})
    )
    with pytest.raises(MicroforumError, match="nothing answers"):
        call(read_control(tmp_path), "GET", "/status")


def _closed_by_server(sockets: list[socket.socket], at_least: int, timeout: float = 10.0) -> int:
    """How many of `sockets` the server closed (EOF), waiting until `at_least` or `timeout`."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + timeout
    while len(closed) < at_least and time.monotonic() < deadline:
        readable, _, _ = select.select([s for s in sockets if s not in closed], [], [], 0.1)
        for sock in readable:
            with contextlib.suppress(OSError):
                sock.recv(65536)  # EOF, or the 408 answer first and EOF after it
            closed.add(sock)
    return len(closed)


def test_idle_connections_are_capped_and_status_still_answers(server: ControlServer, tmp_path: Path) -> None:
    info = read_control(tmp_path)
    address = ("127.0.0.1", int(info.url.rsplit(":", 1)[1]))
    idle = [socket.create_connection(address) for _ in range(300)]  # connect, never send
    try:
        assert call(info, "GET", "/status") == {"method": "GET", "query": {}}
        # past the cap, the oldest connections still without a request are closed
        assert _closed_by_server(idle, 300 - MAX_PENDING_CONNECTIONS) >= 300 - MAX_PENDING_CONNECTIONS
        assert call(info, "GET", "/status") == {"method": "GET", "query": {}}
    finally:
        for sock in idle:
            sock.close()


def test_a_request_head_not_sent_in_time_gets_408_and_is_closed(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        control = ControlServer(_handler, read_timeout=0.2)
        await control.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", int(control.url.rsplit(":", 1)[1]))
        writer.write(b"GET /status HTTP/1.1\r\n")  # and never the rest
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await control.close()
        return answer

    answer = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request not received in time" in answer
