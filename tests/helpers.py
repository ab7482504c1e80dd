"""Small helpers shared by the functional tests: ports, HTTP polling, real processes.

Tests talk HTTP over 127.0.0.1 to real processes on ephemeral ports. `running()` starts one,
waits until it answers, and always stops it (SIGTERM, then SIGKILL), putting its captured
output into the failure message when it dies or never answers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence

STOP_TIMEOUT = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    """True when `url` gives any HTTP response (an error status counts: the server is up)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def wait_http(url: str, timeout: float = 10.0, *, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it gives any HTTP response; raise TimeoutError after `timeout` seconds.

    With `process`, fail at once (RuntimeError) if that process exits before answering.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(url):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """Send SIGTERM, wait up to `timeout` seconds, then SIGKILL; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def output_of(process: subprocess.Popen[bytes]) -> str:
    """The output captured so far for a process started by `running()` (stdout + stderr)."""
    log = getattr(process, "log_file", None)
    if log is None:
        return ""
    log.flush()
    with open(log.name, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    *,
    path: str = "/",
    timeout: float = 15.0,
    cwd: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `argv` (env merged over os.environ), wait for http://127.0.0.1:port{path}, yield it.

    The process's stdout and stderr go to a temporary file (`output_of(proc)` reads it). At
    the end the process is stopped with SIGTERM, then SIGKILL after a grace period. When
    `port` is None the helper does not wait for HTTP.
    """
    full_env = {**os.environ, **(env or {})}
    with tempfile.NamedTemporaryFile(prefix="proc-", suffix=".log") as log:
        proc = subprocess.Popen(list(argv), env=full_env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        proc.log_file = log  # type: ignore[attr-defined]
        try:
            if port is not None:
                try:
                    wait_http(f"http://127.0.0.1:{port}{path}", timeout, process=proc)
                except (TimeoutError, RuntimeError) as exc:
                    raise AssertionError(f"{' '.join(argv)}: {exc}\n{output_of(proc)}") from exc
            yield proc
        finally:
            stop(proc)
