"""Closing the load balancer ends its health-check loops, even when a check's cancellation is
lost (Python 3.11's asyncio.wait_for returns an answer that arrives as it is cancelled: a CI
run hung 30 s in `close` that way)."""

from __future__ import annotations

import asyncio

import pytest
from lb_harness import Harness
from lb_helpers import stack
from test_lb_proxy import FAST

from microforum.lb import balancer
from microforum.lb.health import CheckResult

pytestmark = pytest.mark.timeout(60)


def test_close_ends_a_check_loop_whose_cancellation_is_swallowed(tmp_path, monkeypatch):
    swallowed = []

    async def stubborn_probe(target, check):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # as wait_for does when the answer is already there
            swallowed.append(target)
        return CheckResult("ok", status=200)

    monkeypatch.setattr(balancer, "probe", stubborn_probe)
    harness = Harness(stack(FAST), access_log=tmp_path / "access.log")
    harness.backend("mono-1", "monolith")
    harness.call(asyncio.sleep(0.1), timeout=5)  # the check loop is inside its probe
    harness.close()  # raised TimeoutError after 30 s before `close` told the loops to end
    assert swallowed
