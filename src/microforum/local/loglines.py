"""Cutting replicas' output into whole lines and prefixing them: the pure core of the log stream.

A replica's output arrives in chunks of any size, cut anywhere (the pipe does not know about
lines). `LineBuffer` takes chunks and returns blocks of whole lines, holding a partial last line
back until its newline arrives (or the stream ends). `prefixed` turns one block into the text
the terminal gets, the replica's prefix before every line, in one pass over the block, so a
burst of lines costs one decode and one write rather than one of each per line.

A line that grows past `limit` bytes without a newline is released in `limit`-byte pieces (each
shown as a line of its own, cut between UTF-8 characters), so a replica printing endless output
without a newline cannot make the supervisor hold unbounded memory.
"""

from __future__ import annotations

READ_LIMIT = 1 << 20  # longest log line kept whole (longer ones are split)
_CONTINUATION = 0xC0, 0x80  # mask, value of a UTF-8 continuation byte (10xxxxxx)


class LineBuffer:
    """Turns a byte stream into blocks of whole lines (each ending in b"\\n"); no I/O."""

    def __init__(self, limit: int = READ_LIMIT) -> None:
        self._limit = limit
        self._pending = bytearray()  # the partial last line (appending is amortised O(1))

    def __repr__(self) -> str:
        return f"<LineBuffer pending={len(self._pending)} limit={self._limit}>"

    def feed(self, data: bytes) -> bytes:
        """The whole lines `data` completes, as one block (b"" when none); keeps the rest."""
        end = data.rfind(b"\n") + 1
        if not self._pending and end == len(data):  # the usual case: whole lines, no copy
            return data
        if end == 0:
            self._pending += data
            block = b""
        else:
            block = bytes(self._pending + data[:end]) if self._pending else data[:end]
            self._pending = bytearray(data[end:])
        if len(self._pending) > self._limit:
            block += self._release_long()
        return block

    def end(self) -> bytes:
        """At end of stream: the partial last line, newline added (b"" when there is none)."""
        rest, self._pending = bytes(self._pending), bytearray()
        return rest + b"\n" if rest else b""

    def _release_long(self) -> bytes:
        pieces = []
        while len(self._pending) > self._limit:
            cut = _char_boundary(self._pending, self._limit)
            pieces.append(bytes(self._pending[:cut]) + b"\n")
            del self._pending[:cut]
        return b"".join(pieces)


def _char_boundary(data: bytearray, at: int) -> int:
    """`at`, moved back (at most 3 bytes) so it does not fall inside a UTF-8 character."""
    mask, value = _CONTINUATION
    for cut in range(at, max(at - 3, 1) - 1, -1):
        if data[cut] & mask != value:
            return cut
    return at  # not UTF-8 there: any cut will do


def prefixed(prefix: str, block: bytes, keep: int) -> tuple[str, list[str]]:
    """`block` (whole lines) as text with `prefix` before every line, and its last `keep` lines.

    Bytes that are not UTF-8 show as U+FFFD; trailing carriage returns are dropped (CRLF output).
    """
    text = block.decode("utf-8", "replace")[:-1]  # without the last newline
    if "\r" in text:
        text = "\n".join(line.rstrip("\r") for line in text.split("\n"))
    last = text.rsplit("\n", keep)[-keep:] if keep else []
    return prefix + text.replace("\n", "\n" + prefix) + "\n", last
