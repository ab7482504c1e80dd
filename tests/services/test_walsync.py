"""A SQLite batch commits on the event loop and is answered only once its syncing thread flushed
the WAL to the disk (services/walsync.py); the C thread and its Python reference agree; the
WAL is checkpointed by us, off the loop."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from microforum.lb.native import missing_tool
from microforum.services import store, walsync
from microforum.services.model import NewUser, User
from microforum.services.schema import migrate
from microforum.services.storage import CHECKPOINT_FRAMES, SqliteDatabase, StorageUnavailable, checkpoint_due
from microforum.services.walsync import RECORD, Start, Syncer, native_start, start_in_python

STARTS: list[tuple[str, Start | None]] = [("python", start_in_python), ("c", native_start())]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(("name", "start"), STARTS, ids=[name for name, _ in STARTS])
def test_each_flush_is_answered_in_order_with_its_outcome(
    name: str, start: Start | None, tmp_path: Path
) -> None:
    """A file flushes (0); a pipe cannot be flushed (EINVAL): 200 of them mixed, answered in the
    order asked; closing ends the thread, which closes its descriptors."""
    if start is None:
        cannot = missing_tool()
        if cannot is not None and not cannot.startswith("no mypyc"):
            pytest.skip(f"cannot compile: {cannot}")
        pytest.fail("services/_walsync.c is not built: `pip install -e .` builds it")
    before = _open_fds()
    data = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(data, b"x" * 4096)
    pipe_r, pipe_w = os.pipe()

    async def main() -> list[object]:
        syncer = Syncer(asyncio.get_running_loop(), start)
        try:
            futures = [syncer.sync(data if n % 3 else pipe_r) for n in range(200)]
            return await asyncio.gather(*futures, return_exceptions=True)
        finally:
            syncer.close()

    try:
        outcomes = asyncio.run(main())
    finally:
        for fd in (data, pipe_r, pipe_w):
            os.close(fd)
    for n, outcome in enumerate(outcomes):
        if n % 3:
            assert outcome is None, (n, outcome)
        else:
            assert isinstance(outcome, OSError) and outcome.errno == errno.EINVAL, (n, outcome)
    assert _open_fds() == before  # the thread closed its two ends, the syncer its two


def test_a_syncer_whose_thread_is_gone_fails_what_waits_and_what_is_asked() -> None:
    def start_then_die(requests: int, done: int) -> None:
        os.close(requests)
        os.close(done)

    async def main() -> tuple[BaseException | None, BaseException | None]:
        syncer = Syncer(asyncio.get_running_loop(), start_then_die)
        try:
            waiting = syncer.sync(0)  # asked before the end is seen: failed when it is
            await asyncio.sleep(0.05)
            asked_after = syncer.sync(0)
            return waiting.exception(), asked_after.exception()
        finally:
            syncer.close()

    waiting, asked_after = asyncio.run(main())
    assert isinstance(waiting, OSError) and isinstance(asked_after, OSError)


def test_a_stuck_disk_fails_the_flushes_asked_past_the_pipes_room_and_never_blocks_the_loop() -> None:
    """A thread that never answers (a disk that hangs): once the request pipe is full, what is
    asked fails at once instead of blocking the event loop in its write."""
    held: list[int] = []

    def start_and_hang(requests: int, done: int) -> None:
        held.extend((requests, done))  # never read: the pipe fills

    async def main() -> tuple[int, BaseException | None]:
        syncer = Syncer(asyncio.get_running_loop(), start_and_hang)
        asked = [syncer.sync(0) for _ in range(20_000)]  # more than a 64 KiB pipe holds
        refused = [future for future in asked if future.done()]
        os.close(held[1])  # the thread's end of the answers: close() sees the end
        os.close(held[0])
        syncer.close()
        assert all(isinstance(future.exception(), OSError) for future in asked)  # none left waiting
        return len(refused), refused[0].exception() if refused else None

    refused, error = asyncio.run(main())
    assert refused > 0 and isinstance(error, BlockingIOError)


class SlowDisk:
    """A syncing thread whose flushes wait for `release` (a disk slower than the test), each
    recorded with the WAL's content at that moment as another connection sees it."""

    def __init__(self, db_path: Path) -> None:
        self.release = threading.Event()
        self.asked: list[int] = []  # users another connection saw when each flush was asked
        self._db_path = db_path

    def start(self, requests: int, done: int) -> None:
        threading.Thread(target=self._serve, args=(requests, done), daemon=True).start()

    def _serve(self, requests: int, done: int) -> None:
        while os.read(requests, RECORD.size):
            seen = sqlite3.connect(self._db_path)
            self.asked.append(seen.execute("SELECT count(*) FROM users").fetchone()[0])
            seen.close()
            self.release.wait(10)
            os.write(done, RECORD.pack(0))
        os.close(requests)
        os.close(done)


