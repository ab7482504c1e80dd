"""`microforum up --containers`: the stack served from the images, through the local ALB.

The images are built by `up` itself (layer cache: the `built` fixture made them already) and
every replica runs as a container with host networking on its dynamic port; posts reach users
and threads through the load balancer, as on ECS. Then what happens around it: a killed `up`
and its leftovers, SIGHUP, `down`, a failing engine, the environment.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import CONTAINERS_CONF, ROOT, Built, podman
from helpers import free_port, output_of, running
from microforum.images.leftovers import STACK_LABEL, stack_id

pytestmark = pytest.mark.containers

STACK = """\
name: containers-test
services:
  users: {desired_count: 2}
  threads: {desired_count: 1}
  posts: {desired_count: 1}
  monolith: {desired_count: 1}
"""


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll `url` until it answers 200 (the LB answers 503 until targets are healthy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"up exited with {proc.returncode}:\n{output_of(proc)[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready within {timeout} s:\n{output_of(proc)[-4000:]}")


def our_containers(stack_file: Path) -> list[str]:
    """The containers labelled with the stack of `stack_file` (its data directory)."""
    label = f"label={STACK_LABEL}={stack_id(stack_file.parent / '.microforum')}"
    return podman("ps", "--all", "--format", "{{.Names}}", "--filter", label).stdout.split()


def up_argv(stack_file: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "microforum",
        "up",
        "--containers",
        "--stack",
        str(stack_file),
        "--port",
        str(port),
    ]


def up_env(base_image: str) -> dict[str, str]:
    return {"MICROFORUM_BASE_IMAGE": base_image, "CONTAINERS_CONF": os.environ["CONTAINERS_CONF"]}


def down(stack_file: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "microforum", "down", "--stack", str(stack_file)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=str(ROOT))


MONOLITH = """\
name: {name}
services:
  monolith: {{desired_count: {count}}}
listener:
  default_action: {{forward: monolith}}
  rules: []
