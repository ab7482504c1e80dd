"""wrk: its command line, its Lua scripts, and the parsing of its `--latency` output (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([0-9.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: totals, throughput and latency percentiles in milliseconds."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx_3xx: int
    socket_errors: int


def to_ms(value: str, unit: str) -> float:
    """Convert a wrk duration (`412.44us`, `3.05ms`, `1.00m`) to milliseconds."""
    return float(value) * _TIME_UNITS_MS[unit]


def parse(text: str) -> WrkResult:
    """Parse the output of `wrk --latency`; raise ValueError when it has no summary."""
    total = re.search(r"(\d+) requests in " + _TIME, text)
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not total or not rps:
        raise ValueError(f"not a wrk summary: {text.strip()[-300:]!r}")
    percentiles = {
        int(p): to_ms(v, u) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+" + _TIME, text, re.M)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(total.group(1)),
        duration_s=to_ms(total.group(2), total.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=percentiles.get(50, float("nan")),
        p75_ms=percentiles.get(75, float("nan")),
        p90_ms=percentiles.get(90, float("nan")),
        p99_ms=percentiles.get(99, float("nan")),
        non_2xx_3xx=int(non_ok.group(1)) if non_ok else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def argv(url: str, connections: int, seconds: float, script: str | None = None) -> list[str]:
    """The wrk command line: one thread, `connections` connections, latency percentiles."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    if script:
        args += ["-s", script]
    return [*args, url]


def rotate_script(paths: list[str]) -> str:
    """A wrk Lua script sending GET requests to `paths` in turn (a mix of routes)."""
    quoted = ", ".join(json.dumps(p) for p in paths)
    return (
        f"local paths = {{{quoted}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\n'
        "end\n"
    )


def post_script(path: str, body: dict[str, object]) -> str:
    """A wrk Lua script sending the same JSON POST to `path` on every request."""
    return (
        'wrk.method = "POST"\n'
        f"wrk.path = {json.dumps(path)}\n"
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
