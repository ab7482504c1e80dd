"""`microforum up` with `command` services (the stand-in in standin.py): real processes, real LB.

One stack runs for the module; the tests follow its life in order: served through the load
balancer, `status`, a replica SIGKILLed under load, a rolling `restart` under load, then Ctrl-C
leaving no process behind. Separate short-lived stacks cover crash loops and user mistakes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from up_helpers import (
    STANDIN,
    Load,
    UpProcess,
    alive,
    family,
    kill_replica_under_load,
    microforum,
    status,
    up,
)

from microforum.local.control import MAX_PENDING_CONNECTIONS

INTERVAL, TIMEOUT, UNHEALTHY_THRESHOLD = 5, 2, 2
# ALB takes at most interval x unhealthy_threshold (+ one timeout) to notice a dead target; the
# supervisor notices a dead replica sooner (its exit), so failures must all fall in this window.
DETECTION_BOUND = INTERVAL * UNHEALTHY_THRESHOLD + TIMEOUT

STACK = f"""
name: standin
services:
  web:
    command: [{json.dumps(sys.executable)}, {json.dumps(str(STANDIN))}]
    desired_count: 2
    health_check: {{path: /, interval: {INTERVAL}, timeout: {TIMEOUT}, healthy_threshold: 2,
                    unhealthy_threshold: {UNHEALTHY_THRESHOLD}}}
    deregistration_delay: 1
listener:
  port: 80
  default_action: {{forward: web}}
  rules: []
