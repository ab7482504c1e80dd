"""Reading /proc: CPU ticks, RSS, parent pids and the machine's busy time (parsers are pure)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class PidStat:
    """The fields of /proc/PID/stat the harness uses (CPU in clock ticks)."""

    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime, every thread of the process


def parse_pid_stat(text: str) -> PidStat:
    """Parse /proc/PID/stat; the command name may hold spaces and parentheses."""
    pid = int(text.split(" ", 1)[0])
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state(3) ppid(4) ... utime(14) stime(15), counted from field 3.
    return PidStat(pid=pid, ppid=int(fields[1]), cpu_ticks=int(fields[11]) + int(fields[12]))


def parse_vmrss_kb(text: str) -> int:
    """The VmRSS line of /proc/PID/status in kB (0 for a kernel thread or a zombie)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def parse_busy_ticks(proc_stat: str) -> int:
    """CPU ticks spent by processes on all cores, from the `cpu` line of /proc/stat.

    user + nice + system + steal. irq and softirq are left out: the loopback traffic of the
    benchmark itself is accounted there, and it would be counted as other processes' noise.
    """
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            return v[0] + v[1] + v[2] + (v[7] if len(v) > 7 else 0)
    raise ValueError("no cpu line in /proc/stat")


def read_pid_stat(pid: int) -> PidStat | None:
    """/proc/PID/stat, or None when the process is gone."""
    try:
        return parse_pid_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def read_rss_kb(pid: int) -> int:
    """Resident set size of `pid` in kB (0 when gone)."""
    try:
        return parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0


def read_cmdline(pid: int) -> str:
    """The command line of `pid`, space-joined ('' when gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def read_busy_ticks() -> int:
    """The machine's busy ticks so far (see `parse_busy_ticks`)."""
    return parse_busy_ticks(Path("/proc/stat").read_text())


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from a scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = read_pid_stat(int(entry.name))
            if st:
                children.setdefault(st.ppid, []).append(st.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found
