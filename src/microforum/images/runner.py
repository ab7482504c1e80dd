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

What differs from processes, on purpose (docs/containers.md):
- the image's HEALTHCHECK is not run (`--no-healthcheck`): the local load balancer checks
  health itself, as ALB does, and podman's periodic checks need systemd timers;
- the environment: the variables the services read (`SERVICE_VARIABLES`, and libpq's `PG*`)
  reach the containers from `up`'s environment as they reach processes; a `DATABASE_URL` naming
  a SQLite file on the host is refused (the containers could not open it);
- an exit of the engine itself (`podman run` exits 125, 126 or 127: the engine, the OCI
  runtime or the image's command failed, not the service) stops `up` with one line instead of
  being retried as a crash;
- every container is labelled with its stack (`leftovers.py`), and the images are rebuilt when
  the source's content tag changed since they were built (a `restart` then runs the new code).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from microforum.errors import MicroforumError, UsageError
from microforum.images.build import BASE_IMAGE_ENV, build, image_exists
from microforum.images.content import content_tag, project_root
from microforum.images.engine import Engine, detect_engine
from microforum.images.leftovers import (
    RUNNER_LABEL,
    STACK_LABEL,
    STACK_NAME_LABEL,
    remove_leftovers,
    stack_id,
)
from microforum.images.refs import local_ref
from microforum.local.ports import group_owns_port
from microforum.local.processes import READ_LIMIT, RECENT_LINES, LogStream, ProcessRunner, pump_lines
from microforum.local.runner import ReplicaHandle
from microforum.local.supervisor import STOP_TIMEOUT
from microforum.spec.model import Service, Stack

CONTAINER_DATA_DIR = "/data"  # the Dockerfile's DATA_DIR
IMAGE_UID = IMAGE_GID = 10001  # the Dockerfile's microforum user and group
# What the services read from their environment (services/settings.py) beyond what the
# supervisor sets, and libpq's own variables (PGPASSWORD, PGSSLMODE, ...).
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "USERS_DATABASE_URL",
    "THREADS_DATABASE_URL",
    "POSTS_DATABASE_URL",
    "USERS_DATABASE_SECRET",
    "THREADS_DATABASE_SECRET",
    "POSTS_DATABASE_SECRET",
    "DATABASE_CA_BUNDLE",
    "API_URL",
    "USERS_URL",
    "THREADS_URL",
    "POSTS_URL",
    "WORKERS",
    "DEPENDENCY_TIMEOUT",
    "IDLE_TIMEOUT",
)
PASSED_PREFIXES = ("PG",)
# `podman run` / `docker run` exit codes of the engine itself, not of the container's command:
# 125 the engine failed, 126 the command could not be invoked (the OCI runtime failed),
# 127 the command was not found (https://docs.docker.com/reference/cli/docker/container/run/#exit-status).
ENGINE_EXIT_CODES = frozenset({125, 126, 127})
ENGINE_HINT = (
    "the container engine failed, not the service: check that `{engine} run --rm {image} true` "
    "works (where crun fails, use runc with explicit ulimits: docs/containers.md)"
)
_INSPECT_TIMEOUT = 10.0


def passed_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `up`'s environment that reach the containers (see the module doc).

    Raises a UsageError for a `DATABASE_URL` naming a SQLite file: it is a path on this host.
    """
    env = {k: v for k, v in environ.items() if k in SERVICE_VARIABLES or k.startswith(PASSED_PREFIXES)}
    for name in (n for n in SERVICE_VARIABLES if n.endswith("DATABASE_URL")):
        if env.get(name, "").startswith("sqlite:"):
            raise UsageError(
                f"{name}={env[name]} names a SQLite file on this host, which the containers cannot open",
                hint=f"unset {name} (containers keep SQLite files in the stack's data directory) "
                "or give a postgresql:// URL",
            )
    return env


def container_env(env: Mapping[str, str]) -> dict[str, str]:
    """The replica's environment as the container sees it: DATA_DIR is the image's /data."""
    return {**env, "DATA_DIR": CONTAINER_DATA_DIR} if "DATA_DIR" in env else dict(env)


def run_argv(
    engine: Engine, name: str, image: str, env: Mapping[str, str], labels: Mapping[str, str]
) -> list[str]:
    """The `ENGINE run` command of one replica; `env` as given by the supervisor.

    `--env NAME` (no value: taken from the client's environment, see `container_env`) keeps
    values such as DATABASE_URL out of the process list. The host's DATA_DIR is mounted at
    /data, the image's own: a host path under a home directory (mode 700) would not be
    reachable by the image's non-root user at its original path.
    """
    argv = [engine.binary, "run", "--rm", "--name", name, "--network", "host", "--sig-proxy=false"]
    argv += ["--no-healthcheck", "--stop-timeout", f"{STOP_TIMEOUT:.0f}"]
    for key, value in sorted(labels.items()):
        argv += ["--label", f"{key}={value}"]
    argv += user_flags(engine, os.geteuid(), os.getegid())
    for key in sorted(env):
        argv += ["--env", key]
    if env.get("DATA_DIR"):
        argv += ["--volume", f"{env['DATA_DIR']}:{CONTAINER_DATA_DIR}"]
    return [*argv, image]


def user_flags(engine: Engine, uid: int, gid: int) -> list[str]:
    """Who the container runs as. Root on the host: the image's own user (the data directory is
    handed to it); anyone else: that user, so the files it writes stay theirs (rootless podman
    maps it to itself with keep-id)."""
    if uid == 0:
        return []
    keep_id = ["--userns", "keep-id"] if engine.name == "podman" else []
    return [*keep_id, "--user", f"{uid}:{gid}"]


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
        image: str,
    ) -> None:
        self.replica_id, self.port, self.name, self.image = replica_id, port, name, image
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

    def runner_failure(self) -> MicroforumError | None:
        """Once exited: the engine's own failure (exit 125-127) as one line and a hint, or None."""
        code = self._client.returncode
        if code not in ENGINE_EXIT_CODES:
            return None
        last = self._recent[-1] if self._recent else "no output"
        return MicroforumError(
            f"run replica {self.replica_id}: {self._engine.name} run exited with {code}: {last}",
            hint=ENGINE_HINT.format(engine=self._engine.binary, image=self.image),
        )

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


class StackImages:
    """The images of a stack's built-in services, rebuilt when the source changes.

    `current()` compares the source's content tag with the one the images were built with
    (hashing the build context: milliseconds) and rebuilds first when they differ, so a replica
    started after an edit, by `restart` or to replace one that exited, runs the edited code.
    """

    def __init__(
        self,
        engine: Engine,
        services: list[str],
        base_image: str | None,
        say: Callable[[str], None],
        context: Path | None = None,
    ) -> None:
        self._engine, self._services, self._base, self._say = engine, services, base_image, say
        self._context = context or project_root()
        self._tag: str | None = None
        self._refs: dict[str, str] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<StackImages {self._engine.name} tag={self._tag} {sorted(self._refs)}>"

    def ensure(self, say: Callable[[str], None] | None = None) -> dict[str, str]:
        """Build the images unless they were built from the source as it is now; service -> ref.

        Images already tagged with the source's content tag are used as they are: the tag is a
        hash of everything the build reads, so building again would give the same layers.
        `say` replaces the progress callback (from another thread: one that is safe there).
        """
        say = say or self._say
        tag = content_tag(self._context, base_image=self._base)
        if tag == self._tag:
            return self._refs
        if self._tag is not None:
            say(f"the source changed since {self._tag}: building {tag}")
        refs = {name: local_ref(self._engine.name, name, tag) for name in self._services}
        if all(image_exists(self._engine, ref) for ref in refs.values()):
            say(f"images of this source already built: {', '.join(refs.values())}")
        else:
            refs = build(
                self._services,
                tag=tag,
                engine=self._engine.name,
                base_image=self._base,
                on_progress=say,
                context=self._context,
            )
        self._refs, self._tag = refs, tag
        return refs

    async def current(self, service: str) -> str | None:
        """The image to run for `service` now (None: it has none and runs as a process)."""
        if service not in self._services:
            return None
        loop = asyncio.get_running_loop()

        def say(line: str) -> None:  # from the build's thread: the log belongs to the loop
            loop.call_soon_threadsafe(self._say, line)

        async with self._lock:
            refs = await asyncio.to_thread(self.ensure, say)
        return refs[service]


class ContainerRunner:
    """Starts built-in services' replicas from their images; other services as processes."""

    def __init__(
        self, log: LogStream, engine: Engine, images: StackImages, data_dir: Path, name: str
    ) -> None:
        self._log, self._engine, self._images = log, engine, images
        self._processes = ProcessRunner(log)
        self._id = uuid.uuid4().hex[:12]
        self._labels = {STACK_LABEL: stack_id(data_dir), STACK_NAME_LABEL: name, RUNNER_LABEL: self._id}
        self._passed = passed_env(os.environ)

    def __repr__(self) -> str:
        return f"<ContainerRunner {self._engine.name} id={self._id} {self._images!r}>"

    async def start(
        self, service: Service, replica_id: str, port: int, env: Mapping[str, str]
    ) -> ReplicaHandle:
        """Run `service`'s image with `env` on host port `port` (a process when it has none)."""
        image = await self._images.current(service.name)
        if image is None:
            return await self._processes.start(service, replica_id, port, env)
        name = f"microforum-{replica_id}-{uuid.uuid4().hex[:6]}"
        merged = {**self._passed, **env}
        if env.get("DATA_DIR"):
            give_data_dir(env["DATA_DIR"])
        try:
            client = await asyncio.create_subprocess_exec(
                *run_argv(self._engine, name, image, merged, self._labels),
                env={**os.environ, **container_env(merged)},
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
        return ContainerHandle(replica_id, port, name, self._engine, client, self._log, image)

    async def close(self) -> None:
        """Remove any container of this runner still present (a client killed before its rm)."""
        await self._processes.close()
        ps = await asyncio.create_subprocess_exec(
            self._engine.binary,
            "ps",
            "--all",
            "--quiet",
            "--filter",
            f"label={RUNNER_LABEL}={self._id}",
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


def give_data_dir(path: str) -> None:
    """Make the (local, per-stack) data directory usable by the containers, and by no one else.

    Mode 0700. When `up` runs as root the containers run as the image's own user, so the
    directory and its files are handed to that user (root keeps its access); otherwise they
    run as the user who ran `up` (`user_flags`) and nothing needs to change hands.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    if os.geteuid() != 0:
        return
    for top, dirs, files in os.walk(path):
        for entry in [top, *(os.path.join(top, n) for n in dirs + files)]:
            with contextlib.suppress(FileNotFoundError):
                os.chown(entry, IMAGE_UID, IMAGE_GID, follow_symlinks=False)


def container_runner_factory(
    stack: Stack, data_dir: Path, *, engine: str | None = None, base_image: str | None = None
) -> Callable[[LogStream], ContainerRunner]:
    """Check what can be checked at once (the engine, the environment), then return the
    `runner_factory` for `run_up`.

    The factory runs once `up` holds its port: it removes the containers an earlier run of this
    stack left behind, then builds the built-in services' images (layer cache: quick when
    unchanged), so `up --containers` always serves the code in the checkout, from the very
    images `deploy` pushes.
    """
    chosen = detect_engine(engine)
    passed_env(os.environ)  # a DATABASE_URL the containers cannot use: refused before anything
    services = [service.name for service in stack.services if service.builtin]
    base = base_image or os.environ.get(BASE_IMAGE_ENV) or None

    def factory(log: LogStream) -> ContainerRunner:
        def say(line: str) -> None:
            log.line("containers", line)

        remove_leftovers(chosen, data_dir, say)
        images = StackImages(chosen, services, base, say)
        images.ensure()
        return ContainerRunner(log, chosen, images, data_dir, stack.name)

    return factory
