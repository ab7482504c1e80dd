"""Files only their owner can read, and a log file rotated by size.

The local stack's directory (`.microforum/`: the control token, the access log, the services'
databases) holds what a client sent and what the stack stores: directories are made mode 0700
and files 0600, and existing ones are narrowed to that when opened.

`RotatingFile` keeps a log within `max_bytes x files` on disk, as docker's json-file driver does
with max-size and max-file: when the next write would take `access.log` past `max_bytes`, it
becomes `access.log.1` (`.1` becomes `.2`, ..., the oldest is deleted) and a new file starts.
Its `write` blocks (the disk), so it runs in a `LogWriter`'s thread. See docs/operations.md.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) a directory only its owner can enter, and the files
    directly in it (made by an older version) readable by their owner only; `path`."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    for entry in path.iterdir():
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours: leave it
            mode = entry.lstat().st_mode
            if stat.S_ISREG(mode) and mode & 0o777 != FILE_MODE:
                entry.chmod(FILE_MODE)
    return path


def create_private(path: Path) -> None:
    """Create `path` empty, readable by its owner only, unless it exists (left as it is)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """Open `path` (made mode 0600, an existing file narrowed to it); the file descriptor."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    with contextlib.suppress(OSError):  # not ours to change (another owner): leave it
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    return fd


def rotation_moves(path: Path, files: int) -> list[tuple[Path, Path | None]]:
    """The renames that rotate `path` keeping `files` files in all, oldest first.

    (source, None) deletes the source. With files=1 the file is only emptied (deleted)."""

    def numbered(n: int) -> Path:
        return path if n == 0 else path.with_name(f"{path.name}.{n}")

    moves: list[tuple[Path, Path | None]] = [(numbered(files - 1), None)]
    moves += [(numbered(n), numbered(n + 1)) for n in range(files - 2, -1, -1)]
    return moves


def needs_rotation(size: int, incoming: int, max_bytes: int) -> bool:
    """Whether writing `incoming` bytes to a file of `size` bytes must start a new file first
    (never for an empty file: a block larger than `max_bytes` goes into a file of its own)."""
    return size > 0 and size + incoming > max_bytes


class RotatingFile:
    """Appends to `path`, rotating it by size (see the module docstring); blocking."""

    def __init__(self, path: Path, max_bytes: int, files: int) -> None:
        self.path, self.max_bytes, self.files = path, max_bytes, files
        private_dir(path.parent)
        self._fd = open_private(path)
        self._size = os.fstat(self._fd).st_size

    def __repr__(self) -> str:
        return f"<RotatingFile {self.path} {self._size}/{self.max_bytes} bytes x {self.files}>"

    def write(self, data: bytes) -> None:
        if self._fd < 0:  # a rotation that failed to reopen (it raised then): try again
            self._reopen()
        elif needs_rotation(self._size, len(data), self.max_bytes):
            self._rotate()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _rotate(self) -> None:
        self.close()
        for source, target in rotation_moves(self.path, self.files):
            with contextlib.suppress(FileNotFoundError):
                if target is None:
                    source.unlink()
                else:
                    source.rename(target)
        self._reopen()

    def _reopen(self) -> None:
        self._fd = open_private(self.path)
        self._size = os.fstat(self._fd).st_size
