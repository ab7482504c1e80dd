"""Each replica's output, and the supervisor's, kept in its own rotated file for `microforum logs`.

`<data_dir>/logs/<source>.log` (e.g. `users-2.log`, `microforum.log`), one line per output line,
each starting with when it was received, UTC to the millisecond, then a space:

    2026-12-05T04:25:01.123Z GET /api/users 200

so `logs` can interleave the replicas in time and filter by `--since`. Files rotate by size
(`RotatingFile`: `users-2.log.1` is the previous one) and are written by a `LogWriter` thread
per source: the event loop never waits for the disk; lines the disk cannot take in time are
dropped and counted, like the terminal's (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from microforum.logfiles import RotatingFile
from microforum.logwriter import LogWriter

LOG_DIR = "logs"
SUFFIX = ".log"


def timestamp(now: float) -> bytes:
    """`now` (epoch seconds) as the lines' prefix: 2026-12-05T04:25:01.123Z and a space."""
    whole = int(now)
    millis = int((now - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)).encode() + b".%03dZ " % millis


def stamp(block: bytes, prefix: bytes) -> bytes:
    """Every line of `block` (whole lines, each ending in b"\\n") with `prefix` in front."""
    return prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n"


class ReplicaLogs:
    """One rotated log file per source, each written from its own thread."""

    def __init__(self, directory: Path, max_bytes: int, files: int,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.directory, self._max_bytes, self._files, self._clock = directory, max_bytes, files, clock
        self._writers: dict[str, LogWriter] = {}

    def write(self, source: str, block: bytes) -> None:
        """Append whole lines from `source`, stamped with the time; never blocks."""
        writer = self._writers.get(source)
        if writer is None:
            try:
                sink = RotatingFile(self.directory / f"{source}{SUFFIX}", self._max_bytes, self._files)
            except OSError:
                return  # no file for this source (the disk refuses): the terminal still has it
            writer = self._writers[source] = LogWriter(sink.write, name=f"{source}{SUFFIX}")
        if not block.endswith(b"\n"):  # the last line of an output that ended without one
            block += b"\n"
        writer.write(stamp(block, timestamp(self._clock())))

    def end(self, source: str) -> None:
        """The source's output ended: its writer finishes in the background."""
        writer = self._writers.pop(source, None)
        if writer is None:
            return
        try:
            asyncio.get_running_loop().run_in_executor(None, writer.close)
        except RuntimeError:  # no event loop (tests): close here
            writer.close()

    def flush(self) -> None:
        """Wait (briefly) until every writer wrote what it has (shutdown, tests)."""
        for writer in list(self._writers.values()):
            writer.flush()

    def close(self) -> None:
        """Write what waits (briefly) and stop every writer."""
        for source in list(self._writers):
            with contextlib.suppress(Exception):
                self._writers.pop(source).close()
