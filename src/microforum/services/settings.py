"""Settings of one service process, read from the environment and validated at start-up.

One frozen `Settings`, built by `load_settings(env, overrides)`: command-line flags override
the environment, which overrides the defaults (`microforum.spec.defaults`). Anything wrong is
refused with one line naming the variable and the fix (`UsageError`, exit code 2).

| variable | meaning | default |
|---|---|---|
| `PORT` | listening port | 3000 (the container port) |
| `HOST` | listening address | 127.0.0.1 (the images set 0.0.0.0) |
| `DATABASE_URL` | `sqlite:///path.db` or `postgresql://...` | one SQLite file per service |
| `USERS_DATABASE_URL`, ... | per-resource override of `DATABASE_URL` | `DATABASE_URL` |
| `USERS_DATABASE_SECRET`, ... | the same as a Secrets Manager JSON secret (what ECS injects) | - |
| `DATABASE_CA_BUNDLE` | PEM certificates libpq verifies the server's against (catrust.py) | - |
| `DATA_DIR` | where the default SQLite files live | `./data` |
| `API_URL` | base URL through which other services are reached | the local load balancer |
| `USERS_URL`, `THREADS_URL`, `POSTS_URL` | per-service override of `API_URL` | `API_URL` |
| `WORKERS` | server worker processes | 1 |
| `DEPENDENCY_TIMEOUT` | seconds one call to another service may take (3 attempts) | 2 |
| `IDLE_TIMEOUT` | seconds a client connection may stay idle before the service closes it | 75 |
"""

from __future__ import annotations

import functools
import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from microforum.errors import UsageError
from microforum.spec.defaults import CONTAINER_PORT, LOCAL_PORT, TARGET_KEEP_ALIVE_MARGIN
from microforum.spec.defaults import IDLE_TIMEOUT as LB_IDLE_TIMEOUT

SERVICES = ("users", "threads", "posts", "monolith")
# The resources each service owns; the monolith owns them all (in the same files).
OWNED = {
    "users": ("users",),
    "threads": ("threads",),
    "posts": ("posts",),
    "monolith": ("users", "threads", "posts"),
}
# Loopback unless told otherwise: a service started by hand is not reachable from the network.
# The images set HOST=0.0.0.0 (a container's port is published from its own interface), and
# the local supervisor passes 127.0.0.1 to the replicas it starts.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = "data"
DEFAULT_API_URL = f"http://127.0.0.1:{LOCAL_PORT}"
SECRET_KEYS = ("username", "password", "host")  # a database secret's keys that must be there

# Cross-service calls: each attempt may take this long, and is tried this many times, with this
# pause between attempts (seconds). Worst case before a 503: about 3 * 2 + 0.1 + 0.2 s.
DEPENDENCY_TIMEOUT = 2.0
DEPENDENCY_ATTEMPTS = 3
DEPENDENCY_BACKOFF = 0.1
DEPENDENCY_RETRY_AFTER = 1  # seconds, in the Retry-After of the 503 when one did not answer

# Longer than the load balancer's idle timeout, as AWS asks of targets, so that the balancer,
# not the target, closes an idle pooled connection (no request races a close): docs/alb.md §D.6.
# deploy sets IDLE_TIMEOUT from the stack's own idle timeout the same way.
IDLE_TIMEOUT = float(LB_IDLE_TIMEOUT + TARGET_KEEP_ALIVE_MARGIN)

# Seconds a client is asked to wait (`Retry-After`) before retrying a 503 because the database
# did not answer: about one health-check interval; a restarted RDS instance takes longer, a
# replaced stale connection much less (docs/store.md).
STORAGE_RETRY_AFTER = 5
# A delete of a referenced record (user, thread) marks it for at most this long while it asks
# whether anything refers to it (docs/consistency.md): longer than the slowest answer those
# questions can get (two calls of DEPENDENCY_ATTEMPTS attempts), short enough that the mark of
# a replica killed mid-delete soon stops refusing new references.
PENDING_DELETE_TTL = 60.0
# A POST's answer is kept this long for a retry with the same Idempotency-Key (docs/api.md).
IDEMPOTENCY_TTL = 24 * 3600.0

MAX_BODY_BYTES = 1024 * 1024  # larger request bodies get 413
MAX_WORKERS = 64


@dataclass(frozen=True)
class Settings:
    """Everything a service process needs to know, validated."""

    service: str
    host: str = DEFAULT_HOST
    port: int = CONTAINER_PORT
    workers: int = 1
    # resource name -> database URL (the monolith's three may share one URL)
    databases: Mapping[str, str] = field(default_factory=dict)
    # resource name -> base URL of the service that owns it (for resources this one does not own)
    peers: Mapping[str, str] = field(default_factory=dict)
    dependency_timeout: float = DEPENDENCY_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT  # seconds before an idle client connection is closed

    def owns(self, resource: str) -> bool:
        """True when this process stores `resource` itself."""
        return resource in OWNED[self.service]


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}: must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name}: must be {low}..{high}, got {value}")
    return value


