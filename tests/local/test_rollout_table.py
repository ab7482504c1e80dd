"""The rollout's state table as transcripts (local/rollout.py; docs/policies.md): linear steps to
exactly 100 %, tenths of a percent, a canary's one bake, rollbacks, events that mean nothing."""

from __future__ import annotations

import pytest

from microforum.local.rollout import TRANSITIONS, Rollout
from microforum.spec.model import Deployment


def deployment(strategy: str, *, canary: float = 5.0, step: float = 10.0, bake: int = 1) -> Deployment:
    return Deployment(100, 200, 0, strategy, canary, step, bake)  # type: ignore[arg-type]


def transcript(rollout: Rollout, until: float) -> list[tuple[float, str, float, str]]:
    """Tick every AWS second from 1 to `until`: (time, what changed, share, phase)."""
    out = []
    for now in range(1, int(until) + 1):
        said = rollout.tick(float(now))
        if said is not None:
            out.append((float(now), said, rollout.share, rollout.phase))
    return out


def test_linear_in_steps_that_reach_exactly_100_shifts_without_a_last_bake() -> None:
    rollout = Rollout("web", deployment("linear", step=50.0), 0.0)
    assert rollout.on("ready", 0.0) == "linear: new replicas get 50 % of requests, baking 1 min"
    assert (rollout.phase, rollout.until, rollout.weighted) == ("step", 60.0, True)
    assert transcript(rollout, 600) == [
        (60.0, "new replicas get all requests; the old ones drain", 100.0, "shifted")
    ]
    assert (rollout.done, rollout.weighted, rollout.until) == (True, False, None)


def test_linear_in_tenths_of_a_percent_then_capped_at_100() -> None:
    rollout = Rollout("web", deployment("linear", step=33.3, bake=2), 0.0)
    assert rollout.on("ready", 0.0) == "linear: new replicas get 33.3 % of requests, baking 2 min"
    assert transcript(rollout, 1000) == [
        (120.0, "linear: new replicas get 66.6 % of requests, baking 2 min", 66.6, "step"),
        (240.0, "linear: new replicas get 99.9 % of requests, baking 2 min", 99.9, "step"),
        (360.0, "new replicas get all requests; the old ones drain", 100.0, "shifted"),
    ]


def test_canary_bakes_once_then_shifts_and_ticks_mean_nothing_after() -> None:
    rollout = Rollout("web", deployment("canary", canary=12.5, step=10.0, bake=3), 0.0)
    assert rollout.on("ready", 10.0) == "canary: new replicas get 12.5 % of requests, baking 3 min"
    assert transcript(rollout, 1000) == [
        (190.0, "new replicas get all requests; the old ones drain", 100.0, "shifted")
    ]
    assert rollout.tick(5000.0) is None and rollout.until is None


@pytest.mark.parametrize("strategy", ["canary", "linear"])
def test_an_alarm_while_baking_rolls_back_and_stops_the_bake(strategy: str) -> None:
    rollout = Rollout("web", deployment(strategy), 0.0)
    rollout.on("ready", 0.0)
    assert rollout.on("alarm", 30.0) == "rolled back: the old replicas get all requests; the new ones drain"
    assert (rollout.phase, rollout.share, rollout.weighted) == ("rolled_back", 0.0, False)
    assert transcript(rollout, 600) == []
    assert rollout.on("ready", 700.0) is None and rollout.on("alarm", 700.0) is None


def test_events_outside_the_table_change_nothing() -> None:
    for phase in ("launching", "canary", "step", "shifted", "rolled_back"):
        for event in ("ready", "baked", "alarm", "settled"):
            if (phase, event) in TRANSITIONS:
                continue
            rollout = Rollout("web", deployment("linear"), 0.0, phase=phase, share=20.0)
            assert rollout.on(event, 1.0) is None
            assert (rollout.phase, rollout.share) == (phase, 20.0)
