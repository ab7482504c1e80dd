"""Starting, pinning, polling and stopping the processes under test (thin I/O shell)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import procfs


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """`argv` under `taskset -c cpus` (children inherit the affinity), or as is."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


def repin(pid: int, cpus: str) -> None:
    """Move every thread of a running process to `cpus`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


class Proc:
    """One started process (own session, so its whole group is stopped with it)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.name = name
        self.log = log
        self._out = log.open("ab")
        self.popen = subprocess.Popen(
            pinned(argv, cpus),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.started = time.monotonic()
        self._stop_pids: list[int] | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """This process and its descendants now."""
        return procfs.descendants(self.pid)

    def tail(self, lines: int = 3) -> str:
        """The last lines of its log (for error messages)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def send(self, sig: int) -> None:
        """Send `sig` once (a second Ctrl-C may mean "stop now" to a supervisor)."""
        if self.alive() and self._stop_pids is None:
            self._stop_pids = self.tree()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def stop(self, first: int = signal.SIGTERM, grace: float = 8.0) -> None:
        """Signal the process, wait up to `grace` s, then kill what is left of it."""
        self.send(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # its own session: only what it started
        for pid in (self._stop_pids or [])[1:]:  # descendants that left the group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._out.close()


def stop_all(procs: list[Proc], first: int = signal.SIGTERM) -> None:
    """Stop several processes at once: signal them all, then wait for each."""
    for proc in procs:
        proc.send(first)
    for proc in procs:
        proc.stop(first)


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(port: int, paths: list[str], proc: Proc, deadline_s: float = 30.0) -> float:
    """Poll until every path answers 200; seconds since the process started.

    Raises RuntimeError (with the process's last log lines) if it dies or the deadline passes.
    """
    pending = list(paths)
    end = time.monotonic() + deadline_s
    while pending:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}): {proc.tail()}")
        if time.monotonic() > end:
            raise RuntimeError(f"{proc.name} not ready in {deadline_s:.0f} s: {proc.tail()}")
        try:
            status, _ = http_get(port, pending[0], timeout=1.0)
        except OSError:
            status = 0
        if status == 200:
            pending.pop(0)
        else:
            time.sleep(0.02)
    return time.monotonic() - proc.started
