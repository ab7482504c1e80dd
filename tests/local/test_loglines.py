"""Cutting output into whole lines and prefixing them (the pure core of the log stream), as tables."""

from __future__ import annotations

import pytest

from microforum.local.loglines import LineBuffer, prefixed


def _run(chunks: list[bytes], limit: int = 1 << 20) -> list[bytes]:
    """The blocks a LineBuffer gives for `chunks`, then the one at the end (b"" left out)."""
    buffer = LineBuffer(limit)
    blocks = [buffer.feed(chunk) for chunk in chunks] + [buffer.end()]
    return [block for block in blocks if block]


@pytest.mark.parametrize(
    ("chunks", "blocks"),
    [
        ([b"a\nb\n"], [b"a\nb\n"]),
        ([b"al", b"pha\nbe", b"ta\n"], [b"alpha\n", b"beta\n"]),
        ([b"a", b"b", b"c", b"\n"], [b"abc\n"]),
        ([b"one\n", b"", b"two\n\n"], [b"one\n", b"two\n\n"]),
        ([b"whole\npart"], [b"whole\n", b"part\n"]),
        ([b"no newline at all"], [b"no newline at all\n"]),
        ([b"\n"], [b"\n"]),
        ([], []),
    ],
    ids=["whole-lines", "odd-cuts", "byte-by-byte", "empty-chunk-and-line", "partial-at-end",
         "only-partial", "empty-line", "nothing"],
)  # fmt: skip
def test_chunks_become_blocks_of_whole_lines(chunks: list[bytes], blocks: list[bytes]) -> None:
    assert _run(chunks) == blocks


def test_a_line_longer_than_the_limit_comes_out_in_pieces_of_the_limit() -> None:
    assert _run([b"0123456789", b"abc", b"\nnext\n"], limit=4) == [
        b"0123\n4567\n", b"89ab\n", b"c\nnext\n",
    ]  # fmt: skip


def test_long_lines_are_cut_between_utf8_characters() -> None:
    text = "ab€€d"  # the euro sign is 3 bytes: a cut at byte 3 would split the first one
    blocks = _run([text.encode(), b"\n"], limit=3)
    assert [block.decode() for block in blocks] == ["ab\n€\n€\n", "d\n"]


def test_a_whole_line_chunk_is_passed_through_without_a_copy() -> None:
    chunk = b"x\n" * 10
    assert LineBuffer().feed(chunk) is chunk


def test_repr_shows_what_is_held() -> None:
    buffer = LineBuffer(8)
    buffer.feed(b"ab\ncd")
    assert repr(buffer) == "<LineBuffer pending=2 limit=8>"


@pytest.mark.parametrize(
    ("block", "keep", "text", "last"),
    [
        (b"a\nb\n", 5, "P a\nP b\n", ["a", "b"]),
        (b"a\nb\nc\n", 2, "P a\nP b\nP c\n", ["b", "c"]),
        (b"\n", 5, "P \n", [""]),
        (b"dos\r\nline\r\r\n", 5, "P dos\nP line\n", ["dos", "line"]),
        (b"bad \xff byte\n", 1, "P bad \ufffd byte\n", ["bad \ufffd byte"]),
        (b"caf\xc3\xa9\n", 1, "P caf\u00e9\n", ["caf\u00e9"]),
        (b"a\rb\n", 1, "P a\rb\n", ["a\rb"]),
        (b"a\nb\n", 0, "P a\nP b\n", []),
    ],
    ids=["lines", "keeps-the-last", "empty-line", "crlf", "not-utf8", "utf8", "inner-cr", "keep-none"],
)  # fmt: skip
def test_blocks_are_prefixed_per_line(block: bytes, keep: int, text: str, last: list[str]) -> None:
    assert prefixed("P ", block, keep) == (text, last)
