"""Helpers for the local-stack functional tests: `microforum up` as a real subprocess.

`UpProcess` starts `python -m microforum up --stack FILE --port 0`, collects its output lines in
a background thread, and finds the processes it started through /proc (no psutil): the
descendants of `up`, and every member of their process groups. `Load` is a steady client
(keep-alive, reconnecting) that records each request's outcome with a timestamp.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"ready at (http://127\.0\.0\.1:(\d+))")
STANDIN = Path(__file__).with_name("standin.py")


def microforum(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m microforum ARGS` to completion; its result (text)."""
    return subprocess.run(
        [sys.executable, "-m", "microforum", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )  # fmt: skip


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) for every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[-1].split()
                if fields[0] != "Z":  # a zombie is already dead
                    table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def family(root: int) -> set[int]:
    """`root`'s descendants, plus every process in one of their process groups."""
    table = _proc_table()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    groups = {table[pid][1] for pid in found if pid in table}
    return found | {pid for pid, (_, pgid) in table.items() if pgid in groups and pid != root}


def alive(pids: set[int]) -> set[int]:
    """The pids of `pids` still running (zombies count as gone)."""
    table = _proc_table()
    return {pid for pid in pids if pid in table}


class UpProcess:
    """A running `microforum up`; `stop()` it (SIGINT) or it is killed at `close()`."""

    def __init__(self, stack_file: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "microforum", "up", "--stack", str(stack_file), "--port", "0",
             *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=stack_file.parent,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first output line matching `pattern`, waiting up to `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := regex.search(line):
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.output}")

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Wait for the "ready at URL" line; the load balancer's URL."""
        self.url = self.wait_for(READY.pattern, timeout).group(1)
        return self.url

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send `signum`; the exit code once `up` has exited."""
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        """Kill `up` and everything it started (after a failed test)."""
        if self.proc.poll() is None:
            pids = family(self.proc.pid)
            self.proc.kill()
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)


@contextlib.contextmanager
def up(stack_file: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[UpProcess]:
    """`microforum up` for the duration of the block (always cleaned up)."""
    process = UpProcess(stack_file, *args, env=env)
    try:
        yield process
    finally:
        process.close()


@dataclass
class Load:
    """Steady GET requests on keep-alive connections from `clients` threads."""

    url: str
    path: str
    clients: int = 2
    results: list[tuple[float, int | str, bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
                outcome: int | str = response.status
            except (OSError, http.client.HTTPException) as exc:
                outcome, body = type(exc).__name__, b""
                conn.close()
            self.results.append((time.monotonic(), outcome, body))

    def failures(self, since: float = 0.0) -> list[tuple[float, int | str]]:
        """(time, outcome) of the requests after `since` that did not get a 200."""
        return [(t, o) for t, o, _ in list(self.results) if t >= since and o != 200]

    def count(self, since: float = 0.0) -> int:
        """How many requests completed after `since`."""
        return sum(1 for t, _, _ in list(self.results) if t >= since)

    def bodies(self, since: float = 0.0) -> set[bytes]:
        """The distinct bodies of the 200 answers after `since`."""
        return {b for t, o, b in list(self.results) if t >= since and o == 200}


def status(stack_file: Path) -> dict:  # type: ignore[type-arg]
    """`microforum status --json` of the running stack."""
    result = microforum("status", "--json", "--stack", str(stack_file))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def kill_replica_under_load(
    stack: UpProcess,
    stack_file: Path,
    victim: dict,
    group: str,
    healthy: int,  # type: ignore[type-arg]
) -> tuple[float, float, list[dict]]:  # type: ignore[type-arg]
    """SIGKILL `victim` while a `Load` runs; wait until `group` has `healthy` healthy targets
    again. Returns when it was killed, when it settled, and the group's targets then."""
    time.sleep(0.3)
    killed_at = time.monotonic()
    os.kill(victim["pid"], signal.SIGKILL)
    stack.wait_for(rf"replica {victim['id']} was killed by signal 9")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        targets = status(stack_file)["target_groups"][group]["targets"]
        if len(targets) == healthy and all(t["state"] == "healthy" for t in targets):
            break
        time.sleep(0.1)
    settled_at = time.monotonic()
    time.sleep(0.5)
    return killed_at, settled_at, targets
