"""`microforum up` whose output nobody reads (`microforum up | less`, a terminal paused with
Ctrl-S): log lines are dropped and counted, the load balancer and `status` keep answering.

A real `up` runs the built-in monolith with its stdout on a pipe this test never reads; the
stack is found through its control file (its "ready" line is never read either).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from up_helpers import family, microforum

STACK = """
name: unread
services:
  monolith: {desired_count: 1}
listener:
  port: 80
  default_action: {forward: monolith}
  rules: []
"""
REQUESTS = 4000  # each prints a replica log line of ~250 bytes: 1 MB, past the pipe and backlog
CLIENTS = 4


def _wait_for_url(control: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The load balancer's URL once it answers GET / with 200 (read from control.json)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "microforum up exited"
        if control.exists():
            url = json.loads(control.read_text())["stack_url"]
            host, port = url.removeprefix("http://").split(":")
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    return str(url)
            except OSError:
                pass
        time.sleep(0.1)
    raise AssertionError("the stack did not become ready")


def _drive(url: str, count: int, outcomes: list[int | str]) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(count):
        try:
            conn.request("GET", "/api/users/1")
            response = conn.getresponse()
            response.read()
            outcomes.append(response.status)
        except (OSError, http.client.HTTPException) as exc:
            outcomes.append(type(exc).__name__)
            return  # a frozen load balancer: stop here rather than time out 3000 times


@pytest.fixture
def unread_stack(tmp_path: Path):  # type: ignore[no-untyped-def]
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    proc = subprocess.Popen(
        [sys.executable, "-m", "microforum", "up", "--stack", str(stack_file), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    try:
        yield stack_file, proc
    finally:
        if proc.poll() is None:
            pids = family(proc.pid)
            proc.kill()
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_output_nobody_reads_drops_lines_and_never_blocks_the_stack(unread_stack) -> None:  # type: ignore[no-untyped-def]
    stack_file, proc = unread_stack
    url = _wait_for_url(stack_file.parent / ".microforum" / "control.json", proc)
    outcomes: list[int | str] = []
    threads = [threading.Thread(target=_drive, args=(url, REQUESTS // CLIENTS, outcomes))
               for _ in range(CLIENTS)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(outcomes) == REQUESTS and set(outcomes) == {200}, (
        f"{len(outcomes)} answers, {[o for o in outcomes if o != 200][:5]}"
    )

    deadline = time.monotonic() + 20  # the replica's last lines may still be on their way
    while True:
        result = microforum("status", "--json", "--stack", str(stack_file), timeout=20)
        assert result.returncode == 0, result.stderr
        logs = json.loads(result.stdout)["logs"]
        if logs["output"]["dropped"] > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert logs["output"]["dropped"] > 0, logs
    assert logs["access_log"]["dropped"] == 0  # a file: written in time
    text = microforum("status", "--stack", str(stack_file), timeout=20)
    shown = re.search(
        r"^logs  output (\d+) lines dropped  access log (\d+) lines dropped$", text.stdout, re.M
    )
    assert shown is not None, text.stdout
    assert int(shown.group(1)) >= logs["output"]["dropped"] and shown.group(2) == "0"

    proc.send_signal(signal.SIGINT)  # and it still stops, its last lines unwritten
    assert proc.wait(30) == 0
