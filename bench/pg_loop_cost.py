# ruff: noqa: RUF001, RUF003  (× is the report's notation: "0.51×")
"""CPU per PostgreSQL query, client side: through a database thread, or on the event loop.

Starts a throw-away PostgreSQL server (mfbench.postgres), then, in this process on uvloop,
runs the same prepared SELECT by primary key one at a time: from a thread of a
ThreadPoolExecutor awaited with `run_in_executor` (how the services ran every query before
services/pgloop.py), and on the loop with psycopg's AsyncConnection (how they run the
reads that decide whether a record may be referred to, and batches of post inserts, now).
Prints this process's CPU time (user + system) per query, the median of `--rounds`
interleaved rounds; the ratio between the two is the figure to quote.

    .venv/bin/python bench/pg_loop_cost.py [--queries 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mfbench.postgres import Postgres

SQL = "SELECT id FROM users WHERE id = %s AND deleting_until IS NULL"
WARM = 200


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _per_query(query: Callable[[], Awaitable[object]], count: int) -> float:
    for _ in range(WARM):
        await query()
    start = _cpu()
    for _ in range(count):
        await query()
    return (_cpu() - start) / count * 1e6


async def through_a_thread(url: str, count: int) -> float:
    loop = asyncio.get_running_loop()
    with psycopg.connect(url, autocommit=True) as conn, ThreadPoolExecutor(4) as pool:
        cursor = conn.cursor()

        def select() -> object:
            return cursor.execute(SQL, (2,), prepare=True).fetchone()

        return await _per_query(lambda: loop.run_in_executor(pool, select), count)


async def on_the_loop(url: str, count: int) -> float:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = conn.cursor()

        async def select() -> object:
            await cursor.execute(SQL, (2,), prepare=True)
            return await cursor.fetchone()

        return await _per_query(select, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = Postgres(["bench"])
    try:
        url = server.url("bench")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE users (id serial PRIMARY KEY, deleting_until float8)")
            conn.execute("INSERT INTO users DEFAULT VALUES; INSERT INTO users DEFAULT VALUES")
        ways = {"database thread": through_a_thread, "event loop": on_the_loop}
        costs: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                costs[name].append(uvloop.run(way(url, args.queries)))
        medians = {name: statistics.median(values) for name, values in costs.items()}
        for name, median in medians.items():
            rounds = ", ".join(f"{value:.0f}" for value in costs[name])
            print(f"{name:16s} {median:6.1f} µs CPU per query (rounds: {rounds})")
        print(f"event loop / database thread: {medians['event loop'] / medians['database thread']:.2f}×")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
