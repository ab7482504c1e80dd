"""The services' server process: drain on SIGTERM, and `--workers N` supervision."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from service_helpers import connect, get, serving

from helpers import output_of
from microforum.services import server
from microforum.services.settings import Settings

WAIT = 20.0  # seconds a condition may take before the test fails (never reached when it passes)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {WAIT} s: {what}")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the listener closed with this connection still in its backlog.
        return True
    return False


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return {int(p) for p in fh.read().split()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_completes_the_request_in_flight_then_exits_0(tmp_path: Path) -> None:
    with serving("users", tmp_path) as users:
        wire = connect(users.port)
        body = json.dumps({"username": "last", "name": "L"}).encode()
        wire.send(get("/api/users", "Content-Type: application/json", "Expect: 100-continue",
                      f"Content-Length: {len(body)}", method="POST"))  # fmt: skip
        assert wire.answer().status == 100  # in flight: its handler waits for the body
        users.process.send_signal(signal.SIGTERM)
        _until(lambda: _refused(users.port), "the server stops accepting")
        assert users.process.poll() is None, "exited with a request in flight"
        wire.send(body)
        reply = wire.answer()
        assert (reply.status, reply.json["username"]) == (201, "last"), output_of(users.process)
        assert reply.headers["connection"] == "close"
        assert wire.closed()
        assert users.process.wait(WAIT) == 0, output_of(users.process)


def test_workers_replaced_when_killed_and_all_stop_on_sigterm(tmp_path: Path) -> None:
    with serving("users", tmp_path, {}, "--workers", "2") as users:
        supervisor = users.process.pid
        _until(lambda: len(_children(supervisor)) == 2, "two workers")
        workers = _children(supervisor)
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        _until(lambda: len(_children(supervisor) - workers) == 1, "a worker replaces the killed one")
        assert killed not in _children(supervisor)
        for n in range(20):  # answered throughout, by either worker
            wire = connect(users.port)
            wire.send(get(f"/api/users/{n % 3 + 1}"))
            assert wire.answer().status == 200, output_of(users.process)
        now = _children(supervisor)
        users.process.send_signal(signal.SIGTERM)
        assert users.process.wait(WAIT) == 0, output_of(users.process)
        _until(lambda: not any(_alive(pid) for pid in now), "every worker exits")
        assert f"worker {killed} exited with -9; starting another" in output_of(users.process)


def test_a_worker_lets_database_threads_have_the_interpreter_lock_sooner(monkeypatch) -> None:
    """`run_worker` sets the switch interval before anything else (docs/store.md, "The
    interpreter's lock"): a database thread waits at most that long for the lock."""

    class Stop(Exception):
        pass

    def stop(*_args: object) -> None:
        raise Stop

    before = sys.getswitchinterval()
    monkeypatch.setattr(server, "open_databases", stop)
    try:
        with socket.socket() as sock, pytest.raises(Stop):
            server.run_worker(Settings("users"), sock)
        assert sys.getswitchinterval() == server.SWITCH_INTERVAL < before
    finally:
        sys.setswitchinterval(before)
