"""`microforum serve NAME`: run one service (users, threads, posts) or the monolith."""

from __future__ import annotations

import argparse
import os
from typing import Any

from microforum.services.settings import DEFAULT_HOST, SERVICES, load_settings


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `serve` to the `microforum` parser."""
    p = subparsers.add_parser(
        "serve",
        help="run one service (users, threads, posts) or the monolith",
        description="Run a service on its single-threaded HTTP/1.1 server (asyncio, uvloop, "
        "httptools). Settings come from the environment (PORT, HOST, DATABASE_URL or "
        "USERS_DATABASE_URL / USERS_DATABASE_SECRET per resource, DATA_DIR, "
        "API_URL, USERS_URL, THREADS_URL, POSTS_URL, WORKERS, IDLE_TIMEOUT); flags override "
        "them.",
    )
    p.add_argument("service", metavar="NAME", help=f"one of: {', '.join(SERVICES)}")
    p.add_argument("--host", help=f"listening address (env HOST; default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, help="listening port (env PORT; default 3000)")
    p.add_argument(
        "--database",
        metavar="URL",
        help="sqlite:///relative.db, sqlite:////absolute.db or postgresql://... "
        "(env DATABASE_URL; default $DATA_DIR/<resource>.db)",
    )
    p.add_argument("--workers", type=int, help="worker processes (env WORKERS; default 1)")
    p.set_defaults(func=run_serve)
    p = subparsers.add_parser(
        "db-setup",
        help="give each service a PostgreSQL database and role of its own (deploy runs it)",
        description="Create, once, each resource's PostgreSQL role and database (users, threads, "
        "posts), the role its owner and the only one that may connect; a second run changes "
        "nothing. The administrator's connection comes from DATABASE_URL or DATABASE_SECRET, "
        "each resource's from USERS_DATABASE_URL or USERS_DATABASE_SECRET (THREADS_, POSTS_): "
        "the same variables the services read. deploy runs it as an ECS task before the "
        "services roll.",
    )
    p.set_defaults(func=run_db_setup)


def run_db_setup(args: argparse.Namespace) -> int:
    """Set up the resources' databases and roles; exit 0 when done, 1 on a server error."""
    from microforum.services.catrust import install_ca_bundle
    from microforum.services.dbsetup_apply import run_db_setup as run

    install_ca_bundle(os.environ)
    return run(os.environ, lambda line: print(line, flush=True))


def run_serve(args: argparse.Namespace) -> int:
    """Validate the settings (exit 2 on a mistake) and serve until SIGTERM."""
    from microforum.services.catrust import install_ca_bundle
    from microforum.services.server import serve

    settings = load_settings(
        args.service,
        os.environ,
        host=args.host,
        port=args.port,
        database=args.database,
        workers=args.workers,
    )
    install_ca_bundle(os.environ)  # after the settings: a mistake there writes nothing
    return serve(settings)