def _seconds(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}: must be a number of seconds, got {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{name}: must be {low:g}..{high:g} seconds, got {raw}")
    return value


def check_database_url(name: str, url: str) -> str:
    """Return `url` when it is a sqlite:///path or postgresql:// URL, else raise UsageError."""
    parsed = urllib.parse.urlsplit(url)
    if url.startswith("sqlite:///") and sqlite_path(url).strip("/"):
        return url
    if parsed.scheme in ("postgresql", "postgres") and (parsed.netloc or parsed.query):
        return url
    raise UsageError(
        f"{name}: must be sqlite:///path/to/file.db or postgresql://user@host:port/db, "
        f"got {url!r} (a relative SQLite path after three slashes, an absolute one after four)"
    )


def sqlite_path(url: str) -> str:
    """The file a `sqlite:///` URL names: relative after three slashes, absolute after four
    (SQLAlchemy's convention: `sqlite:///data/users.db`, `sqlite:////var/lib/users.db`)."""
    return urllib.parse.unquote(url[len("sqlite:///") :])


def _http_url(name: str, url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise UsageError(f"{name}: must be an http://host:port URL, got {url!r}")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"{name}: bad port in {url!r}") from None
    return url.rstrip("/")


def secret_url(name: str, raw: str) -> str:
    """The postgresql:// URL of a Secrets Manager database secret: the JSON RDS gives its
    secrets (username, password, host, port, dbname; docs/deploying.md#database). TLS comes
    from libpq's PGSSLMODE and PGSSLROOTCERT, which deploy sets in the task's environment."""
    try:
        secret = json.loads(raw)
    except ValueError:
        secret = None
    if not isinstance(secret, dict) or not all(isinstance(secret.get(k), str) for k in SECRET_KEYS):
        raise UsageError(f"{name}: must be a JSON object with the strings {', '.join(SECRET_KEYS)}")
    quote = functools.partial(urllib.parse.quote, safe="")
    port = secret.get("port") or 5432
    dbname = secret.get("dbname") or secret["username"]
    return (
        f"postgresql://{quote(secret['username'])}:{quote(secret['password'])}"
        f"@{secret['host']}:{port}/{quote(str(dbname))}"
    )


def resource_databases(service: str, env: Mapping[str, str], flag: str | None = None) -> dict[str, str]:
    """Each resource `service` stores -> its database URL: `flag` (--database), then
    <RESOURCE>_DATABASE_URL, <RESOURCE>_DATABASE_SECRET, DATABASE_URL, else a SQLite file."""
    resources = OWNED[service]
    url, name = (flag, "--database") if flag else (env.get("DATABASE_URL"), "DATABASE_URL")
    data_dir = os.path.abspath(env.get("DATA_DIR") or DEFAULT_DATA_DIR)
    found = {}
    for resource in resources:
        own, secret = f"{resource.upper()}_DATABASE_URL", f"{resource.upper()}_DATABASE_SECRET"
        if flag:
            found[resource] = check_database_url(name, flag)
        elif env.get(own):
            found[resource] = check_database_url(own, env[own])
        elif env.get(secret):
            found[resource] = secret_url(secret, env[secret])
        elif url:
            found[resource] = check_database_url(name, url)
        else:
            # Without DATABASE_URL every resource has its own file, named after it, so the
            # monolith reads the very files the users, threads and posts services write.
            found[resource] = f"sqlite:///{os.path.join(data_dir, resource)}.db"
    return found


def _peers(service: str, env: Mapping[str, str]) -> dict[str, str]:
    base = _http_url("API_URL", env.get("API_URL") or DEFAULT_API_URL)
    peers = {}
    for resource in ("users", "threads", "posts"):
        if resource in OWNED[service]:
            continue
        name = f"{resource.upper()}_URL"
        peers[resource] = _http_url(name, env[name]) if env.get(name) else base
    return peers


def load_settings(
    service: str,
    env: Mapping[str, str],
    *,
    host: str | None = None,
    port: int | None = None,
    database: str | None = None,
    workers: int | None = None,
) -> Settings:
    """Build validated settings: keyword arguments (CLI flags) win over `env`, then defaults."""
    if service not in SERVICES:
        raise UsageError(f"serve: unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    if port is None:
        port = _int("PORT", env.get("PORT") or str(CONTAINER_PORT), 0, 65535)
    elif not 0 <= port <= 65535:
        raise UsageError(f"--port: must be 0..65535, got {port}")
    if workers is None:
        workers = _int("WORKERS", env.get("WORKERS") or "1", 1, MAX_WORKERS)
    elif not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers: must be 1..{MAX_WORKERS}, got {workers}")
    host = host or env.get("HOST") or DEFAULT_HOST
    return Settings(
        service=service,
        host=host,
        port=port,
        workers=workers,
        databases=resource_databases(service, env, database),
        peers=_peers(service, env),
        dependency_timeout=_seconds(
            "DEPENDENCY_TIMEOUT", env.get("DEPENDENCY_TIMEOUT") or str(DEPENDENCY_TIMEOUT), 0.05, 60
        ),
        idle_timeout=_seconds("IDLE_TIMEOUT", env.get("IDLE_TIMEOUT") or str(IDLE_TIMEOUT), 0.1, 4000),
    )
