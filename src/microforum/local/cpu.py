"""CPU used by a service's replicas, from /proc (Linux), as ECS's CPUUtilization puts it.

ECSServiceAverageCPUUtilization is the CPU the service's tasks used over a period as a percent
of the CPU they reserve (the task's `cpu` units, 1024 to a vCPU). Locally: the replicas'
user+system time from /proc/<pid>/stat between two readings, over the wall time between them
times the reserved vCPUs. Where /proc cannot be read the figure is None (not measured).
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def cpu_seconds(pid: int) -> float | None:
    """The process's user + system CPU seconds so far; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    # After the command's ")": state is field 3 of stat(5), utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Percent of reserved CPU per service between successive readings."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, dict[int, float]]] = {}

    def percent(self, service: str, pids: Iterable[int], cpu_units: int, now: float) -> float | None:
        used: dict[int, float] = {}
        for pid in pids:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                used[pid] = seconds
        before = self._last.get(service)
        self._last[service] = (now, used)
        if before is None or not used or now <= before[0]:
            return None
        spent = sum(s - before[1].get(pid, s) for pid, s in used.items())
        reserved = (now - before[0]) * len(used) * cpu_units / 1024
        return round(100.0 * spent / reserved, 1) if reserved > 0 else None
