"""`microforum up`: the load balancer, the supervisor and the control channel in one process.

Order of start-up: the load balancer first (its port goes into every built-in replica's
`API_URL`, so services reach each other through it), then the control channel
(`<data_dir>/control.json`), then the supervisor, which starts the replicas. The URL is
printed once every target group has its desired healthy targets, with the time it took.

Order of shutdown (Ctrl-C, SIGTERM, or SIGHUP: a closed terminal): the load balancer stops
accepting and lets in-flight requests finish, the supervisor drains every registered replica
(deregistration waits for in-flight requests, docs/alb.md §B) and stops them, and control.json is
removed. Whatever happens, every replica still alive at the end is killed with its process
group: `up` leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from microforum.console.server import ConsoleServer
from microforum.errors import MicroforumError
from microforum.local.control import (
    RESTART_TIMEOUT,
    ControlServer,
    call,
    control_path,
    read_control,
)
from microforum.local.processes import LogStream, ProcessRunner
from microforum.local.replicalogs import LOG_DIR, ReplicaLogs
from microforum.local.runner import Runner
from microforum.local.supervisor import HOST, SUPERVISOR, Supervisor
from microforum.logfiles import private_dir
from microforum.spec import defaults as d
from microforum.spec.model import Stack

RunnerFactory = Callable[[LogStream], Runner]
LB_LOGGER = "microforum"  # the load balancer logs to microforum.lb
# Each drains and stops the stack; SIGHUP is what a closed terminal sends.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def data_dir_of(stack: Stack, stack_path: Path) -> Path:
    """The stack's data directory; a relative `local.data_dir` is relative to the stack file."""
    path = Path(stack.local.data_dir)
    return path if path.is_absolute() else stack_path.resolve().parent / path


def run_up(
    stack: Stack,
    stack_path: Path,
    port: int | None = None,
    *,
    out: TextIO | None = None,
    runner_factory: RunnerFactory = ProcessRunner,
    notice: str = "",
) -> int:
    """Run the local stack in the foreground until SIGINT/SIGTERM; the exit code (0).

    `notice` (lines, e.g. which load-balancer build runs) is logged once the stack starts."""
    data_dir = data_dir_of(stack, stack_path)
    _refuse_second_stack(data_dir)
    port = stack.local.port if port is None else port
    coro = _up(stack, data_dir, port, out, runner_factory, notice)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio works too
        return asyncio.run(coro)
    return uvloop.run(coro)


def _refuse_second_stack(data_dir: Path) -> None:
    """Refuse to start when a stack of this data directory answers on its control channel."""
    try:
        info = read_control(data_dir)
        call(info, "GET", "/status", timeout=1.0)
    except MicroforumError:
        return  # none, or a stale control file that `up` will overwrite
    raise MicroforumError(
        f"start the local stack: one is already running from {data_dir} (pid {info.pid}, {info.stack_url})",
        hint="stop it with Ctrl-C in its terminal, or use `microforum status`",
    )


async def _up(
    stack: Stack,
    data_dir: Path,
    port: int,
    out: TextIO | None,
    runner_factory: RunnerFactory,
    notice: str,
) -> int:
    started = time.monotonic()
    try:
        private_dir(data_dir)
        private_dir(data_dir / "data")
    except OSError as exc:
        raise MicroforumError(
            f"create the stack's data directory {data_dir}: {exc.strerror}",
            hint="set local.data_dir in the stack file to a writable directory",
        ) from exc
    lb = _new_balancer(stack, data_dir)
    url = f"http://{HOST}:{await _start_balancer(lb, port)}"
    files = ReplicaLogs(
        data_dir / LOG_DIR, d.LOCAL_REPLICA_LOG_MAX_SIZE_MIB << 20, d.LOCAL_REPLICA_LOG_MAX_FILES
    )
    log = LogStream(out, files=files)
    lb_messages = _route_messages(log)
    for line in notice.splitlines():
        log.line(SUPERVISOR, line.removeprefix("microforum: "))
    try:  # a container runner builds its images here, once the port is ours
        runner = runner_factory(log)
    except BaseException:
        await lb.close()
        _unroute_messages(lb_messages)
        log.close()
        raise
    closed: list[bool] = []

    async def close_lb() -> None:  # once: at the start of a shutdown, or at the very end
        if not closed:
            closed.append(True)
            await lb.close()

    supervisor = Supervisor(stack, lb, runner, log, data_dir=data_dir, api_url=url, on_shutdown=close_lb)
    console = ConsoleServer(stack, lb, supervisor, data_dir / "access.log", url)
    console_url = await console.start()
    control = ControlServer(_handler(supervisor, lb, url, log, console_url))
    await control.start()
    control.write_file(control_path(data_dir), url, console_url=console_url)
    supervisor.on_ready(lambda: _announce(log, stack, url, console_url, started, supervisor))
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, supervisor.request_shutdown, f"{signum.name} received")
    try:
        await supervisor.run()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await console.close()
        await _cleanup(supervisor, control, close_lb, runner, data_dir)
        _unroute_messages(lb_messages)
    log.line(SUPERVISOR, "stopped")
    log.close()
    if supervisor.failure is not None:  # e.g. the container engine failed: one line, exit 1
        raise supervisor.failure
    return 0


