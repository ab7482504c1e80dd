"""Run a service under granian (Rust HTTP server, RSGI interface): the production entry point.

The parent process validates the settings, opens each database once to create or migrate its
schema and seed it, then hands over to granian, which binds the socket and runs `workers`
processes. Workers rebuild the app from the settings passed in the environment
(`MICROFORUM_SETTINGS`, JSON) through `app_from_environment`, granian's factory target.
On SIGTERM (or SIGINT) granian stops accepting, lets the workers finish in-flight requests,
calls the app's RSGI shutdown hook (closing the databases) and exits 0.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sqlite3

from microforum.errors import MicroforumError
from microforum.services.app import App, build_app, open_databases
from microforum.services.schema import migrate
from microforum.services.settings import Settings
from microforum.services.storage import StorageUnavailable, redact

SETTINGS_ENV = "MICROFORUM_SETTINGS"
PARENT_ENV = "MICROFORUM_PARENT_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
FACTORY = "microforum.services.server:app_from_environment"


# stdout carries only the JSON access log; the server's own lifecycle messages go to stderr.
GRANIAN_LOGGING = {
    "handlers": {
        "console": {"formatter": "generic", "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler",
                   "stream": "ext://sys.stderr"},
    },
}


def settings_to_env(settings: Settings) -> str:
    """`settings` as the JSON a worker reads back."""
    return json.dumps({
        "service": settings.service, "host": settings.host, "port": settings.port,
        "workers": settings.workers, "databases": dict(settings.databases),
        "peers": dict(settings.peers), "dependency_timeout": settings.dependency_timeout,
    })


def settings_from_env(text: str) -> Settings:
    """The inverse of `settings_to_env`."""
    return Settings(**json.loads(text))


def prepare(settings: Settings) -> None:
    """Create or migrate (and on first start seed) every database the service owns."""
    for resource, url in settings.databases.items():
        try:
            db = open_databases(Settings(settings.service, databases={resource: url}))[resource]
        except (sqlite3.Error, OSError) as exc:
            raise _database_error(resource, url, exc) from exc
        try:
            migrate(db, resource)
        except (StorageUnavailable, sqlite3.Error, OSError) as exc:
            raise _database_error(resource, url, exc) from exc
        finally:
            db.close()


def _database_error(resource: str, url: str, exc: Exception) -> MicroforumError:
    return MicroforumError(
        f"open database {redact(url)} for {resource}: {exc}",
        hint="check DATABASE_URL (or --database): the directory must be writable, the server up",
    )


def check_port(host: str, port: int) -> None:
    """Refuse early, in one line, when the address is taken (granian would print a trace)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise MicroforumError(
                f"listen on {host}:{port}: {exc.strerror}",
                hint="choose another --port (or PORT), or stop what is using it",
            ) from exc


def die_with_parent(parent_pid: int) -> None:
    """Make the kernel kill this worker when granian's main process dies, even by SIGKILL.

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


def app_from_environment() -> App:
    """granian's factory: the app for the settings the parent put in the environment."""
    if PARENT_ENV in os.environ:
        die_with_parent(int(os.environ[PARENT_ENV]))
    settings = settings_from_env(os.environ[SETTINGS_ENV])
    return build_app(settings, open_databases(settings))


def serve(settings: Settings) -> int:
    """Prepare the databases and serve until SIGTERM/SIGINT; return the exit code."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes

    check_port(settings.host, settings.port)
    prepare(settings)
    os.environ[SETTINGS_ENV] = settings_to_env(settings)
    os.environ[PARENT_ENV] = str(os.getpid())
    server = Granian(
        FACTORY,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,  # granian's native interface (the app speaks ASGI too)
        workers=settings.workers,
        loop=Loops.uvloop,
        # One single-threaded Rust runtime per worker: the fastest on one core (measured), and
        # the ALB speaks HTTP/1.1 to its targets.
        runtime_mode=RuntimeModes.st,
        http=HTTPModes.http1,
        log_access=False,  # the app writes its own JSON access log
        log_dictconfig=GRANIAN_LOGGING,
    )
    server.serve()
    return 0
