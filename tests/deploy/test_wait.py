"""The wait's progress and a failed rollout, and destroy's wait for tasks to stop.

moto cannot run a deployment that fails (no circuit breaker), keep tasks running, or write
service events, so these few tests give `wait_stable` and destroy the AWS responses as
recorded stand-ins, one per poll, and a fake clock: what cannot run here, faked at the boundary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import Recorded

from microforum.deploy.destroy import DestroyOptions, stop_services
from microforum.deploy.images import content_tag
from microforum.deploy.wait import wait_stable
from microforum.errors import MicroforumError
from microforum.images.content import TAG_PREFIX


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def service(running: int, desired: int, rollout: str, events: list[str] = (), **extra: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "serviceName": "users",
        "runningCount": running,
        "desiredCount": desired,
        "deployments": [{"rolloutState": rollout, **extra}],
        "events": [{"id": f"e{i}", "message": m} for i, m in reversed(list(enumerate(events)))],
    }


def test_the_wait_shows_counts_rollout_new_events_and_target_health_then_stability() -> None:
    unhealthy = {"State": "unhealthy", "Reason": "Target.ResponseCodeMismatch"}
    aws = Recorded(
        describe_services=[
            {"services": [service(0, 2, "IN_PROGRESS", ["(service users) has started 2 tasks"])]},
            {
                "services": [
                    service(
                        1, 2, "IN_PROGRESS", ["(service users) has started 2 tasks", "registered 1 target"]
                    )
                ]
            },
            {"services": [service(2, 2, "COMPLETED")]},
        ],
        describe_target_health=[
            {
                "TargetHealthDescriptions": [
                    {"Target": {"Id": "i-1", "Port": 32768}, "TargetHealth": unhealthy}
                ]
            }
        ],
    )
    lines: list[str] = []
    clock = Clock()
    already = wait_stable(aws, "c", ["users"], lines.append, clock, 60, 5, {"users": "arn:tg"})  # type: ignore[arg-type]
    assert already is False
    assert lines == [
        "  users: 0/2 running, rollout IN_PROGRESS, 1 deployment",
        "    event: (service users) has started 2 tasks",
        "    target i-1:32768 unhealthy (Target.ResponseCodeMismatch)",
        "  waiting (0s)",
        "  users: 1/2 running, rollout IN_PROGRESS, 1 deployment",
        "    event: registered 1 target",  # each event once
        "    target i-1:32768 unhealthy (Target.ResponseCodeMismatch)",
        "  waiting (5s)",
        "services stable after 10s: users",
    ]


def test_a_failed_rollout_names_the_stopped_tasks_reasons() -> None:
    failed = service(
        0, 1, "FAILED", rolloutStateReason="ECS deployment circuit breaker: tasks failed to start."
    )
    aws = Recorded(
        describe_services=[{"services": [failed]}],
        list_tasks=[{"taskArns": ["t1", "t2"]}],
        describe_tasks=[
            {
                "tasks": [
                    {"stoppedReason": "Essential container in task exited"},
                    {"stoppedReason": "Essential container in task exited"},
                ]
            }
        ],
    )
    with pytest.raises(MicroforumError) as info:
        wait_stable(aws, "c", ["users"], print, Clock(), 60, 5)  # type: ignore[arg-type]
    assert info.value.message == (
        "deploy service users: the deployment failed (ECS deployment circuit breaker: tasks failed to "
        "start.); stopped tasks: Essential container in task exited"
    )


def test_destroy_waits_for_the_tasks_to_stop_before_going_on() -> None:
    aws = Recorded(
        list_services=[{"serviceArns": ["arn:svc/users"]}],
        describe_services=[{"services": [{"serviceName": "users", "status": "ACTIVE"}]}],
        update_service=[{}],
        delete_service=[{}],
        list_tasks=[{"taskArns": ["t1", "t2"]}, {"taskArns": ["t1"]}, {"taskArns": []}],
    )
    lines: list[str] = []
    clock = Clock()
    stop_services(aws, "c", lines.append, clock.sleep, DestroyOptions("mf", poll=5))  # type: ignore[arg-type]
    assert lines == [
        "- scale service users to 0 and delete it",
        "  waiting for 2 tasks to stop (0s)",
        "  waiting for 1 tasks to stop (5s)",
    ]
    assert clock.now == 10


def test_the_content_tag_follows_the_build_context_only(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "src" / "pkg" / "a.py").write_text("A = 1\n")
    first = content_tag(tmp_path)
    assert first.startswith(TAG_PREFIX) and len(first) == len(TAG_PREFIX) + 16
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir()
    (tmp_path / "src" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "notes.txt").write_text("not in the image")
    assert content_tag(tmp_path) == first
    (tmp_path / "src" / "pkg" / "a.py").write_text("A = 2\n")
    assert content_tag(tmp_path) != first
