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
        "httptools). Settings come from the environment (PORT, HOST, DATABASE_URL, DATA_DIR, "
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


def run_serve(args: argparse.Namespace) -> int:
    """Validate the settings (exit 2 on a mistake) and serve until SIGTERM."""
    from microforum.services.server import serve

    settings = load_settings(
        args.service,
        os.environ,
        host=args.host,
        port=args.port,
        database=args.database,
        workers=args.workers,
    )
    return serve(settings)