def _with_syncer(db: SqliteDatabase, start: Start) -> Callable[[asyncio.AbstractEventLoop], Syncer]:
    def make(loop: asyncio.AbstractEventLoop) -> Syncer:
        if db._syncer is None or db._syncer.loop is not loop:
            db._syncer = Syncer(loop, start)
        return db._syncer

    return make


def test_a_batch_commits_on_the_loop_and_is_answered_only_after_its_flush(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    users_before = len(asyncio.run(db.read(store.list_users)))
    disk = SlowDisk(tmp_path / "users.db")
    db._syncer_of = _with_syncer(db, disk.start)  # type: ignore[method-assign]
    seen: list[tuple[str, str]] = []
    db._writer.set_trace_callback(lambda sql: seen.append((threading.current_thread().name, sql.split()[0])))

    async def main() -> list[User]:
        writes = asyncio.gather(*(db.write(store.create_user, new=NewUser(f"s{n}", "S")) for n in range(5)))
        while not disk.asked:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert not writes.done()  # committed, but not answered before its flush
        disk.release.set()
        return await writes

    try:
        made = asyncio.run(main())
    finally:
        db.close()
    assert [u.username for u in made] == [f"s{n}" for n in range(5)]
    assert disk.asked[0] == users_before + 5  # the flush was asked after the COMMIT
    where = {sql: thread for thread, sql in seen if sql in ("INSERT", "COMMIT")}
    assert where == {"INSERT": "MainThread", "COMMIT": "MainThread"}, seen


def test_a_read_shows_a_commit_only_once_it_is_on_the_disk(tmp_path: Path) -> None:
    """Committed by another process without a flush of its own (synchronous=OFF): a read that
    sees it (a plain one, a cached one) is answered only after a flush; reads that find nothing
    new since ask none."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    disk = SlowDisk(tmp_path / "users.db")
    db._syncer_of = _with_syncer(db, disk.start)  # type: ignore[method-assign]
    other = sqlite3.connect(tmp_path / "users.db", isolation_level=None)
    other.execute("PRAGMA synchronous = OFF")

    def reads() -> list[Callable[[], Awaitable[object]]]:
        return [lambda: db.read(store.list_users), lambda: db.read_json(("all",), store.list_users)]

    async def main() -> tuple[int, int]:
        disk.release.set()
        await db.read(store.list_users)  # anything committed so far: flushed once
        flushes = len(disk.asked)
        disk.release.clear()
        for n, read in enumerate(reads()):
            other.execute(
                "INSERT INTO users (username, name, bio, created_at, updated_at)"
                f" VALUES ('elsewhere{n}', 'E', '', '2026-12-05T00:00:00Z', '2026-12-05T00:00:00Z')"
            )
            reading = asyncio.ensure_future(read())
            await asyncio.sleep(0.1)
            assert not reading.done()  # seen in the WAL, not yet answered
            disk.release.set()
            await reading
            disk.release.clear()
        asked = len(disk.asked) - flushes
        for read in reads():
            await read()  # nothing new: answered at once (the disk is held)
        return asked, len(disk.asked) - flushes

    try:
        asked, after = asyncio.run(main())
    finally:
        other.close()
        db.close()
    assert (asked, after) == (2, 2)


def test_a_failed_flush_answers_every_write_of_its_batch_as_unknown(tmp_path: Path) -> None:
    """Committed and maybe not on the disk: neither a success nor a failure can be claimed."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    wal_fd = db._wal_fd
    pipe_r, pipe_w = os.pipe()
    db._wal_fd = pipe_r  # the C thread's fdatasync of a pipe fails (EINVAL)

    async def main() -> list[object]:
        return await asyncio.gather(
            *(db.write(store.create_user, new=NewUser(f"f{n}", "F")) for n in range(4)),
            return_exceptions=True,
        )

    try:
        results = asyncio.run(main())
    finally:
        db._wal_fd = wal_fd
        db.close()
        os.close(pipe_r)
        os.close(pipe_w)
    assert all(isinstance(r, StorageUnavailable) and r.outcome_unknown for r in results), results


def test_the_wal_is_checkpointed_off_the_loop_and_stays_bounded(tmp_path: Path) -> None:
    """SQLite's own checkpoints are off (they would flush on the event loop); ours keep the WAL
    from growing past a few thousand frames over 3,000 commits."""
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    assert db._writer.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    frames: list[int] = []

    async def main() -> None:
        for n in range(3000):
            await db.write(store.create_user, new=NewUser(f"c{n}", "C"))
            frames.append(db._wal.frames() or 0)  # type: ignore[union-attr]

    try:
        asyncio.run(main())
    finally:
        db.close()
    assert max(frames) > CHECKPOINT_FRAMES  # it did reach the threshold
    assert max(frames) < 2 * CHECKPOINT_FRAMES, max(frames)  # and started again after


@pytest.mark.parametrize(
    ("frames", "last", "due"),
    [
        (0, 0, False),
        (CHECKPOINT_FRAMES - 1, 0, False),
        (CHECKPOINT_FRAMES, 0, True),
        (CHECKPOINT_FRAMES + 5, CHECKPOINT_FRAMES, False),  # left unfinished at 1000: not yet again
        (2 * CHECKPOINT_FRAMES, CHECKPOINT_FRAMES, True),  # as many more since: again
        (CHECKPOINT_FRAMES + 2, CHECKPOINT_FRAMES + 40, True),  # started again anyway, grew back
    ],
)
def test_checkpoint_due(frames: int, last: int, due: bool) -> None:
    assert checkpoint_due(frames, last) is due


def test_a_database_used_from_one_loop_after_another_gets_a_syncer_per_loop(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    try:
        for n in range(3):
            asyncio.run(db.write(store.create_user, new=NewUser(f"l{n}", "L")))
        assert {f"l{n}" for n in range(3)} <= {u.username for u in asyncio.run(db.read(store.list_users))}
    finally:
        db.close()


def test_without_the_c_thread_the_python_one_flushes_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where nothing could compile `_walsync.c`: the same protocol served by `walsync.serve`."""
    monkeypatch.setattr(walsync, "native_start", lambda: None)
    db = SqliteDatabase(str(tmp_path / "users.db"))
    migrate(db, "users")
    threads: set[str] = set()

    async def main() -> list[User]:
        made = await asyncio.gather(
            *(db.write(store.create_user, new=NewUser(f"p{n}", "P")) for n in range(20))
        )
        threads.update(t.name for t in threading.enumerate())  # the syncing thread lives until close
        return made

    try:
        made = asyncio.run(main())
        seen = {u.username for u in asyncio.run(db.read(store.list_users))}
    finally:
        db.close()
    assert [u.username for u in made] == [f"p{n}" for n in range(20)]
    assert {f"p{n}" for n in range(20)} <= seen
    assert "wal-sync" in threads
