"""A create's reference questions (lifecycle._require): asked together, each answer awaited.

The questions of one create are under way before the first is awaited (a remote check's future
is running as soon as it is asked), so two owners are asked at once without a task per
question; an owner that cannot answer wins over a missing record (503 before 422, in the
requirements' order); a create cancelled while waiting cancels the questions still open.
"""

from __future__ import annotations

import asyncio

import pytest

from microforum.services import lifecycle
from microforum.services.http import HttpError
from microforum.services.refs import DependencyUnavailable


def _requirement(field: str, answer: object) -> lifecycle.Requirement:
    return lifecycle.Requirement(field, f"{field}: missing", lambda fresh: answer)  # type: ignore[arg-type,return-value]


def test_both_questions_are_under_way_before_either_is_awaited() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        asked: list[str] = []
        loop.call_soon(lambda: (asked.append("second answered"), second.set_result(True)))
        loop.call_later(0.01, lambda: (asked.append("first answered"), first.set_result(True)))
        await lifecycle._require([_requirement("thread", first), _requirement("user", second)], fresh=True)
        return asked

    assert asyncio.run(main()) == ["second answered", "first answered"]


def test_answers_known_at_once_need_no_waiting_and_a_missing_one_is_a_422() -> None:
    async def main() -> HttpError:
        with pytest.raises(HttpError) as raised:
            await lifecycle._require([_requirement("thread", True), _requirement("user", False)], fresh=False)
        return raised.value

    error = asyncio.run(main())
    assert error.status == 422 and error.field == "user"


def test_an_owner_that_cannot_answer_wins_over_a_missing_record() -> None:
    async def main() -> BaseException:
        loop = asyncio.get_running_loop()
        down: asyncio.Future[bool] = loop.create_future()
        down.set_exception(DependencyUnavailable("users", "refused"))
        with pytest.raises(DependencyUnavailable) as raised:
            await lifecycle._require([_requirement("thread", False), _requirement("user", down)], fresh=True)
        return raised.value

    assert asyncio.run(main()).service == "users"


def test_a_cancelled_create_cancels_the_questions_still_open() -> None:
    async def main() -> tuple[bool, bool]:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        waiting = asyncio.ensure_future(
            lifecycle._require([_requirement("thread", first), _requirement("user", second)], fresh=True)
        )
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return first.cancelled(), second.cancelled()

    assert asyncio.run(main()) == (True, True)
