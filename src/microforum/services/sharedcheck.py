"""Fresh reference checks asked at about the same time share one request (docs/consistency.md).

A create's second check must read the owner's data after the create's write committed; it
need not be a request of its own. Writes that shared a commit (group commit) are all answered
in one turn of the event loop, and ask their second checks at once, often about the same
thread or user. `SharedChecks` lets callers asking about the same path join one request, but
only while that request has not been sent yet: once it is sent, a new caller waits for the
next. So every request is sent after every caller that joined it had asked, hence after each
caller's write committed, which is all the no-orphan argument needs.

The owner of the record answers those checks the same way: its fresh reads of one record
asked at about the same time (by several replicas' checks) share one database read, sent
after each of them was asked, so each still reads what was committed when it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SharedChecks(Generic[T]):
    """One unsent check per path that callers may join (event loop only)."""

    def __init__(self) -> None:
        self.pending: dict[str, asyncio.Future[T]] = {}  # path -> a check not sent yet
        self.sent = 0  # checks sent so far
        self._tasks: set[asyncio.Task[None]] = set()  # kept alive until done

    def __repr__(self) -> str:
        return f"SharedChecks(pending={sorted(self.pending)}, sent={self.sent})"

    async def ask(self, path: str, check: Callable[[], Awaitable[T]]) -> T:
        """The answer of a `check()` of `path` sent after this call began."""
        return await self.start(path, check)

    def start(self, path: str, check: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        """A future of the answer of a `check()` of `path` sent after this call: the check not
        sent yet, joined, or a new one, under way at once (so a caller may start several and
        then await them, with no task of its own for each)."""
        future = self.pending.get(path)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            future.add_done_callback(_retrieved)
            self.pending[path] = future
            task = loop.create_task(self._send(path, future, check))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return asyncio.shield(future)  # a cancelled caller leaves the others waiting

    async def _send(self, path: str, future: asyncio.Future[T], check: Callable[[], Awaitable[T]]) -> None:
        del self.pending[path]  # sent from now on: later callers wait for the next check
        self.sent += 1
        try:
            answer = await check()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            return
        future.set_result(answer)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark an exception as seen even when every caller was cancelled (no warning)."""
    with contextlib.suppress(asyncio.CancelledError):
        future.exception()
