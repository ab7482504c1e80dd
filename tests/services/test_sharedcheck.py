"""Fresh reference checks of one path share a request only while it has not been sent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from microforum.services.sharedcheck import SharedChecks


class Owner:
    """A fake owner's answers: each request numbered, held until `release` is set."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.release = asyncio.Event()

    def check(self, path: str, answer: bool = True) -> Callable[[], Awaitable[bool]]:
        async def send() -> bool:
            self.requests.append(path)
            await self.release.wait()
            return answer

        return send


def test_callers_asking_at_once_share_one_request() -> None:
    async def main() -> tuple[list[bool], list[str]]:
        shared, owner = SharedChecks(), Owner()
        owner.release.set()
        asks = [shared.ask("/api/users/2", owner.check("/api/users/2")) for _ in range(5)]
        asks.append(shared.ask("/api/threads/1", owner.check("/api/threads/1", False)))
        return await asyncio.gather(*asks), owner.requests

    answers, requests = asyncio.run(main())
    assert answers == [True] * 5 + [False]
    assert sorted(requests) == ["/api/threads/1", "/api/users/2"]  # one request per path


def test_a_caller_never_joins_a_request_already_sent() -> None:
    """The no-orphan argument needs each check read after the caller's write committed."""

    async def main() -> tuple[list[bool], list[str], int]:
        shared, owner = SharedChecks(), Owner()
        first = asyncio.ensure_future(shared.ask("/api/users/2", owner.check("/api/users/2")))
        while not owner.requests:  # the first request is on its way
            await asyncio.sleep(0)
        late = asyncio.ensure_future(shared.ask("/api/users/2", owner.check("/api/users/2", False)))
        await asyncio.sleep(0)
        owner.release.set()
        return [await first, await late], owner.requests, shared.sent

    answers, requests, sent = asyncio.run(main())
    assert answers == [True, False]  # the late caller got the answer of a request of its own
    assert requests == ["/api/users/2", "/api/users/2"] and sent == 2


def test_every_caller_gets_the_error_and_a_cancelled_one_leaves_the_others() -> None:
    async def main() -> tuple[object, object]:
        shared = SharedChecks()
        gate = asyncio.Event()

        async def failing() -> bool:
            await gate.wait()
            raise ConnectionRefusedError("owner down")

        quitter = asyncio.ensure_future(shared.ask("/p", failing))
        stayer = asyncio.ensure_future(shared.ask("/p", failing))
        await asyncio.sleep(0)
        quitter.cancel()
        gate.set()
        results = await asyncio.gather(quitter, stayer, return_exceptions=True)
        return results[0], results[1]

    quitter, stayer = asyncio.run(main())
    assert isinstance(quitter, asyncio.CancelledError)
    assert isinstance(stayer, ConnectionRefusedError)


@pytest.mark.parametrize("paths", [["/a", "/b", "/c"]])
def test_nothing_is_left_pending_once_answered(paths: list[str]) -> None:
    async def main() -> SharedChecks:
        shared, owner = SharedChecks(), Owner()
        owner.release.set()
        await asyncio.gather(*(shared.ask(path, owner.check(path)) for path in paths))
        return shared

    shared = asyncio.run(main())
    assert shared.pending == {} and shared.sent == len(paths)


def test_a_started_check_is_under_way_before_its_caller_awaits_it() -> None:
    async def main() -> tuple[list[str], bool]:
        shared, owner = SharedChecks(), Owner()
        answer = shared.start("/api/users/2", owner.check("/api/users/2"))
        await asyncio.sleep(0)  # one turn of the loop: the caller has not awaited `answer`
        sent = list(owner.requests)
        owner.release.set()
        return sent, await answer

    assert asyncio.run(main()) == (["/api/users/2"], True)
