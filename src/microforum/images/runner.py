"""Replicas as containers: the `Runner` behind `microforum up --containers`.

Each replica of a built-in service runs from its image with `ENGINE run --rm --network host`,
told its dynamic port through `PORT`, as an ECS task in `host` network mode would be
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/networking-networkmode-host.html).
Host networking rather than a published port because the services reach each other through
the local load balancer at API_URL=http://127.0.0.1:LB_PORT, which a bridged container
cannot reach; the supervisor's port probe and ALB semantics are unchanged.

The `run` client stays attached, in its own session (Ctrl-C reaches only the supervisor), with
signal proxying off: its output is the container's log, its exit code the container's.
Stopping goes through the engine: `stop` sends the image's STOPSIGNAL (SIGTERM) and SIGKILL
after the stop timeout, as ECS's StopTask does; `kill` sends SIGKILL. Services that are not
built-ins (a `command` in the stack file) have no image and run as processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Callable, Mapping

from microforum.errors import MicroforumError
from microforum.images.build import build
from microforum.images.engine import Engine, detect_engine
from microforum.local.ports import group_owns_port
from microforum.local.processes import READ_LIMIT, RECENT_LINES, LogStream, ProcessRunner, pump_lines
from microforum.local.runner import ReplicaHandle
from microforum.local.supervisor import STOP_TIMEOUT
from microforum.spec.model import Service, Stack

LOCAL_TAG = "latest"  # what `microforum images build` tags by default: the same images
LABEL = "io.microforum.runner"
CONTAINER_DATA_DIR = "/data"  # the Dockerfile's DATA_DIR  # every container of one runner carries its id
_INSPECT_TIMEOUT = 10.0


def container_env(env: Mapping[str, str]) -> dict[str, str]:
    """The replica's environment as the container sees it: DATA_DIR is the image's /data."""
    return {**env, "DATA_DIR": CONTAINER_DATA_DIR} if "DATA_DIR" in env else dict(env)


def run_argv(engine: Engine, name: str, image: str, env: Mapping[str, str], runner_id: str) -> list[str]:
    """The `ENGINE run` command of one replica; `env` as given by the supervisor.

    `--env NAME` (no value: taken from the client's environment, see `container_env`) keeps
    values such as DATABASE_URL out of the process list. The host's DATA_DIR is mounted at
    /data, the image's own: a host path under a home directory (mode 700) would not be
    reachable by the image's non-root user at its original path.
    """
    argv = [engine.binary, "run", "--rm", "--name", name, "--network", "host", "--sig-proxy=false"]
    argv += ["--label", f"{LABEL}={runner_id}", "--stop-timeout", f"{STOP_TIMEOUT:.0f}"]
    for key in sorted(env):
        argv += ["--env", key]
    if env.get("DATA_DIR"):
        argv += ["--volume", f"{env['DATA_DIR']}:{CONTAINER_DATA_DIR}"]
    return [*argv, image]


def exit_code_of(code: int) -> int:
    """A container's exit code as a process's: 128+N (killed by signal N) becomes -N."""
    return -(code - 128) if 128 < code < 128 + signal.NSIG else code


class ContainerHandle:
    """One replica running as a container (see `ReplicaHandle`)."""

    def __init__(
        self,
        replica_id: str,
        port: int,
        name: str,
        engine: Engine,
        client: asyncio.subprocess.Process,
        log: LogStream,
    ) -> None:
        self.replica_id, self.port, self.name = replica_id, port, name
        self._engine, self._client = engine, client
        self._container_pid: int | None = None
        self._recent: deque[str] = deque(maxlen=RECENT_LINES)
        self._reader = asyncio.ensure_future(self._read(log))
        self._commands: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<ContainerHandle {self.replica_id} {self.name} port={self.port} exit={self.exit_code}>"

    @property
    def pid(self) -> int | None:
        """The container's main process on this host, once known."""
        return self._container_pid

    @property
    def exit_code(self) -> int | None:
        code = self._client.returncode
        return None if code is None else exit_code_of(code)

    async def wait(self) -> int:
        """Wait for the container to exit, then make sure it is removed."""
        code = await self._client.wait()
        await self._engine_command("rm", "--force", self.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), timeout=2.0)
        if self._commands:
            await asyncio.wait(self._commands, timeout=STOP_TIMEOUT + 5)
        return exit_code_of(code)

    def terminate(self) -> None:
        """`ENGINE stop`: the image's STOPSIGNAL (SIGTERM), SIGKILL after the stop timeout."""
        if self._client.returncode is None:
            self._spawn("stop", "--time", f"{STOP_TIMEOUT:.0f}", self.name)

    def kill(self) -> None:
        """SIGKILL to the container and to the attached client."""
        if self._client.returncode is None:
            self._spawn("kill", "--signal", "KILL", self.name)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._client.pid, signal.SIGKILL)

    def owns_port(self, port: int) -> bool:
        """Whether the container's processes hold the socket listening on `port`.

        Called once, when the port first answers: the container runs by then, so a blocking
        `inspect` (tens of milliseconds) is acceptable here.
        """
        if self._client.returncode is not None:
            return False
        if self._container_pid is None:
            self._container_pid = self._inspect_pid()
        # runc makes the container's first process a session (and group) leader.
        return self._container_pid is not None and group_owns_port(self._container_pid, port)

    def recent_lines(self) -> list[str]:
        return list(self._recent)

    def _inspect_pid(self) -> int | None:
        argv = [self._engine.binary, "inspect", "--format", "{{.State.Pid}}", self.name]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=_INSPECT_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return None
        text = out.stdout.strip()
        return int(text) if out.returncode == 0 and text.isdigit() and int(text) > 0 else None

    def _spawn(self, *args: str) -> None:
        self._commands.append(asyncio.ensure_future(self._engine_command(*args)))

    async def _engine_command(self, *args: str) -> None:
        with contextlib.suppress(OSError):
            proc = await asyncio.create_subprocess_exec(
                self._engine.binary,
                *args,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()

    async def _read(self, log: LogStream) -> None:
        assert self._client.stdout is not None
        await pump_lines(self._client.stdout, self.replica_id, self._recent, log)


class ContainerRunner:
    """Starts built-in services' replicas from their images; other services as processes."""

    def __init__(self, log: LogStream, engine: Engine, images: Mapping[str, str]) -> None:
        self._log, self._engine, self._images = log, engine, dict(images)
        self._processes = ProcessRunner(log)
        self._id = uuid.uuid4().hex[:12]

    def __repr__(self) -> str:
        return f"<ContainerRunner {self._engine.name} id={self._id} images={sorted(self._images)}>"

    async def start(
        self, service: Service, replica_id: str, port: int, env: Mapping[str, str]
    ) -> ReplicaHandle:
        """Run `service`'s image with `env` on host port `port` (a process when it has none)."""
        image = self._images.get(service.name)
        if image is None:
            return await self._processes.start(service, replica_id, port, env)
        name = f"microforum-{replica_id}-{uuid.uuid4().hex[:6]}"
        if env.get("DATA_DIR"):
            _shared_data_dir(env["DATA_DIR"])
        try:
            client = await asyncio.create_subprocess_exec(
                *run_argv(self._engine, name, image, env, self._id),
                env={**os.environ, **container_env(env)},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                limit=READ_LIMIT,
            )
        except OSError as exc:
            raise MicroforumError(
                f"start replica {replica_id}: {self._engine.binary}: {exc.strerror or exc}"
            ) from exc
        return ContainerHandle(replica_id, port, name, self._engine, client, self._log)

    async def close(self) -> None:
        """Remove any container of this runner still present (a client killed before its rm)."""
        await self._processes.close()
        ps = await asyncio.create_subprocess_exec(
            self._engine.binary,
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label={LABEL}={self._id}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await ps.communicate()
        if ids := out.decode().split():
            rm = await asyncio.create_subprocess_exec(
                self._engine.binary,
                "rm",
                "--force",
                *ids,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await rm.wait()


def _shared_data_dir(path: str) -> None:
    # The image runs as its own non-root user, not as the user who ran `up`: let it create
    # its SQLite files in the (local, per-stack) data directory it shares with the host.
    os.makedirs(path, exist_ok=True)
    with contextlib.suppress(PermissionError):
        os.chmod(path, 0o777)


def container_runner_factory(
    stack: Stack, *, engine: str | None = None, tag: str = LOCAL_TAG
) -> Callable[[LogStream], ContainerRunner]:
    """Build the stack's built-in services' images (layer cache: quick when unchanged), then
    return the `runner_factory` for `run_up` that runs replicas from them.

    Building first means `up --containers` always serves the code in the checkout, from the
    very images `deploy` pushes.
    """
    chosen = detect_engine(engine)
    services = [service.name for service in stack.services if service.builtin]
    images = build(services, tag=tag, engine=chosen.name, on_progress=_progress) if services else {}
    return lambda log: ContainerRunner(log, chosen, images)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
