"""`microforum up --containers`: the stack served from the images, through the local ALB.

The images are built by `up` itself (layer cache: the `built` fixture made them already) and
every replica runs as a container with host networking on its dynamic port; posts reach users
and threads through the load balancer, as on ECS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Built, podman
from helpers import free_port, output_of, running
from microforum.images.runner import LABEL

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


def our_containers() -> list[str]:
    return podman("ps", "--all", "--quiet", "--filter", f"label={LABEL}").stdout.split()


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
    env = {"MICROFORUM_BASE_IMAGE": base_image, "CONTAINERS_CONF": os.environ["CONTAINERS_CONF"]}
    url = f"http://127.0.0.1:{port}"
    with running(argv, env=env, cwd=str(ROOT)) as up:
        wait_ready(f"{url}/api/users", up, timeout=240)
        wait_ready(f"{url}/api/posts", up, timeout=60)
        assert len(our_containers()) == 5  # 2 users + threads + posts + monolith
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
    assert our_containers() == []
