#!/usr/bin/env python3
"""Per-request cost of the load balancer without sockets: fake transports drive one client
connection and one keep-alive target connection through N proxied GETs (the access log on),
as under `wrk -c64` against a trivially fast target. What the kernel and uvloop cost per
request is left out: that part is the same for any asyncio proxy (see passthrough.py).

    .venv/bin/python bench/lb_loop.py [REQUESTS]          # µs per request (noisy)
    .venv/bin/python bench/lb_loop.py --instructions      # instructions per request (stable)

`--instructions` runs the loop under callgrind (valgrind) for 1,000 and 3,000 requests and
prints the difference per request: the cost without start-up, identical from run to run within
a few hundred instructions, which is what a shared, noisy machine can compare. It measures the
build `up` would run: put a compiled build first on PYTHONPATH (`python -m microforum.lb.native
--dest DIR`, then `PYTHONPATH=DIR`) to count that one; MICROFORUM_NATIVE=0 is set for the child.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def proxy(requests: int, data_dir: str) -> float:
    """Seconds for `requests` proxied GETs through one client and one target connection."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lb"))
    from fakes import Rig  # the tests' in-memory rig (tests/lb/fakes.py)

    rig = Rig(data_dir, keep=False)
    client, backend = rig.client, rig.backend
    started = time.perf_counter()
    for _ in range(requests):
        client.data_received(REQUEST)
        backend.data_received(RESPONSE)
    elapsed = time.perf_counter() - started
    rig.lb.ctx.log.close()
    return elapsed


def instructions() -> int:
    """Instructions per proxied request: callgrind totals for 3,000 minus 1,000 requests."""
    totals = []
    for requests in (1000, 3000):
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             sys.executable, __file__, str(requests)],
            capture_output=True, text=True, env={**os.environ, "MICROFORUM_NATIVE": "0"},
        )  # fmt: skip
        found = re.search(r"refs:\s*([\d,]+)", run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(f"callgrind run failed:\n{run.stderr[-2000:]}")
        totals.append(int(found.group(1).replace(",", "")))
    return (totals[1] - totals[0]) // 2000


def main(argv: list[str]) -> int:
    if argv[:1] == ["--instructions"]:
        print(f"{instructions():,} instructions per proxied request")
        return 0
    requests = int(argv[0]) if argv else 20000
    with tempfile.TemporaryDirectory() as data_dir:
        elapsed = asyncio.run(proxy(requests, data_dir))
    from microforum.lb import exchange

    build = "interpreted" if exchange.__file__.endswith(".py") else "compiled"
    print(f"{requests} requests, {elapsed / requests * 1e6:.1f} µs each ({build})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
