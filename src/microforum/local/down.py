"""`microforum down`: stop the stack of a data directory, whatever happened to its `up`.

A running `up` (its control channel answers) is sent SIGTERM, which drains and stops every
replica as Ctrl-C does, and waited for; SIGKILL follows if it has not exited in time. A control
file nobody answers is a stack that died without cleaning up: it is removed. Process replicas
die with their `up` (local/processes.py: the parent-death signal); containers cannot, and
`microforum down` removes them by their labels afterwards (images/leftovers.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from microforum.errors import MicroforumError
from microforum.local.control import call, control_path, read_control

STOP_WAIT = 60.0  # seconds `up` gets to drain and stop (deregistration + stop timeouts) before SIGKILL
_POLL = 0.1


def stop_running(data_dir: Path, say: Callable[[str], None], *, wait: float = STOP_WAIT) -> bool:
    """Stop the `up` running from `data_dir`, if any; whether one was running."""
    try:
        info = read_control(data_dir)
    except MicroforumError:
        return False
    try:
        call(info, "GET", "/status", timeout=2.0)
    except MicroforumError:
        with contextlib.suppress(FileNotFoundError):
            control_path(data_dir).unlink()
        say(f"removed the control file of a stack that is gone (pid {info.pid})")
        return False
    say(f"stopping the stack running from {data_dir} (pid {info.pid}): draining, then stopping its replicas")
    _signal(info.pid, signal.SIGTERM)
    if not _wait_gone(info.pid, wait):
        say(f"pid {info.pid} did not stop within {wait:g} s; killing it")
        _signal(info.pid, signal.SIGKILL)
        _wait_gone(info.pid, 5.0)
    return True


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(_POLL)
    return False


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (exited, not yet collected by its parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
