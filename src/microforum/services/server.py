"""Run a service: the production entry point of `microforum serve`.

The process validates the settings, binds the listening socket (a taken port is one line,
before anything else), creates or migrates and seeds each database once, then serves:

- with one worker (the default, one replica per container or per `up` replica) in this very
  process: an asyncio + uvloop event loop, one `Connection` protocol per client connection
  (`microforum.services.connection`);
- with `--workers N`, in N forked worker processes sharing the listening socket, each with
  its own event loop and databases; this process only supervises them: it replaces a worker
  that dies, forwards SIGTERM/SIGINT, and the kernel kills the workers if it dies, even by
  SIGKILL (PR_SET_PDEATHSIG).

On SIGTERM (or SIGINT) a worker stops accepting, closes idle connections, finishes the
requests in flight (answering them with `connection: close`), closes its databases (writing
the last access-log lines) and exits 0.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable

import uvloop

from microforum.errors import MicroforumError
from microforum.services.app import App, build_app, open_databases
from microforum.services.connection import Connection, Server
from microforum.services.pgcache import install_change_triggers
from microforum.services.schema import migrate
from microforum.services.settings import Settings
from microforum.services.storage import StorageUnavailable, redact

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
BACKLOG = 1024
RESPAWN_DELAY = 1.0  # seconds before a worker that died is replaced (no busy crash loop)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Seconds the event loop's thread may keep the interpreter's lock while a database thread waits
# for it (Python's default: 0.005). docs/store.md, "The interpreter's lock".
SWITCH_INTERVAL = 0.0005


def prepare(settings: Settings) -> None:
    """Create or migrate (and on first start seed) every database the service owns."""
    for resource, url in settings.databases.items():
        try:
            db = open_databases(Settings(settings.service, databases={resource: url}))[resource]
        except (sqlite3.Error, OSError) as exc:
            raise _database_error(resource, url, exc) from exc
        try:
            migrate(db, resource)
            if db.dialect == "postgresql":  # the read cache's invalidation (pgcache.py)
                db.write_now(install_change_triggers, table=resource)
        except (StorageUnavailable, sqlite3.Error, OSError) as exc:
            raise _database_error(resource, url, exc) from exc
        finally:
            db.close()


def _database_error(resource: str, url: str, exc: Exception) -> MicroforumError:
    return MicroforumError(
        f"open database {redact(url)} for {resource}: {exc}",
        hint="check DATABASE_URL (or --database): the directory must be writable, the server up",
    )


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, not listening yet; a taken port is one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MicroforumError(
            f"listen on {host}:{port}: {exc.strerror}",
            hint="choose another --port (or PORT), or stop what is using it",
        ) from exc
    return sock


def die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this worker when its parent dies, even by SIGKILL.

    Without it a SIGKILLed server leaves its workers serving on the inherited socket, and a
    supervisor replacing the process would find the old one still answering (prctl(2),
    PR_SET_PDEATHSIG; Linux only, elsewhere a no-op).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl: follow it now
        os.kill(os.getpid(), signal.SIGKILL)


def serve(settings: Settings) -> int:
    """Prepare the databases and serve until SIGTERM/SIGINT; return the exit code."""
    sock = listen_socket(settings.host, settings.port)
    prepare(settings)
    sock.listen(BACKLOG)
    host, port = sock.getsockname()[:2]
    print(f"microforum: serving {settings.service} on http://{host}:{port} "
          f"({settings.workers} worker{'s' if settings.workers > 1 else ''}, pid {os.getpid()})",
          file=sys.stderr, flush=True)  # fmt: skip
    if settings.workers == 1:
        return run_worker(settings, sock)
    return supervise(settings.workers, lambda: run_worker(settings, sock))


def run_worker(settings: Settings, sock: socket.socket) -> int:
    """Serve on the listening `sock` in this process until SIGTERM/SIGINT, then drain."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    app = build_app(settings, open_databases(settings))
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(app, sock, settings.idle_timeout))
    finally:
        app.close()
    return 0


async def _serve(app: App, sock: socket.socket, idle_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    server = Server(app, idle_timeout, now=loop.time())
    listener = await loop.create_server(lambda: Connection(server), sock=sock, backlog=BACKLOG)
    stop = asyncio.Event()
    for signo in STOP_SIGNALS:
        loop.add_signal_handler(signo, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked in a forked worker
    sweeper = loop.call_later(server.sweep_interval, _sweep, loop, server)
    await stop.wait()
    listener.close()  # stop accepting; what was accepted is answered
    server.drain()
    await server.drained()
    sweeper.cancel()


def _sweep(loop: asyncio.AbstractEventLoop, server: Server) -> None:
    server.sweep(loop.time())
    loop.call_later(server.sweep_interval, _sweep, loop, server)


# --- Workers (`--workers N`) -----------------------------------------------------------------


def supervise(workers: int, work: Callable[[], int]) -> int:
    """Run `work` in `workers` forked processes until SIGTERM/SIGINT; replace any that dies.

    Signals are blocked and taken one at a time by `sigwaitinfo` in one loop (no handler runs
    in between). Returns 0 when every worker stopped cleanly after the signal, else 1.
    """
    waited = {*STOP_SIGNALS, signal.SIGCHLD}
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    children = {_fork(work): n for n in range(workers)}
    stopping, failed = False, False
    while children:
        info = signal.sigwaitinfo(waited)
        if info.si_signo != signal.SIGCHLD:
            if not stopping:
                stopping = True
                for pid in children:
                    os.kill(pid, signal.SIGTERM)
            continue
        for pid, code in _reap():
            if children.pop(pid, None) is None:
                continue
            if stopping:
                failed = failed or code != 0
                continue
            print(f"microforum: worker {pid} exited with {code}; starting another",
                  file=sys.stderr, flush=True)  # fmt: skip
            time.sleep(RESPAWN_DELAY)
            children[_fork(work)] = 0
    return 1 if failed else 0


def _reap() -> list[tuple[int, int]]:
    """(pid, exit code) of every child that has ended (negative code: killed by that signal)."""
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, os.waitstatus_to_exitcode(status)))


def _fork(work: Callable[[], int]) -> int:
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the worker: never returns into the supervisor's code
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        die_with_parent(parent)
        code = work()
    except BaseException:  # a worker reports anything, then exits
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
