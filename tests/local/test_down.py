"""SIGHUP and `microforum down` with process replicas (the container side: tests/images)."""

from __future__ import annotations

import signal
from pathlib import Path

from test_up_command import write_stack
from up_helpers import alive, family, microforum, up


def test_sighup_drains_and_stops_like_sigterm(tmp_path: Path) -> None:
    """A closed terminal sends SIGHUP: the stack drains and stops, nothing is left behind."""
    with up(write_stack(tmp_path)) as process:
        process.wait_ready()
        started = family(process.proc.pid)
        assert process.stop(signal.SIGHUP) == 0
        assert "SIGHUP received: draining and stopping every replica" in process.output
        assert alive(started) == set()


def test_down_stops_a_running_stack(tmp_path: Path) -> None:
    stack_file = write_stack(tmp_path)
    with up(stack_file) as process:
        process.wait_ready()
        started = family(process.proc.pid)
        result = microforum("down", "--stack", str(stack_file), timeout=120)
        assert result.returncode == 0, result.stderr
        assert "stopping the stack running from" in result.stdout
        assert process.proc.wait(30) == 0
        assert "SIGTERM received: draining and stopping every replica" in process.output
        assert alive(started) == set()
    again = microforum("down", "--stack", str(stack_file))
    assert again.returncode == 0 and again.stdout.startswith("nothing to do: no stack running from ")


def test_down_clears_what_a_killed_up_left(tmp_path: Path) -> None:
    stack_file = write_stack(tmp_path)
    with up(stack_file) as process:
        process.wait_ready()
        process.proc.kill()
        process.proc.wait(10)
    control = tmp_path / ".microforum" / "control.json"
    assert control.exists()
    result = microforum("down", "--stack", str(stack_file))
    assert result.returncode == 0, result.stderr
    assert "removed the control file of a stack that is gone" in result.stdout
    assert not control.exists()
