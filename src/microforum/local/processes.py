"""Replicas as local processes (the default `Runner`), and the one prefixed log stream.

Each replica runs in its own session and process group (`start_new_session`): Ctrl-C in the
terminal reaches only the supervisor, which drains and stops replicas in order, and stopping a
replica signals its whole group, so nothing it spawned (a service's workers, a shell's children)
outlives it. Its stdout and stderr go into one stream, each line prefixed with the replica's id
as docker compose does (`users-1    | ...`), coloured only when the stream is a terminal (and
`NO_COLOR` is unset).

Every request a service answers prints an access-log line, so this path runs once per request
under load: output is taken in whatever chunks the pipe delivers (a subprocess protocol, no
per-line reads), cut into whole lines and prefixed in one pass (`loglines`), and each chunk's
lines reach the terminal in one write. Lines are never split or interleaved: a partial line
waits for its newline (or the end of the output).
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
from typing import TextIO, cast

from microforum.errors import MicroforumError
from microforum.local.loglines import READ_LIMIT as READ_LIMIT  # re-exported (images)
from microforum.local.loglines import LineBuffer, prefixed
from microforum.local.ports import group_owns_port
from microforum.local.replicalogs import ReplicaLogs
from microforum.logwriter import BACKLOG_LIMIT, CLOSE_TIMEOUT, LogWriter, fd_sink
from microforum.spec.model import Service

RECENT_LINES = 50  # kept per replica for crash reports
PREFIX_WIDTH = 12
CHUNK = 1 << 16  # bytes asked for per read by `pump_lines`
_COLOURS = (36, 33, 32, 35, 34, 96, 93, 92, 95, 94)  # cyan, yellow, green, magenta, blue, ...
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
SUPERVISOR = "microforum"  # the source name of the supervisor's own lines


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if `up` dies without cleaning up (even SIGKILL).

    Linux's PR_SET_PDEATHSIG; SIGTERM rather than SIGKILL so a service still stops its own
    workers. Fires when the thread that spawned the child exits: the event loop's (main) thread.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PREEXEC = _die_with_parent if sys.platform.startswith("linux") else None


class LogStream:
    """One output stream shared by every replica and the supervisor; each write whole lines.

    Lines to a real file descriptor (a terminal, a pipe, a file) go through a `LogWriter`: the
    event loop never waits for the reader, and lines it cannot take in time are dropped and
    counted (`counts`). An in-memory stream (tests) cannot block and is written at once.
    """

    def __init__(self, out: TextIO | None = None, *, colour: bool | None = None,
                 limit: int = BACKLOG_LIMIT, files: ReplicaLogs | None = None) -> None:  # fmt: skip
        self._out = out or sys.stdout
        self.files = files  # each source's lines also go to its own file (`microforum logs`)
        if colour is None:
            colour = self._out.isatty() and not os.environ.get("NO_COLOR")
        self._colour = colour
        self._assigned: dict[str, int] = {}
        self._prefixes: dict[str, str] = {}
        self._written = 0
        self._writer = self._writer_for(self._out, limit)

    def _writer_for(self, out: TextIO, limit: int) -> LogWriter | None:
        try:
            fd = out.fileno()
        except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
            return None
        with contextlib.suppress(OSError, ValueError):
            out.flush()  # whatever was printed before goes first
        return LogWriter(fd_sink(fd), name="output", limit=limit, notice=self._dropped_notice)

    def _dropped_notice(self, count: int) -> bytes:
        return (f"{self.prefix(SUPERVISOR)}{count} log lines dropped: the output was not "
                "read in time (see docs/operations.md)\n").encode()  # fmt: skip

    def prefix(self, source: str) -> str:
        """What goes before each line of `source`: its padded name, coloured by service."""
        prefix = self._prefixes.get(source)
        if prefix is None:
            prefix = f"{source:<{PREFIX_WIDTH}}| "
            if self._colour:
                service = source.rsplit("-", 1)[0]
                code = self._assigned.setdefault(service, _COLOURS[len(self._assigned) % len(_COLOURS)])
                prefix = f"\x1b[{code}m{prefix[:-1]}\x1b[0m "
            self._prefixes[source] = prefix
        return prefix

    def line(self, source: str, text: str) -> None:
        """Write one line from `source` (a replica id, or "microforum") with its prefix."""
        self.write(f"{self.prefix(source)}{text}\n")
        if self.files is not None:
            self.files.write(source, f"{text}\n".encode("utf-8", "replace"))

    def write(self, text: str) -> None:
        """Write already prefixed, newline-terminated lines, in one write; never blocks."""
        if self._writer is not None:
            self._writer.write(text.encode("utf-8", "replace"), text.count("\n"))
            return
        try:
            self._out.write(text)
            self._out.flush()
            self._written += text.count("\n")
        except (BrokenPipeError, ValueError):  # the reader went away: keep the stack running
            pass

    def counts(self) -> dict[str, int]:
        """Lines written and lines dropped (for `microforum status`)."""
        if self._writer is not None:
            return self._writer.counts()
        return {"written": self._written, "dropped": 0}

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what waits, for up to `timeout` seconds; later lines are dropped."""
        if self._writer is not None:
            self._writer.close(timeout)
        if self.files is not None:
            self.files.close()