"""


def monolith_stack(tmp_path: Path, count: int = 1) -> Path:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(MONOLITH.format(name=tmp_path.name.replace("_", "-")[:30], count=count))
    return stack_file


def test_up_containers_serves_the_original_api(built: Built, base_image: str, tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(STACK)
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "microforum",
        "up",
        "--containers",
        "--stack",
        str(tmp_path / "stack.yaml"),
        "--port",
        str(port),
    ]
    env = up_env(base_image)
    url = f"http://127.0.0.1:{port}"
    with running(argv, env=env, cwd=str(ROOT)) as up:
        wait_ready(f"{url}/api/users", up, timeout=240)
        wait_ready(f"{url}/api/posts", up, timeout=60)
        assert len(our_containers(tmp_path / "stack.yaml")) == 5  # 2 users + threads + posts + monolith
        users = get_json(f"{url}/api/users")
        assert isinstance(users, list) and users[1]["username"] == "finn"
        assert get_json(f"{url}/api/threads/1")["id"] == 1  # type: ignore[index]
        posts = get_json(f"{url}/api/posts/in-thread/1")
        assert isinstance(posts, list) and posts and all(p["thread"] == 1 for p in posts)
        request = urllib.request.Request(
            f"{url}/api/posts",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"thread": 1, "user": 2, "text": "from a container"}).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # posts asks users + threads
            assert resp.status in (200, 201)
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, output_of(up)[-4000:]
    assert our_containers(tmp_path / "stack.yaml") == []
    assert (tmp_path / ".microforum" / "data").stat().st_mode & 0o777 == 0o700  # not world-writable


def test_a_killed_up_leaves_containers_the_next_up_removes_and_sighup_stops(
    built: Built, base_image: str, tmp_path: Path
) -> None:
    stack_file = monolith_stack(tmp_path, count=2)
    port = free_port()
    with running(up_argv(stack_file, port), env=up_env(base_image), cwd=str(ROOT)) as up:
        wait_ready(f"http://127.0.0.1:{port}/api/users", up, timeout=240)
        first = our_containers(stack_file)
        assert len(first) == 2
        up.kill()  # SIGKILL: no chance to clean up
        up.wait(30)
    assert our_containers(stack_file) == first  # still running: the leftovers
    port = free_port()
    with running(up_argv(stack_file, port), env=up_env(base_image), cwd=str(ROOT)) as up:
        wait_ready(f"http://127.0.0.1:{port}/api/users", up, timeout=240)
        assert "removing 2 container(s) left by an earlier run of this stack" in output_of(up)
        second = our_containers(stack_file)
        assert len(second) == 2 and not set(second) & set(first)
        up.send_signal(signal.SIGHUP)  # a closed terminal: drain and stop, as SIGTERM
        assert up.wait(60) == 0, output_of(up)[-4000:]
        assert "SIGHUP received: draining and stopping every replica" in output_of(up)
    assert our_containers(stack_file) == []


def test_down_removes_the_stack_whatever_happened_to_its_up(
    built: Built, base_image: str, tmp_path: Path
) -> None:
    stack_file = monolith_stack(tmp_path)
    port = free_port()
    with running(up_argv(stack_file, port), env=up_env(base_image), cwd=str(ROOT)) as up:
        wait_ready(f"http://127.0.0.1:{port}/api/users", up, timeout=240)
        up.kill()
        up.wait(30)
    assert len(our_containers(stack_file)) == 1
    proc = down(stack_file)
    assert proc.returncode == 0 and "removing 1 container(s) left by an earlier run" in proc.stdout, (
        proc.stderr
    )
    assert our_containers(stack_file) == []

    port = free_port()  # a running stack: stopped (drained) by down
    with running(up_argv(stack_file, port), env=up_env(base_image), cwd=str(ROOT)) as up:
        wait_ready(f"http://127.0.0.1:{port}/api/users", up, timeout=240)
        proc = down(stack_file)
        assert proc.returncode == 0 and "stopping the stack running from" in proc.stdout, proc.stderr
        assert up.wait(30) == 0
    assert our_containers(stack_file) == []
    assert "nothing to do" in down(stack_file).stdout


def test_an_engine_failure_stops_up_in_one_line(built: Built, base_image: str, tmp_path: Path) -> None:
    """An OCI runtime that cannot start containers: `up` says so once and exits, no retrying."""
    runtime = tmp_path / "broken-runc"
    runtime.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" create "*|*" run "*) echo "broken-runc: cannot start" >&2; exit 1;; esac\n'
        'exec runc "$@"\n'
    )
    runtime.chmod(0o755)
    conf = tmp_path / "containers.conf"
    broken = CONTAINERS_CONF.replace('runtime = "runc"', 'runtime = "broken"')
    conf.write_text(f'{broken}[engine.runtimes]\nbroken = ["{runtime}"]\n')
    stack_file = monolith_stack(tmp_path)
    env = {**up_env(base_image), "CONTAINERS_CONF": str(conf)}
    with running(up_argv(stack_file, free_port()), env=env, cwd=str(ROOT)) as up:
        assert up.wait(120) == 1, output_of(up)[-4000:]
        lines = output_of(up).splitlines()
    errors = [line for line in lines if line.startswith(("microforum:", "hint:"))]
    assert len(errors) == 2, lines[-20:]
    assert errors[0].startswith("microforum: run replica monolith-1: podman run exited with 12")
    assert errors[1].startswith("hint: the container engine failed, not the service")
    assert not any("monolith-2" in line for line in lines)  # not retried
    assert our_containers(stack_file) == []


def test_the_environment_reaches_the_containers(
    built: Built, base_image: str, tmp_path: Path, postgres: Any
) -> None:
    """DATABASE_URL reaches a container as it reaches a process: the write lands in PostgreSQL."""
    import psycopg

    database = postgres.create_database("ctr")
    stack_file = monolith_stack(tmp_path)
    port = free_port()
    env = {**up_env(base_image), "DATABASE_URL": database}
    with running(up_argv(stack_file, port), env=env, cwd=str(ROOT)) as up:
        wait_ready(f"http://127.0.0.1:{port}/api/users", up, timeout=240)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/users",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"username": "container-bmo", "name": "BMO"}).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 201
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT name FROM users WHERE username = 'container-bmo'").fetchall()
    assert rows == [("BMO",)]
    assert not list((tmp_path / ".microforum" / "data").glob("*.db"))  # no SQLite on the side


def test_a_sqlite_database_url_is_refused_before_any_build(tmp_path: Path) -> None:
    stack_file = monolith_stack(tmp_path)
    argv = up_argv(stack_file, free_port())
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        "MICROFORUM_BASE_IMAGE": "localhost/none:0",
    }
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd=str(ROOT))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith(
        f"microforum: DATABASE_URL=sqlite:///{tmp_path}/x.db names a"
    )
    assert "build" not in proc.stdout


def test_the_port_is_checked_before_any_image_is_built(tmp_path: Path) -> None:
    stack_file = monolith_stack(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "MICROFORUM_BASE_IMAGE": "localhost/microforum-no-such-base:0"}
        argv = up_argv(stack_file, port)
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        f"microforum: start the load balancer on 127.0.0.1:{port}: the port is already in use"
    )
    assert "build monolith" not in proc.stdout + proc.stderr
