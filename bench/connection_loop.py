#!/usr/bin/env python3
"""Per-request cost of the services' server without sockets: a fake transport drives one
`Connection` on a uvloop event loop, one request per `data_received`, as under `wrk -c64`.

    .venv/bin/python bench/connection_loop.py [REQUESTS [ROUTE,...]]  # µs per request (noisy)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/connection_loop.py 20000              # instructions (stable)

Run it twice with different REQUESTS and take the difference of the instruction counts:
that is the per-request cost without start-up. The monolith answers every original read route
in turn (cached reads, as a replica answers them most of the time) on fresh seed data, or
only the routes given (comma-separated) after REQUESTS.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

import uvloop

from microforum.services.app import build_app, open_databases
from microforum.services.connection import Connection, Server
from microforum.services.server import prepare
from microforum.services.settings import load_settings

ROUTES = ["/api/users", "/api/users/2", "/api/threads", "/api/threads/2", "/api/posts",
          "/api/posts/in-thread/2", "/api/posts/by-user/2"]  # fmt: skip


def requests_for(routes: list[str]) -> list[bytes]:
    """What wrk sends for each of `routes`."""
    return [
        f"GET {route} HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUser-Agent: wrk\r\n\r\n".encode()
        for route in routes
    ]


class FakeTransport(asyncio.Transport):
    """Counts what is written; never closes, never pauses."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def drive(server: Server, requests: int, sent: list[bytes]) -> int:
    conn = Connection(server)
    transport = FakeTransport()
    conn.connection_made(transport)
    for n in range(requests):
        conn.data_received(sent[n % len(sent)])
        if n % 64 == 63:
            await asyncio.sleep(0)  # let timers (the access log's flush) run, as a loop would
    while server.busy:  # answers still waiting (a first SQLite read waits for a WAL flush)
        await asyncio.sleep(0.001)
    return transport.written


def main() -> int:
    requests = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    sent = requests_for(sys.argv[2].split(",") if len(sys.argv) > 2 else ROUTES)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings("monolith", {"DATA_DIR": tmp})
        prepare(settings)
        app = build_app(settings, open_databases(settings))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the access log
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            server = Server(app)
            runner.run(drive(server, 500, sent))  # warm the caches
            started = time.perf_counter()
            written = runner.run(drive(server, requests, sent))
            elapsed = time.perf_counter() - started
        app.close()
    print(f"{requests} requests, {written} bytes, {elapsed / requests * 1e6:.2f} us/request",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
