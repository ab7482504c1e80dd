"""Owner-only files and the access log's rotation by size."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from microforum.logfiles import RotatingFile, needs_rotation, private_dir, rotation_moves


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("size", "incoming", "limit", "rotate"),
    [(0, 50, 100, False), (60, 40, 100, False), (60, 41, 100, True), (0, 500, 100, False)],
    ids=["empty", "exactly-full", "over", "huge-block-into-an-empty-file"],
)
def test_needs_rotation(size, incoming, limit, rotate):
    assert needs_rotation(size, incoming, limit) is rotate


def test_rotation_moves_oldest_first():
    p = Path("/d/access.log")
    assert rotation_moves(p, 3) == [
        (Path("/d/access.log.2"), None),
        (Path("/d/access.log.1"), Path("/d/access.log.2")),
        (Path("/d/access.log"), Path("/d/access.log.1")),
    ]
    assert rotation_moves(p, 1) == [(p, None)]


def test_rotating_file_keeps_at_most_files_times_max_bytes(tmp_path: Path):
    path = tmp_path / "logs" / "access.log"
    log = RotatingFile(path, max_bytes=100, files=3)
    for n in range(50):
        log.write(b"line %02d %s\n" % (n, b"x" * 30))  # 40 bytes: two lines per file
    log.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["access.log", "access.log.1", "access.log.2"]
    assert path.read_bytes().startswith(b"line 48") and b"line 49" in path.read_bytes()
    assert (path.parent / "access.log.2").read_bytes().startswith(b"line 44")
    assert all(p.stat().st_size <= 100 for p in path.parent.iterdir())
    assert {_mode(p) for p in path.parent.iterdir()} == {0o600}
    assert _mode(path.parent) == 0o700


def test_existing_files_and_directories_are_narrowed_to_their_owner(tmp_path: Path):
    directory = tmp_path / ".microforum"
    directory.mkdir(mode=0o755)
    path = directory / "access.log"
    path.write_bytes(b"old\n")
    path.chmod(0o644)
    database = directory / "users.db"
    database.write_bytes(b"")
    database.chmod(0o664)
    private_dir(directory)
    assert _mode(database) == 0o600
    log = RotatingFile(path, max_bytes=1000, files=2)
    log.write(b"new\n")
    log.close()
    assert (_mode(directory), _mode(path)) == (0o700, 0o600)
    assert path.read_bytes() == b"old\nnew\n"
    assert os.access(path, os.R_OK)
