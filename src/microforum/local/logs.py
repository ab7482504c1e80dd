"""`microforum logs [SERVICE] [--follow] [--since DURATION]`: the local stack's log files, read.

The files are the supervisor's (local/replicalogs.py): one per replica and one for the
supervisor, rotated, each line stamped with its time. Lines are interleaved in time, shown with
the replica's prefix as `up` shows them (`users-2     | ...`). SERVICE keeps one service's
replicas (or one replica, by its id); `--since 10m` keeps the last ten minutes; `--follow` then
keeps printing new lines, as `docker compose logs -f` does, across rotations and new replicas.

Pure parts: `parse_duration`, `parse_line`, `merge`; the shell reads files.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from microforum.errors import UsageError
from microforum.local.replicalogs import SUFFIX, timestamp

PREFIX_WIDTH = 12
FOLLOW_INTERVAL = 0.25  # seconds between looks at the files
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")

Line = tuple[str, str, str]  # (timestamp, source, text)


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h30m', '2d' -> seconds; UsageError otherwise."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(f"--since {text!r}: not a duration", hint="use e.g. 30s, 10m, 1h30m or 2d")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_line(source: str, raw: str) -> Line:
    """A file's line as (timestamp, source, text); a line without a stamp sorts first."""
    if _STAMP.match(raw):
        return raw[:24], source, raw[25:]
    return "", source, raw


def merge(streams: Iterable[Iterable[Line]], since: str = "") -> Iterator[Line]:
    """Each stream is in time order; all of them interleaved in time, from `since` on."""
    return (line for line in heapq.merge(*streams) if line[0] >= since)


def show(line: Line) -> str:
    """As `up` prints it: the source padded to 12 (and a space after a longer one), `| `, text."""
    width = max(PREFIX_WIDTH, len(line[1]) + 1)
    return f"{line[1]:<{width}}| {line[2]}"


def source_of(path: Path) -> str:
    """users-2.log, users-2.log.1 -> users-2."""
    return path.name.split(SUFFIX)[0]


def wanted(source: str, service: str | None) -> bool:
    return service is None or source == service or source.rsplit("-", 1)[0] == service


def files_by_source(directory: Path, service: str | None) -> dict[str, list[Path]]:
    """Each source's files, oldest first (users-2.log.2, users-2.log.1, users-2.log)."""
    out: dict[str, list[Path]] = {}
    for path in sorted(directory.glob(f"*{SUFFIX}*")) if directory.is_dir() else []:
        rest = path.name.split(SUFFIX, 1)[1]
        if rest and not (rest.startswith(".") and rest[1:].isdigit()):
            continue
        if wanted(source_of(path), service):
            out.setdefault(source_of(path), []).append(path)
    for paths in out.values():
        paths.sort(key=lambda p: -int(p.name.rsplit(".", 1)[1]) if p.suffix != SUFFIX else 0)
    return out


def _read(source: str, paths: list[Path]) -> Iterator[Line]:
    for path in paths:
        try:
            with path.open(encoding="utf-8", errors="replace") as fh:
                for raw in fh:
                    yield parse_line(source, raw.rstrip("\n"))
        except OSError:
            continue


@dataclass
class _Tail:
    """A file being followed: where we are in it, and the partial line read so far."""

    path: Path
    source: str
    fd: int = -1
    inode: int = 0
    partial: bytes = b""

    def poll(self) -> list[Line]:
        """Lines completed since the last poll, across a rotation of the file."""
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            inode = 0
        out = self._drain()
        if inode and inode != self.inode:  # rotated (or new): the rest of the old one was read
            if self.fd >= 0:
                os.close(self.fd)
            self.fd, self.inode, self.partial = -1, inode, b""
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return out
            out += self._drain()
        return out

    def _drain(self) -> list[Line]:
        if self.fd < 0:
            return []
        data = self.partial
        while chunk := os.read(self.fd, 1 << 16):
            data += chunk
        *whole, self.partial = data.split(b"\n")
        return [parse_line(self.source, raw.decode("utf-8", "replace")) for raw in whole]


def print_logs(directory: Path, service: str | None, since: float | None, follow: bool,
               out: Callable[[str], None], *, clock: Callable[[], float] = time.time,
               keep_going: Callable[[], bool] = lambda: True) -> int:  # fmt: skip
    """Print the lines (then, following, new ones until `keep_going()` is false); how many."""
    cutoff = timestamp(clock() - since).decode().rstrip() if since is not None else ""
    sources = files_by_source(directory, service)
    if not follow:
        lines = merge((_read(s, p) for s, p in sources.items()), cutoff)
        return _print(lines, out)
    # Following: the rotated files are read whole, the current ones through their tails (one
    # reader per file, so no line is printed twice or missed between the two).
    tails = {s: _Tail(paths[-1], s) for s, paths in sources.items()}
    first = [sorted(t.poll()) for t in tails.values()]
    count = _print(merge([*(_read(s, p[:-1]) for s, p in sources.items()), *first], cutoff), out)
    while keep_going():
        time.sleep(FOLLOW_INTERVAL)
        for source, paths in files_by_source(directory, service).items():
            if source not in tails:  # a new replica: from its first line
                tails[source] = _Tail(paths[-1], source)
        count += _print(merge(sorted(t.poll()) for t in tails.values()), out)
    return count


def _print(lines: Iterable[Line], out: Callable[[str], None]) -> int:
    count = 0
    for line in lines:
        out(show(line))
        count += 1
    return count