"""


def write_stack(directory: Path, text: str = STACK) -> Path:
    path = directory / "stack.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_stack(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="module")
def stack(stack_file: Path) -> Iterator[UpProcess]:
    with up(stack_file) as process:
        process.wait_ready()
        yield process


def whoami(bodies: set[bytes]) -> set[int]:
    return {int(b.split()[0]) for b in bodies}


def test_up_serves_through_the_load_balancer_and_writes_the_access_log(
    stack: UpProcess, stack_file: Path
) -> None:
    with Load(stack.url, "/whoami", clients=1) as load:
        while load.count() < 20:
            time.sleep(0.01)
    assert load.failures() == []
    assert len(whoami(load.bodies())) == 2  # round robin over both replicas
    access_log = stack_file.parent / ".microforum" / "access.log"
    deadline = time.monotonic() + 10  # the load balancer flushes its log about every second
    while "/whoami" not in access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f'"GET {stack.url}/whoami HTTP/1.1"' in access_log.read_text()


def test_status_shows_every_target_healthy(stack: UpProcess, stack_file: Path) -> None:
    result = microforum("status", "--stack", str(stack_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"stack standin at {stack.url}"
    assert "target group web" in lines
    assert sum(1 for line in lines if " healthy " in f"{line} ") == 2
    assert any(line.strip().startswith("requests ") for line in lines)
    body = status(stack_file)
    assert [t["state"] for t in body["target_groups"]["web"]["targets"]] == ["healthy"] * 2
    assert {r["phase"] for r in body["replicas"]} == {"registered"}


def test_sigkill_of_a_replica_under_load_is_replaced_and_no_longer_targeted(
    stack: UpProcess, stack_file: Path
) -> None:
    before = status(stack_file)
    victim = before["replicas"][0]
    with Load(stack.url, "/whoami") as load:
        killed_at, settled_at, targets = kill_replica_under_load(stack, stack_file, victim, "web", 2)
    failures = load.failures(since=killed_at)
    print(
        f"\nSIGKILL under load: {len(failures)} failed of {load.count(killed_at)} requests: "
        f"{sorted({str(o) for _, o in failures})}"
    )
    assert victim["id"] not in {t["id"] for t in targets}
    assert all(t - killed_at <= DETECTION_BOUND for t, _ in failures), failures
    assert victim["pid"] not in whoami(load.bodies(since=settled_at))
    assert len(whoami(load.bodies(since=settled_at))) == 2


def test_rolling_restart_under_load_fails_no_request(stack: UpProcess, stack_file: Path) -> None:
    before = status(stack_file)
    old_pids = {r["pid"] for r in before["replicas"]}
    with Load(stack.url, "/whoami") as load:
        time.sleep(0.3)
        started = time.monotonic()
        result = microforum("restart", "web", "--stack", str(stack_file))
        done = time.monotonic()
        time.sleep(0.3)
    assert result.returncode == 0, result.stderr
    print(f"\nrestart under load: {len(load.failures())} failed of {load.count(started)} requests")
    assert load.failures() == []
    assert load.count(started) > 0
    assert not old_pids & whoami(load.bodies(since=done))
    assert len(whoami(load.bodies(since=done))) == 2


def test_a_second_up_on_the_same_stack_is_refused(stack: UpProcess, stack_file: Path) -> None:
    result = microforum("up", "--stack", str(stack_file), "--port", "0")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"microforum: start the local stack: one is already running from {stack_file.parent}"
    )


def test_300_idle_control_connections_use_few_descriptors_and_status_and_restart_answer(
    stack: UpProcess, stack_file: Path
) -> None:
    control = json.loads((stack_file.parent / ".microforum" / "control.json").read_text())
    port = int(control["url"].rsplit(":", 1)[1])
    before = len(os.listdir(f"/proc/{stack.proc.pid}/fd"))
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    try:
        assert status(stack_file)["stack"] == "standin"
        during = len(os.listdir(f"/proc/{stack.proc.pid}/fd"))
        assert during - before <= MAX_PENDING_CONNECTIONS + 8, (before, during)
        more = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]  # still coming
        idle += more
        result = microforum("restart", "web", "--stack", str(stack_file))
        assert result.returncode == 0, result.stderr
        assert "web: replaced; now" in result.stdout
    finally:
        for sock in idle:
            sock.close()


def test_sigint_drains_stops_everything_and_exits_0(stack: UpProcess, stack_file: Path) -> None:
    started = family(stack.proc.pid)
    assert len(started) >= 2
    assert stack.stop(signal.SIGINT) == 0
    assert alive(started) == set()
    assert not (stack_file.parent / ".microforum" / "control.json").exists()
    assert "SIGINT received: draining and stopping every replica" in stack.output
    result = microforum("status", "--stack", str(stack_file))
    assert result.returncode == 1
    assert result.stderr.startswith("microforum: no local stack is running")


def test_sigterm_also_stops_cleanly(tmp_path: Path) -> None:
    with up(write_stack(tmp_path)) as process:
        process.wait_ready()
        started = family(process.proc.pid)
        assert process.stop(signal.SIGTERM) == 0
        assert alive(started) == set()


def test_crash_loop_backs_off_and_names_the_service_and_its_last_lines(tmp_path: Path) -> None:
    crash = "    environment: {STANDIN_CRASH: 'boom: no db'}\n"
    text = STACK.replace("    deregistration_delay: 1\n", "    deregistration_delay: 1\n" + crash)
    with up(write_stack(tmp_path, text)) as process:
        process.wait_for(r"web-\d+ exited with code 3 \(2nd failure in a row\); restarting in 1 s")
        assert "    boom: no db" in process.output
        assert process.stop() == 0


def test_invalid_stack_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_stack(tmp_path, STACK.replace("interval: 5", "interval: 1"))
    result = microforum("up", "--stack", str(path), "--port", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"microforum: {path}: services.web.health_check.interval: must be 5..300, got 1"
    )


def test_port_in_use_is_one_line_with_a_hint(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = microforum("up", "--stack", str(write_stack(tmp_path)), "--port", str(port))
    assert result.returncode == 1
    first, hint = result.stderr.splitlines()
    assert first == f"microforum: start the load balancer on 127.0.0.1:{port}: the port is already in use"
    assert hint.startswith("hint: ") and "--port" in hint


def test_restart_of_an_unknown_service_or_without_a_stack(tmp_path: Path) -> None:
    path = write_stack(tmp_path)
    result = microforum("restart", "web", "--stack", str(path))
    assert result.returncode == 1
    assert "no local stack is running" in result.stderr
    with up(path) as process:
        process.wait_ready()
        result = microforum("restart", "nope", "--stack", str(path))
        assert result.returncode == 1
        assert result.stderr.startswith("microforum: restart service 'nope': no such service")
        assert process.stop() == 0


def test_replicas_follow_a_killed_up(tmp_path: Path) -> None:
    with up(write_stack(tmp_path)) as process:
        process.wait_ready()
        started = family(process.proc.pid)
        process.proc.kill()  # no clean-up at all: the replicas get SIGTERM from the kernel
        process.proc.wait(10)
        deadline = time.monotonic() + 10
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(started) == set()


def test_a_second_ctrl_c_kills_replicas_that_do_not_stop(tmp_path: Path) -> None:
    stubborn = "    environment: {STANDIN_IGNORE_TERM: '1'}\n"
    text = STACK.replace("    deregistration_delay: 1\n", "    deregistration_delay: 1\n" + stubborn)
    with up(write_stack(tmp_path, text)) as process:
        process.wait_ready()
        started = family(process.proc.pid)
        process.proc.send_signal(signal.SIGINT)
        process.wait_for("SIGINT received: draining and stopping every replica")
        process.wait_for(r"replica web-\d: draining, then stopping")
        assert process.stop(signal.SIGINT) == 0
        assert "SIGINT received again: killing every replica now" in process.output
        assert "did not stop within" not in process.output
        assert alive(started) == set()