class LogPump:
    """One replica's output into the log stream: whole lines, one write per chunk received.

    Also keeps the replica's last `RECENT_LINES` lines (in `recent`) for crash reports.
    """

    def __init__(self, source: str, log: LogStream, recent: deque[str]) -> None:
        self._prefix = log.prefix(source)
        self._source = source
        self._log, self._recent = log, recent
        self._lines = LineBuffer()

    def __repr__(self) -> str:
        return f"<LogPump {self._prefix.strip()!r} {self._lines!r}>"

    def feed(self, data: bytes) -> None:
        """Take a chunk of output: write the lines it completes."""
        block = self._lines.feed(data)
        if block:
            self._emit(block)

    def end(self) -> None:
        """The output ended: write a last line left without its newline."""
        block = self._lines.end()
        if block:
            self._emit(block)
        if self._log.files is not None:
            self._log.files.end(self._source)

    def _emit(self, block: bytes) -> None:
        text, last = prefixed(self._prefix, block, self._recent.maxlen or RECENT_LINES)
        self._recent.extend(last)
        self._log.write(text)
        if self._log.files is not None:
            self._log.files.write(self._source, block)


async def pump_lines(
    stream: asyncio.StreamReader, replica_id: str, recent: deque[str], log: LogStream
) -> None:
    """Copy a stream's output into the log stream until its end, keeping the last few lines."""
    pump = LogPump(replica_id, log, recent)
    while data := await stream.read(CHUNK):
        pump.feed(data)
    pump.end()


class _ReplicaProtocol(asyncio.SubprocessProtocol):
    """The replica's pipe (stdout and stderr together) straight into a `LogPump`.

    `exited` resolves with the exit code, `drained` when the output has ended (every process
    holding the pipe closed it). The transport is closed once both have happened.
    """

    def __init__(self, pump: LogPump) -> None:
        loop = asyncio.get_running_loop()
        self._pump = pump
        self.exited: asyncio.Future[int] = loop.create_future()
        self.drained: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.SubprocessTransport | None = None

    # --- Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's process transport has the interface without being a subclass.
        self._transport = cast(asyncio.SubprocessTransport, transport)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._pump.feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if not self.drained.done():
            self._pump.end()
            self.drained.set_result(None)
        self._maybe_close()

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        if not self.exited.done():
            self.exited.set_result(-1 if code is None else code)
        self._maybe_close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe_connection_lost(1, exc)

    def _maybe_close(self) -> None:
        if self.exited.done() and self.drained.done() and self._transport is not None:
            self._transport.close()


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
        self,
        replica_id: str,
        port: int,
        transport: asyncio.SubprocessTransport,
        protocol: _ReplicaProtocol,
        recent: deque[str],
    ) -> None:
        self.replica_id = replica_id
        self.port = port
        self._transport, self._protocol = transport, protocol
        self._pid: int = transport.get_pid()
        self._recent = recent

    def __repr__(self) -> str:
        return f"<ProcessHandle {self.replica_id} pid={self.pid} port={self.port} exit={self.exit_code}>"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def exit_code(self) -> int | None:
        exited = self._protocol.exited
        return exited.result() if exited.done() else None

    async def wait(self) -> int:
        """Wait for the main process, then make sure nothing else of its group survives."""
        code = await asyncio.shield(self._protocol.exited)
        self._signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._protocol.drained), timeout=2.0)
        return code

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def owns_port(self, port: int) -> bool:
        return self.exit_code is None and group_owns_port(self._pid, port)

    def recent_lines(self) -> list[str]:
        return list(self._recent)

    def runner_failure(self) -> MicroforumError | None:
        return None  # a process that exits is the service's own failure

    def _signal(self, signum: int) -> None:
        # The group id is the child's pid (own session); it outlives the leader while members
        # remain, which is exactly what we want to reach.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pid, signum)


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
        recent: deque[str] = deque(maxlen=RECENT_LINES)
        pump = LogPump(replica_id, self._log, recent)
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ReplicaProtocol(pump),
                *argv,
                env=full_env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_PREEXEC,
            )
        except OSError as exc:
            raise MicroforumError(
                f"start replica {replica_id}: {argv[0]}: {exc.strerror or exc}",
                hint=f"check services.{service.name}.command in the stack file",
            ) from exc
        return ProcessHandle(replica_id, port, transport, protocol, recent)

    async def close(self) -> None:
        """Nothing to release: every handle's output ends with its process."""
