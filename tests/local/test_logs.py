"""`microforum logs`: the pure parts as tables, the files the supervisor keeps, and the command
over a real `up` (its replicas' lines interleaved in time, by service, --since, --follow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from up_helpers import STANDIN, microforum, up

from microforum.errors import UsageError
from microforum.local.logs import files_by_source, merge, parse_duration, parse_line, print_logs
from microforum.local.replicalogs import ReplicaLogs, stamp, timestamp


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1.5s", 1.5), ("1h2m3s", 3723)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "-5m", "1m1h"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration(text)


def test_stamps_and_lines() -> None:
    assert timestamp(0.5) == b"1970-01-01T00:00:00.500Z "
    assert stamp(b"a\nb\n", b"T ") == b"T a\nT b\n"
    assert stamp(b"a\rb\r\n", b"T ") == b"T a\rb\r\n"  # only a newline ends a line, as on the terminal
    assert parse_line("web-1", "2026-12-05T04:25:01.123Z GET / 200") == (
        "2026-12-05T04:25:01.123Z",
        "web-1",
        "GET / 200",
    )
    assert parse_line("web-1", "no stamp") == ("", "web-1", "no stamp")


def test_merge_interleaves_in_time_from_since() -> None:
    a = [("T1", "web-1", "a1"), ("T3", "web-1", "a3")]
    b = [("T2", "web-2", "b2"), ("T4", "web-2", "b4")]
    assert [line[2] for line in merge([a, b])] == ["a1", "b2", "a3", "b4"]
    assert [line[2] for line in merge([a, b], since="T3")] == ["a3", "b4"]


def test_rotated_files_are_read_oldest_first_and_a_service_selects_its_replicas(tmp_path: Path) -> None:
    for name in (
        "web-1.log",
        "web-1.log.1",
        "web-1.log.2",
        "web-10.log",
        "api-1.log",
        "microforum.log",
        "x.tmp",
    ):
        (tmp_path / name).write_text("")
    got = files_by_source(tmp_path, "web")
    assert {s: [p.name for p in paths] for s, paths in got.items()} == {
        "web-1": ["web-1.log.2", "web-1.log.1", "web-1.log"],
        "web-10": ["web-10.log"],
    }
    assert sorted(files_by_source(tmp_path, None)) == ["api-1", "microforum", "web-1", "web-10"]
    assert list(files_by_source(tmp_path, "web-10")) == ["web-10"]


def test_replica_logs_rotate_and_are_read_back_across_the_rotation(tmp_path: Path) -> None:
    clock = iter(float(i) for i in range(1000))
    logs = ReplicaLogs(tmp_path, max_bytes=100, files=3, clock=lambda: next(clock))
    for i in range(12):
        logs.write("web-1", f"line {i}\n".encode())
        logs.write("web-2", f"other {i}".encode())  # no newline: one is added
        logs.flush()  # (one write per line, so the rotation is the same every run)
    logs.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "web-1.log", "web-1.log.1", "web-1.log.2", "web-2.log", "web-2.log.1", "web-2.log.2",
    ]  # fmt: skip
    printed: list[str] = []
    print_logs(tmp_path, "web-1", None, False, printed.append)
    # the oldest lines rotated away; the rest in order, each once
    numbers = [int(line.rsplit(" ", 1)[1]) for line in printed]
    assert numbers == list(range(numbers[0], 12)) and numbers[0] > 0
    assert printed[-1] == "web-1       | line 11"


STACK = f"""
name: logs
services:
  web:
    command: [{json.dumps(sys.executable)}, {json.dumps(str(STANDIN))}]
    desired_count: 2
listener:
  default_action: {{forward: web}}
  rules: []
"""


def test_logs_of_a_running_stack_by_service_since_and_following(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    with up(stack_file) as stack:
        stack.wait_ready()
        every = microforum("logs", "--stack", str(stack_file))
        assert every.returncode == 0, every.stderr
        lines = every.stdout.splitlines()
        assert any(line.startswith("web-1       | standin listening on ") for line in lines)
        assert any(line.startswith("web-2       | standin listening on ") for line in lines)
        assert any(line.startswith("microforum  | stack 'logs' ready at") for line in lines)
        only_web = microforum("logs", "web", "--since", "1h", "--stack", str(stack_file)).stdout.splitlines()
        assert only_web and all(line.startswith("web-") for line in only_web)
        follower = subprocess.Popen(
            [sys.executable, "-m", "microforum", "logs", "web", "--follow", "--stack", str(stack_file)],
            stdout=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        try:
            time.sleep(1.0)
            assert microforum("restart", "web", "--stack", str(stack_file)).returncode == 0
            stack.wait_for(r"web-4 +\| standin listening on")
            time.sleep(1.0)
        finally:
            follower.terminate()
            followed = follower.communicate(timeout=10)[0].splitlines()
        assert any(line.startswith("web-3       | standin listening on ") for line in followed)
        assert any(line.startswith("web-4       | standin listening on ") for line in followed)
        assert len([line for line in followed if "web-1       | standin listening" in line]) == 1
        print("\n" + "\n".join(followed))
        assert stack.stop() == 0
    later = microforum("logs", "--since", "10m", "--stack", str(stack_file))
    assert "microforum  | stopped" in later.stdout
    nothing = microforum("logs", "--since", "0s", "--stack", str(stack_file))
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in (tmp_path / ".microforum" / "logs").iterdir())


def test_logs_refuses_an_unknown_service_and_a_bad_duration(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    unknown = microforum("logs", "nope", "--stack", str(stack_file))
    assert (unknown.returncode, unknown.stderr.splitlines()[0]) == (
        2,
        f"microforum: logs nope: no such service in {stack_file}",
    )
    bad = microforum("logs", "--since", "yesterday", "--stack", str(stack_file))
    assert bad.returncode == 2 and "--since 'yesterday': not a duration" in bad.stderr
    assert "Traceback" not in unknown.stderr + bad.stderr
