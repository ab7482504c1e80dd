"""The log writer: `write` never blocks; what cannot be written in time is dropped and counted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from microforum.logwriter import Backlog, LogWriter, fd_sink

LINE = b"x" * 99 + b"\n"


@pytest.mark.parametrize(
    ("limit", "blocks", "taken", "dropped"),
    [
        (1000, [(b"a\n" * 10, 10)], b"a\n" * 10, 0),
        (10, [(b"a\n" * 5, 5), (b"b\n", 1)], b"a\n" * 5, 1),  # full: the next block is dropped
        (10, [(b"a\n" * 4, 4), (b"b\n" * 2, 2), (b"c\n", 1)], b"a\n" * 4 + b"c\n", 2),
        (4, [(b"long line\n", 1)], b"", 1),  # a block larger than the whole backlog
    ],
    ids=["room", "full", "a-smaller-block-still-fits", "too-large"],
)
def test_backlog_keeps_what_fits_and_counts_the_rest(limit, blocks, taken, dropped):
    backlog = Backlog(limit)
    for block, lines in blocks:
        backlog.offer(block, lines)
    assert backlog.dropped == dropped
    assert backlog.take() == (taken, taken.count(b"\n"))
    assert backlog.size == 0 and backlog.take() == (b"", 0)
    assert backlog.unreported() == dropped and backlog.unreported() == 0


def test_a_pipe_nobody_reads_never_blocks_the_writer_and_drops_are_counted_then_noticed():
    read_end, write_end = os.pipe()
    writer = LogWriter(fd_sink(write_end), name="test", limit=8192,
                       notice=lambda n: b"%d dropped\n" % n)  # fmt: skip
    try:
        for _ in range(2000):  # 200 kB: the pipe (64 kB) and the backlog (8 kB) fill up
            writer.write(LINE, 1)
        counts = writer.counts()
        assert counts["dropped"] > 0
        received = bytearray()
        reader = threading.Thread(target=_read_all, args=(read_end, received), daemon=True)
        reader.start()  # the reader comes back: the backlog goes out, then the notice
        assert writer.flush(10)
        counts = writer.counts()
        assert counts["written"] + counts["dropped"] == 2000
        writer.close()
    finally:
        os.close(write_end)
    reader.join(10)
    text = bytes(received)
    assert text.count(LINE) == counts["written"]
    assert text.endswith(b"%d dropped\n" % counts["dropped"])


def test_a_failing_output_counts_its_lines_dropped():
    def broken(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    writer = LogWriter(broken, name="test")
    writer.write(LINE * 3, 3)
    assert writer.flush(10)
    assert writer.counts() == {"written": 0, "dropped": 3}
    writer.close()


def test_close_gives_up_on_an_output_that_never_moves(tmp_path: Path):
    read_end, write_end = os.pipe()
    writer = LogWriter(fd_sink(write_end), name="test", limit=1 << 20)
    try:
        for _ in range(1000):
            writer.write(LINE, 1)
        writer.close(timeout=0.2)  # returns although the thread is stuck in write(2)
        writer.write(LINE, 1)  # closed: counted dropped
        assert writer.counts()["dropped"] >= 1
    finally:
        os.close(read_end)  # the stuck write fails (EPIPE) and the thread ends
        os.close(write_end)


class _Recorder:
    """A sink that keeps each write and says when one happened."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.wrote = threading.Event()

    def __call__(self, data: bytes) -> None:
        self.writes.append(data)
        self.wrote.set()


def test_blocks_offered_while_the_thread_lingers_go_out_in_one_write():
    sink = _Recorder()
    writer = LogWriter(sink, name="test", linger=30.0)
    for _ in range(3):
        writer.write(LINE, 1)
        time.sleep(0.01)  # a woken thread that did not linger would write each block on its own
    assert writer.flush(10)
    assert sink.writes == [LINE * 3]
    writer.close()


def test_a_quarter_of_the_room_used_ends_the_linger_without_a_flush():
    sink = _Recorder()
    writer = LogWriter(sink, name="test", limit=8 * len(LINE), linger=60.0)  # the mark: 2 lines
    writer.write(LINE, 1)
    time.sleep(0.01)  # the thread is woken and lingers
    assert not sink.writes
    writer.write(LINE, 1)
    assert sink.wrote.wait(10)  # a whole minute's linger cut short: the backlog is at the mark
    assert sink.writes == [LINE * 2]
    writer.close()


def test_close_writes_a_lingering_backlog_at_once():
    sink = _Recorder()
    writer = LogWriter(sink, name="test", linger=60.0)
    writer.write(b"a\n", 1)
    time.sleep(0.01)  # the thread is woken and lingers
    writer.close(timeout=10)
    assert sink.writes == [b"a\n"]
    assert writer.counts() == {"written": 1, "dropped": 0}


def _read_all(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into += chunk