class _LogStreamHandler(logging.Handler):
    """The load balancer's own messages (a bug's traceback) into the stack's log stream."""

    def __init__(self, log: LogStream) -> None:
        super().__init__()
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        for line in self.format(record).splitlines():
            self._log.line(SUPERVISOR, line)


def _route_messages(log: LogStream) -> logging.Handler:
    handler = _LogStreamHandler(log)
    logger = logging.getLogger(LB_LOGGER)
    logger.addHandler(handler)
    logger.propagate = False  # not also to stderr, which may block as stdout does
    return handler


def _unroute_messages(handler: logging.Handler) -> None:
    logger = logging.getLogger(LB_LOGGER)
    logger.removeHandler(handler)
    logger.propagate = True


def _new_balancer(stack: Stack, data_dir: Path) -> Any:
    from microforum.lb.balancer import LoadBalancer

    return LoadBalancer(stack, access_log=data_dir / "access.log")


async def _start_balancer(lb: Any, port: int) -> int:
    try:
        return int(await lb.start(HOST, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MicroforumError(
                f"start the load balancer on {HOST}:{port}: the port is already in use",
                hint="stop what listens there, or pick another port: `microforum up --port N` "
                "(0 lets the system choose)",
            ) from exc
        if exc.errno == errno.EACCES:
            raise MicroforumError(
                f"start the load balancer on {HOST}:{port}: permission denied",
                hint="ports below 1024 need privileges: `microforum up --port 8080`",
            ) from exc
        raise MicroforumError(f"start the load balancer on {HOST}:{port}: {exc}") from exc


def _announce(
    log: LogStream, stack: Stack, url: str, console_url: str, started: float, supervisor: Supervisor
) -> None:
    targets = sum(supervisor.reconciler.desired(s.name) for s in stack.services)  # (autoscaling's min)
    elapsed = time.monotonic() - started
    log.line(SUPERVISOR, f"{targets} targets healthy in {elapsed:.2f} s")
    log.line(SUPERVISOR, f"stack '{stack.name}' ready at {url}  (Ctrl-C stops it)")
    log.line(SUPERVISOR, f"console: {console_url}")


async def _cleanup(
    supervisor: Supervisor,
    control: ControlServer,
    close_lb: Callable[[], Awaitable[None]],
    runner: Runner,
    data_dir: Path,
) -> None:
    with contextlib.suppress(FileNotFoundError):
        control_path(data_dir).unlink()
    await control.close()
    await supervisor.kill_all()
    await close_lb()
    await runner.close()


def _listener_note(stack: Stack) -> str:
    """What the listener is here and what it will be on AWS."""
    port = stack.listener.port
    if stack.listener.certificate_arn is None:
        return f"HTTP here; on AWS: HTTP:{port} (no listener.certificate_arn)"
    return (
        f"HTTP here; on AWS: HTTPS:{d.HTTPS_PORT} ({d.TLS_POLICY}, {stack.listener.certificate_arn}),"
        f" HTTP:{port} answers 301 to HTTPS, the services call each other on HTTP:{d.INTERNAL_LISTENER_PORT}"
    )


def _handler(supervisor: Supervisor, lb: Any, url: str, log: LogStream, console_url: str) -> Any:
    async def handle(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if method == "GET" and path == "/status":
            return 200, {
                "stack": supervisor.stack.name,
                "url": url,
                "console_url": console_url,
                "target_groups": lb.describe(),
                "replicas": supervisor.snapshot(),
                "services": supervisor.policies.describe(),
                "listener": _listener_note(supervisor.stack),
                "logs": {"output": log.counts(), "access_log": lb.log_counts()},
            }
        if method == "POST" and path == "/restart":
            service = query.get("service", "")
            done = supervisor.request_restart(service)
            replicas = await asyncio.wait_for(done, RESTART_TIMEOUT)
            return 200, {"service": service, "replicas": replicas}
        return 404, {"error": f"no such control endpoint: {method} {path}"}

    return handle
