"""The supervisor in-process, with the real load balancer and real stand-in processes.

Covers what is awkward through `microforum up`: losing the race for a port (someone else
listens on it, or holds it bound) and an unhealthy target being replaced.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from up_helpers import STANDIN

from microforum.errors import MicroforumError
from microforum.lb.balancer import LoadBalancer
from microforum.local import supervisor as sup
from microforum.local.processes import LogStream, ProcessRunner
from microforum.spec.load import parse_stack
from microforum.spec.model import Stack


def standin_stack(environment: dict[str, str] | None = None, desired: int = 1) -> Stack:
    return parse_stack({
        "name": "t",
        "services": {"web": {
            "command": [sys.executable, str(STANDIN)], "desired_count": desired,
            "environment": environment or {}, "deregistration_delay": 0,
            "health_check": {"interval": 5, "timeout": 2, "unhealthy_threshold": 2},
        }},
        "listener": {"default_action": {"forward": "web"}, "rules": []},
    })  # fmt: skip


async def run_until(stack: Stack, tmp: Path, condition: str, *, timeout: float = 30) -> str:
    """Run a supervisor until its log contains `condition`, then shut it down; the log."""
    out = io.StringIO()
    log = LogStream(out)
    lb = LoadBalancer(stack)
    port = await lb.start("127.0.0.1", 0)
    supervisor = sup.Supervisor(
        stack, lb, ProcessRunner(log), log, data_dir=tmp, api_url=f"http://127.0.0.1:{port}"
    )
    supervisor.on_ready(lambda: log.line("test", "READY"))
    task = asyncio.ensure_future(supervisor.run())
    try:
        async with asyncio.timeout(timeout):
            while condition not in out.getvalue():
                await asyncio.sleep(0.02)
    finally:
        supervisor.request_shutdown("test over")
        await asyncio.wait_for(task, 15)
        await lb.close()
    assert supervisor.reconciler.all_stopped()
    return out.getvalue()


@pytest.fixture
def taken_port(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A port held by this test (listening or only bound), handed to the first replica."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    if request.param == "listening":
        sock.listen()
    port = sock.getsockname()[1]
    original = sup.PortAllocator.allocate
    handed: list[int] = []

    def allocate(self: sup.PortAllocator) -> int:
        if not handed:
            handed.append(port)
            return port
        return original(self)

    monkeypatch.setattr(sup.PortAllocator, "allocate", allocate)
    yield port
    sock.close()


@pytest.mark.parametrize("taken_port", ["listening", "bound"], indirect=True)
def test_a_replica_that_lost_its_port_is_started_on_another(taken_port: int, tmp_path: Path) -> None:
    output = asyncio.run(run_until(standin_stack(), tmp_path, "READY"))
    assert "replica web-1 could not bind its port; starting it on another" in output
    assert "failure in a row" not in output  # a lost race is not a crash
    assert f"listening on {taken_port}" not in output
    assert "web-2       | standin listening on" in output


def test_an_unhealthy_target_is_replaced_with_its_reason(tmp_path: Path) -> None:
    # 503 on the health check path: `initial`, then `unhealthy` after 2 x 5 s, then replaced.
    stack = standin_stack({"STANDIN_HEALTH": "503"})
    output = asyncio.run(run_until(stack, tmp_path, "web-2       | standin listening on"))
    assert (
        "replica web-1: its target is unhealthy (Target.ResponseCodeMismatch: Health checks "
        "failed with these codes: [503]); replacing it; its last lines:\n"
    ) in output


def test_snapshot_lists_replicas_for_status(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, object]]:
        stack = standin_stack(desired=2)
        log = LogStream(io.StringIO())
        lb = LoadBalancer(stack)
        await lb.start("127.0.0.1", 0)
        supervisor = sup.Supervisor(stack, lb, ProcessRunner(log), log, data_dir=tmp_path, api_url="")
        ready = asyncio.Event()
        supervisor.on_ready(ready.set)
        task = asyncio.ensure_future(supervisor.run())
        await asyncio.wait_for(ready.wait(), 30)
        snapshot = supervisor.snapshot()
        assert json.loads(json.dumps(lb.describe()))["web"]["targets"]
        supervisor.request_shutdown("done")
        await asyncio.wait_for(task, 15)
        await lb.close()
        return snapshot

    snapshot = asyncio.run(scenario())
    assert [(r["id"], r["phase"], r["health"]) for r in snapshot] == [
        ("web-1", "registered", "healthy"),
        ("web-2", "registered", "healthy"),
    ]
    assert all(isinstance(r["pid"], int) and isinstance(r["port"], int) for r in snapshot)


def test_a_restart_whose_new_replicas_keep_failing_is_reported_and_old_ones_serve(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "broken"
    stack = standin_stack({"STANDIN_CRASH_IF_EXISTS": str(marker)})

    async def scenario() -> tuple[str, list[str]]:
        log = LogStream(io.StringIO())
        lb = LoadBalancer(stack)
        await lb.start("127.0.0.1", 0)
        supervisor = sup.Supervisor(stack, lb, ProcessRunner(log), log, data_dir=tmp_path, api_url="")
        ready = asyncio.Event()
        supervisor.on_ready(ready.set)
        task = asyncio.ensure_future(supervisor.run())
        await asyncio.wait_for(ready.wait(), 30)
        marker.write_text("the new code is broken")
        with pytest.raises(MicroforumError) as failed:
            await asyncio.wait_for(supervisor.request_restart("web"), 30)
        serving = [t.target.id for t in lb.target_health("web") if t.state == "healthy"]
        supervisor.request_shutdown("done")
        await asyncio.wait_for(task, 15)
        await lb.close()
        return failed.value.message, serving

    message, serving = asyncio.run(scenario())
    assert message == (
        "restart service 'web': its new replicas keep failing (3 failures in a row); "
        "the healthy old replicas keep serving"
    )
    assert serving == ["web-1"]
