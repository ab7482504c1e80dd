"""A restart's progress as the console shows it, read from the supervisor's replica snapshot."""

from __future__ import annotations

from microforum.console import restarts as rs


def replica(rid: str, generation: int, phase: str = "registered", health: str = "healthy") -> dict:  # type: ignore[type-arg]
    return {"id": rid, "service": "api", "generation": generation, "phase": phase, "health": health}


OTHER = {"id": "web-1", "service": "web", "generation": 7, "phase": "registered", "health": "healthy"}


def test_a_rolling_replacement_from_start_to_finish() -> None:
    before = [replica("api-1", 1), replica("api-2", 1), OTHER]
    restart = rs.begin("api", 2, before)
    assert (restart.generation, restart.old_at_start) == (2, 2)
    steps = [
        before,
        [*before, replica("api-3", 2, "starting", "initial"), replica("api-4", 2, "starting", "initial")],
        [*before, replica("api-3", 2), replica("api-4", 2, "registered", "initial")],
        [replica("api-1", 1, "draining", "draining"), replica("api-3", 2), replica("api-4", 2)],
        [replica("api-3", 2), replica("api-4", 2)],
    ]
    progress = [rs.progress(restart, step) for step in steps]
    assert [(p["new_healthy"], p["old_left"], p["fraction"]) for p in progress] == [
        (0, 2, 0.0), (0, 2, 0.0), (1, 2, 0.25), (2, 1, 0.75), (2, 0, 1.0),
    ]  # fmt: skip
    assert rs.progress(restart, steps[2])["text"] == "generation 2: 1/2 new replicas healthy, 2 old left"
    restart.state, restart.message = rs.DONE, "replaced; now api-3, api-4"
    assert rs.progress(restart, steps[-1]) | {"new_healthy": 0} == {
        "service": "api", "state": "done", "generation": 2, "new_healthy": 0, "old_left": 0,
        "fraction": 1.0, "text": "replaced; now api-3, api-4",
    }  # fmt: skip
