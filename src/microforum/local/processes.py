"""Replicas as local processes (the default `Runner`), and the one prefixed log stream.

Each replica runs in its own session and process group (`start_new_session`): Ctrl-C in the
terminal reaches only the supervisor, which drains and stops replicas in order, and stopping a
replica signals its whole group, so nothing it spawned (granian's workers, a shell's children)
outlives it. Its stdout and stderr are read line by line into one stream, prefixed with the
replica's id as docker compose does (`users-1    | ...`), coloured only when the stream is a
terminal (and `NO_COLOR` is unset).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections import deque
from collections.abc import Mapping
from typing import TextIO

from microforum.errors import MicroforumError
from microforum.local.ports import group_owns_port
from microforum.spec.model import Service

RECENT_LINES = 50  # kept per replica for crash reports
PREFIX_WIDTH = 12
_COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)  # cyan, yellow, green, magenta, blue, ...
READ_LIMIT = 1 << 20  # longest log line read whole (longer ones are split)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if `up` dies without cleaning up (even SIGKILL).

    Linux's PR_SET_PDEATHSIG; SIGTERM rather than SIGKILL so a service still stops its own
    workers. Fires when the thread that spawned the child exits: the event loop's (main) thread.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PREEXEC = _die_with_parent if sys.platform.startswith("linux") else None


class LogStream:
    """One output stream shared by every replica and the supervisor, line-atomic."""

    def __init__(self, out: TextIO | None = None, *, colour: bool | None = None) -> None:
        self._out = out or sys.stdout
        if colour is None:
            colour = self._out.isatty() and not os.environ.get("NO_COLOR")
        self._colour = colour
        self._assigned: dict[str, int] = {}

    def line(self, source: str, text: str) -> None:
        """Write one line from `source` (a replica id, or "microforum") with its prefix."""
        service = source.rsplit("-", 1)[0]
        prefix = f"{source:<{PREFIX_WIDTH}}|"
        if self._colour:
            code = self._assigned.setdefault(service, _COLOURS[len(self._assigned) % len(_COLOURS)])
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        try:
            self._out.write(f"{prefix} {text}\n")
            self._out.flush()
        except (BrokenPipeError, ValueError):  # the reader went away: keep the stack running
            pass


def replica_argv(service: Service, env: Mapping[str, str]) -> list[str]:
    """The argv of a replica: built-ins run this interpreter's `microforum serve NAME`.

    A `command` may name its port in its arguments as `$PORT` or `${PORT}` (for programs that
    take the port as an argument rather than from the environment); nothing else is expanded.
    """
    if service.builtin:
        return [sys.executable, "-m", "microforum", "serve", service.name]
    port = env.get("PORT", "")
    return [arg.replace("${PORT}", port).replace("$PORT", port) for arg in service.command]


class ProcessHandle:
    """A replica running as a local process group (see `ReplicaHandle`)."""

    def __init__(
        self, replica_id: str, port: int, process: asyncio.subprocess.Process, log: LogStream
    ) -> None:
        self.replica_id = replica_id
        self.port = port
        self._process = process
        self._recent: deque[str] = deque(maxlen=RECENT_LINES)
        self._reader = asyncio.ensure_future(self._read(log))

    def __repr__(self) -> str:
        return f"<ProcessHandle {self.replica_id} pid={self.pid} port={self.port} exit={self.exit_code}>"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def exit_code(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        """Wait for the main process, then make sure nothing else of its group survives."""
        code = await self._process.wait()
        self._signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), timeout=2.0)
        return code

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def owns_port(self, port: int) -> bool:
        return self._process.returncode is None and group_owns_port(self._process.pid, port)

    def recent_lines(self) -> list[str]:
        return list(self._recent)

    def _signal(self, signum: int) -> None:
        # The group id is the child's pid (own session); it outlives the leader while members
        # remain, which is exactly what we want to reach.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signum)

    async def _read(self, log: LogStream) -> None:
        assert self._process.stdout is not None
        await pump_lines(self._process.stdout, self.replica_id, self._recent, log)


async def pump_lines(
    stream: asyncio.StreamReader, replica_id: str, recent: deque[str], log: LogStream
) -> None:
    """Copy a replica's output into the log stream line by line, keeping the last few lines."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line longer than READ_LIMIT: take what is buffered
            raw = await stream.read(READ_LIMIT)
        if not raw:
            return
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        recent.append(text)
        log.line(replica_id, text)


class ProcessRunner:
    """Starts replicas as local processes, their output merged into `log`."""

    def __init__(self, log: LogStream) -> None:
        self._log = log

    async def start(
        self, service: Service, replica_id: str, port: int, env: Mapping[str, str]
    ) -> ProcessHandle:
        """Launch `service`'s command with os.environ + `env` (+ unbuffered Python output)."""
        argv = replica_argv(service, env)
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=full_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_PREEXEC,
                limit=READ_LIMIT,
            )
        except OSError as exc:
            raise MicroforumError(
                f"start replica {replica_id}: {argv[0]}: {exc.strerror or exc}",
                hint=f"check services.{service.name}.command in the stack file",
            ) from exc
        return ProcessHandle(replica_id, port, process, self._log)

    async def close(self) -> None:
        """Nothing to release: every handle's reader ends with its process."""
