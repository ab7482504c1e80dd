"""The version of a WAL-mode SQLite database, read from its wal-index header without a query.

Every connection of every process maps the database's `-shm` file and finds the database's
state in the wal-index header there (https://www.sqlite.org/walformat.html, 2.2 "The WAL-Index
Header"): a commit rewrites it (mxFrame, the running frame checksum; iChange counts commits), a
WAL restart draws new salts. So its 48 bytes identify the committed content: equal bytes, no
commit in between. Reading them is a memory read, where `PRAGMA data_version` opens a read
transaction (file locks: several system calls).

A writer writes the header's second copy, then its first; a reader that finds both copies
equal read a whole header (SQLite's own readers do the same, `walIndexTryHdr` in wal.c).

File descriptors: closing *any* descriptor of a file drops every POSIX lock this process holds
on it, SQLite's included (https://www.sqlite.org/howtocorrupt.html, 2.2). SQLite keeps a shared
lock on the `-shm` file for as long as a connection is open, and another process that finds no
such lock re-initialises the wal-index under our feet (readers then fail with "locking
protocol"). So a mapping is opened once per file and process and shared, and its descriptors are
closed only when the last user closes it, after its SQLite connections (see `close`); a file
that turns out unusable keeps its descriptor open until the process exits.
"""

from __future__ import annotations

import mmap
import os
import sys

WAL_INDEX_VERSION = 3007000  # its iVersion: the one format every SQLite since 3.7.0 writes
WAL_HEADER_BYTES = 48
WAL_IS_INIT = 12  # offset of the isInit byte (after iVersion, unused, iChange)
WAL_MX_FRAME = 16  # offset of mxFrame, the frames in the WAL (a native 32-bit unsigned int)
TORN_READ_TRIES = 3


class _Mapping:
    """One `-shm` file mapped by this process: its descriptor, and how many use it."""

    __slots__ = ("fd", "shm", "users")

    def __init__(self, fd: int, shm: mmap.mmap) -> None:
        self.fd, self.shm, self.users = fd, shm, 0


_OPEN: dict[str, _Mapping] = {}  # by `-shm` path
# Descriptors (and mappings) of `-shm` files we could not use: never closed, see above.
_KEPT: list[int | mmap.mmap] = []


class WalIndex:
    """A read-only view of one database's wal-index header."""

    def __init__(self, path: str, mapping: _Mapping) -> None:
        self._path = path
        self._mapping = mapping
        self._shm = mapping.shm

    @classmethod
    def open(cls, db_path: str) -> WalIndex | None:
        """The wal-index of `db_path`, or None when it has no `-shm` file of the known format.

        Call it while a connection to the database is open and has read it in WAL mode, and
        `close` it after that connection closed.
        """
        path = db_path + "-shm"
        mapping = _OPEN.get(path)
        if mapping is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # no -shm file: not in WAL mode
                return None
            try:
                shm = mmap.mmap(fd, 2 * WAL_HEADER_BYTES, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # shorter than two headers
                _KEPT.append(fd)
                return None
            if int.from_bytes(shm[:4], sys.byteorder) != WAL_INDEX_VERSION:
                _KEPT.extend((fd, shm))
                return None
            mapping = _OPEN[path] = _Mapping(fd, shm)
        mapping.users += 1
        return cls(path, mapping)

    def version(self) -> bytes | None:
        """The header's bytes, or None when no whole, initialised header could be read."""
        shm = self._shm
        for _ in range(TORN_READ_TRIES):
            header = shm[:WAL_HEADER_BYTES]
            if header == shm[WAL_HEADER_BYTES : 2 * WAL_HEADER_BYTES]:
                return header if header[WAL_IS_INIT] == 1 else None
        return None

    def frames(self) -> int | None:
        """The frames in the write-ahead log (mxFrame), or None when no whole header could be
        read: what `storage.checkpoint_due` decides on."""
        header = self.version()
        if header is None:
            return None
        return int.from_bytes(header[WAL_MX_FRAME : WAL_MX_FRAME + 4], sys.byteorder)

    def close(self) -> None:
        """Done with it: the last user in this process, after its SQLite connections closed,
        unmaps the file and closes its descriptors."""
        mapping = self._mapping
        if mapping.users == 0:
            return
        mapping.users -= 1
        if mapping.users == 0 and _OPEN.get(self._path) is mapping:
            del _OPEN[self._path]
            mapping.shm.close()
            os.close(mapping.fd)
