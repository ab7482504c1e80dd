# ruff: noqa: RUF001, RUF003  (× is the report's notation: "1.06×")
"""Writes (or reads) through the whole local stack, two source trees side by side: is one change faster?

Starts `microforum up` from each tree (its own venv, its own compiled load balancer if built:
`python -m microforum.lb.native` in that tree first) at the same time, on one throw-away
PostgreSQL server (a database per service and tree) or on SQLite (`--sqlite`), then sends
POST /api/posts with wrk (-c16, as scenario (w)) to each in turn, `--rounds` times (`--reads`:
scenario (c)'s mix of the 7 original read routes at -c64 instead). Prints
req/s and the CPU per request of each stack (its processes and, on PostgreSQL, the server's
backends of its databases) per round, their medians, and the ratio of A's req/s to B's;
with `--by-process`, each process's median CPU per request too (where a change moved the cost).
Both stacks exist throughout, so a noisy moment hurts both alike; the ratio of two runs of the
same tree shows the floor of what it can tell apart (about ±3 % here).

    .venv/bin/python bench/write_ab.py TREE_A TREE_B [--rounds 4] [--seconds 5] [--sqlite] [--reads]
        [--by-process]
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mfbench import configs, wrk
from mfbench.postgres import Postgres
from mfbench.procfs import HZ, descendants, read_cmdline, read_pid_stat
from mfbench.procs import free_port
from mfbench.stacks import ALL_ROUTES, POST_BODY, post_ok

SERVICES = ("users", "threads", "posts")


def _start(
    tree: str, name: str, tmp: Path, urls: dict[str, str] | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    stack = tmp / f"{name}.yaml"
    spec = configs.forum_stack(port, str(tmp / f"data-{name}"), urls)
    stack.write_text(yaml.safe_dump(spec, sort_keys=False))
    argv = [f"{tree}/.venv/bin/microforum", "up", "--stack", str(stack), "--port", str(port)]
    with open(tmp / f"{name}.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    for _ in range(200):
        time.sleep(0.3)
        try:
            if post_ok(port)[0] == 201:
                return proc, port
        except OSError:
            continue
    raise RuntimeError(f"{name}: the stack did not answer POST /api/posts; see {tmp / f'{name}.log'}")


def _cpu_ticks(pids: list[int]) -> dict[int, int]:
    return {pid: stat.cpu_ticks for pid in pids if (stat := read_pid_stat(pid)) is not None}


def _label(pid: int) -> str:
    """A process's name in the breakdown: its command line without paths, or a PostgreSQL
    backend's title without its state (which changes while it works)."""
    words = read_cmdline(pid).split()
    if words[:1] == ["postgres:"]:
        return " ".join(words[:4]) or str(pid)
    return " ".join(w for w in words if "/" not in w or w.startswith("-"))[:60] or str(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs=2, metavar="TREE")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--reads", action="store_true", help="the read mix of (c), -c64, not POSTs")
    parser.add_argument("--by-process", action="store_true", help="CPU per request of each process")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="write-ab-"))
    script = tmp / "load.lua"
    if args.reads:
        script.write_text(wrk.rotate_script(ALL_ROUTES))
    else:
        script.write_text(wrk.post_script("/api/posts", POST_BODY))
    connections = "-c64" if args.reads else "-c16"
    server = None if args.sqlite else Postgres([f"{n}_{s}" for n in "ab" for s in SERVICES])
    stacks: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, tree in zip("ab", args.trees, strict=True):
            urls = None if server is None else {s: server.url(f"{name}_{s}") for s in SERVICES}
            stacks[name] = _start(tree, name, tmp, urls)
            print(f"{name}: {tree}: {(tmp / f'{name}.log').read_text().splitlines()[0]}")
        url = "http://127.0.0.1:{}/"
        for _, port in stacks.values():  # warm up
            warm = ["wrk", "-t1", connections, "-d2s", "-s", str(script), url.format(port)]
            subprocess.run(warm, capture_output=True, check=False)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in stacks}
        by_process: dict[str, dict[str, list[float]]] = {name: {} for name in stacks}
        for _ in range(args.rounds):
            for name, (proc, port) in stacks.items():
                server_pids = [] if server is None else server.pids()
                pids = descendants(proc.pid) + [p for p in server_pids if f" {name}_" in read_cmdline(p)]
                before = _cpu_ticks(pids)
                argv = ["wrk", "-t1", connections, f"-d{args.seconds}s", "-s", str(script), url.format(port)]
                out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
                after = _cpu_ticks(pids)
                ticks = sum(after.values()) - sum(before.get(pid, 0) for pid in after)
                requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                for pid, spent in after.items():
                    per_request = (spent - before.get(pid, 0)) / HZ / requests * 1e6
                    by_process[name].setdefault(_label(pid), []).append(per_request)
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
                results[name].append((rps, ticks / HZ / requests * 1e6))
                print(f"{name}: {rps:7.0f} req/s, {results[name][-1][1]:5.0f} µs CPU per request", flush=True)
        medians = {name: statistics.median(rps for rps, _ in runs) for name, runs in results.items()}
        for name, runs in results.items():
            cpu = statistics.median(us for _, us in runs)
            print(f"{name}: median {medians[name]:.0f} req/s, {cpu:.0f} µs CPU per request")
            if args.by_process:
                for label, spent in sorted(by_process[name].items(), key=lambda item: -sum(item[1])):
                    print(f"   {statistics.median(spent):6.1f} µs  {label}")
        print(f"a / b: {medians['a'] / medians['b']:.3f}× req/s")
    finally:
        for proc, _ in stacks.values():
            proc.send_signal(signal.SIGINT)
        for proc, _ in stacks.values():
            proc.wait(30)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
