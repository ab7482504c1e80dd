"""CPU per write through the whole local stack, for two source trees side by side.

Runs `microforum up` (the repository's stack.yaml, on SQLite or PostgreSQL with
`--database-url`) from each source tree given (`PYTHONPATH=TREE/src`, the load balancer
interpreted in both, so the difference is the services'), sends `--posts` POST /api/posts
over a few keep-alive connections, and prints the CPU time of the stack's processes (the
supervisor, the load balancer, every replica; the PostgreSQL server's are not counted) per
POST, the median of `--rounds` interleaved rounds. CPU time, not wall time: what a busy
machine disturbs least (POSTs per second are printed too, for what they are worth on a
shared machine). wrk is not needed.

    .venv/bin/python bench/write_cost.py OLD_TREE NEW_TREE [--posts 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mfbench.procfs import HZ, read_pid_stat

STACK = Path(__file__).resolve().parent.parent / "stack.yaml"
BODY = json.dumps({"thread": 1, "user": 2, "text": "A benchmark post"})
CLIENTS = 16  # as bench/run.py's scenario (d): 16 connections


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tree(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := read_pid_stat(int(entry))) is not None:
            parents[stat.pid] = stat.ppid
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += frontier
    return found


def _ticks(pids: list[int]) -> int:
    return sum(s.cpu_ticks for pid in pids if (s := read_pid_stat(pid)) is not None)


def _post(port: int, count: int, failures: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(count):
        conn.request("POST", "/api/posts", BODY, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            failures.append(response.status)


def _load(port: int, posts: int) -> list[int]:
    failures: list[int] = []
    threads = [
        threading.Thread(target=_post, args=(port, posts // CLIENTS, failures)) for _ in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _up(tree: str, work: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{tree}/src", "MICROFORUM_NATIVE": "0"}
    if database_url:
        env["DATABASE_URL"] = database_url
    stack = work / "stack.yaml"
    stack.write_text(STACK.read_text())
    proc = subprocess.Popen(
        [sys.executable, "-m", "microforum", "up", "--stack", str(stack), "--port", str(port)],
        env=env,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/users/1")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"microforum up from {tree} did not answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="postgresql://… (one database for the stack)")
    args = parser.parse_args()
    cost: dict[str, list[float]] = {tree: [] for tree in args.trees}
    rate: dict[str, list[float]] = {tree: [] for tree in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            with tempfile.TemporaryDirectory() as work:
                proc, port = _up(tree, Path(work), args.database_url)
                try:
                    _load(port, 200)  # warm: connections open, caches filled
                    pids = _tree(proc.pid)
                    before, started = _ticks(pids), time.perf_counter()
                    failures = _load(port, args.posts)
                    used = (_ticks(pids) - before) / HZ
                    rate[tree].append(args.posts / (time.perf_counter() - started))
                finally:
                    proc.send_signal(signal.SIGINT)
                    proc.wait(30)
            if failures:
                raise RuntimeError(f"{tree}: {len(failures)} POSTs failed: {failures[:5]}")
            cost[tree].append(used / args.posts * 1e6)
    base = statistics.median(cost[args.trees[0]])
    base_rate = statistics.median(rate[args.trees[0]])
    print(f"stack CPU per POST /api/posts, and POSTs per second ({CLIENTS} connections; wall")
    print(f"time, so noisy), median of {args.rounds} rounds of {args.posts}")
    for tree, values in cost.items():
        median, per_s = statistics.median(values), statistics.median(rate[tree])
        print(
            f"  {tree:40} {median:8.1f} µs  {median / base:5.2f}x   {per_s:7.0f}/s  {per_s / base_rate:5.2f}x"
        )


if __name__ == "__main__":
    main()
