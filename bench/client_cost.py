"""CPU per cross-service lookup, client side, for the clients the services could use.

Starts `backend.py` (a fixed keep-alive answer) and, in this process on uvloop, makes the same
sequential GETs with each client: the services' own pooled client
(`microforum.services.client.Origin`), a fresh connection per lookup (what the services did
before it), and, when installed, aiohttp's and httpx's pooled clients. Prints the CPU time of
this process per GET (user + system), the median of `--rounds` rounds, interleaved so that a
noisy neighbour hurts every client alike. The ratio to `Origin` is the figure to quote.

    .venv/bin/python bench/client_cost.py [--requests 3000] [--rounds 5]

aiohttp and httpx are not dependencies of microforum: install them beside it to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from microforum.services.client import Origin

HERE = Path(__file__).parent
Get = Callable[[], Awaitable[Any]]


async def _fresh_connection(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /api/users/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await reader.read()
    writer.close()


async def _clients(url: str, host: str, port: int) -> dict[str, tuple[Get, Callable[[], Any]]]:
    origin = Origin(url)
    found: dict[str, tuple[Get, Callable[[], Any]]] = {
        "Origin (pooled, httptools)": (lambda: origin.get("/api/users/1", [], 5.0), origin.close),
        "fresh connection per GET": (lambda: _fresh_connection(host, port), lambda: None),
    }
    try:
        import aiohttp

        session = aiohttp.ClientSession()

        async def aiohttp_get() -> bytes:
            async with session.get(url + "/api/users/1") as response:
                return await response.read()

        found["aiohttp ClientSession"] = (aiohttp_get, session.close)
    except ImportError:
        pass
    try:
        import httpx

        client = httpx.AsyncClient()
        found["httpx AsyncClient"] = (lambda: client.get(url + "/api/users/1"), client.aclose)
    except ImportError:
        pass
    return found


async def _measure(get: Get, requests: int) -> float:
    for _ in range(50):  # warm: connections open, code paths hot
        await get()
    started = time.process_time()
    for _ in range(requests):
        await get()
    return (time.process_time() - started) / requests * 1e6


async def main(requests: int, rounds: int, port: int) -> None:
    clients = await _clients(f"http://127.0.0.1:{port}", "127.0.0.1", port)
    cost: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, (get, _close) in clients.items():
            cost[name].append(await _measure(get, requests))
    base = statistics.median(cost["Origin (pooled, httptools)"])
    print(f"client CPU per GET, median of {rounds} rounds of {requests} ({sys.version.split()[0]})")
    for name, values in cost.items():
        median = statistics.median(values)
        print(f"  {name:30} {median:7.1f} µs  {median / base:5.2f}x")
    for _get, close in clients.values():
        result = close()
        if asyncio.iscoroutine(result):
            await result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    port = 20000 + os.getpid() % 20000
    backend = subprocess.Popen(
        [sys.executable, str(HERE / "backend.py")], env={**os.environ, "PORT": str(port)}
    )
    try:
        time.sleep(0.5)
        import uvloop

        uvloop.run(main(args.requests, args.rounds, port))
    finally:
        backend.terminate()
        backend.wait()
