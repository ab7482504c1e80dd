"""The service images, built, run and pushed with podman (marker `containers`).

Built once per session through `microforum images build` (conftest.py); one container runs
with host networking and PORT set, as an ECS task in host mode would; pushes go to a local
registry through the same login flow as ECR (`--username AWS --password-stdin`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from conftest import ROOT, Built, Registry, podman
from helpers import free_port, wait_http
from microforum import images
from microforum.errors import MicroforumError
from microforum.spec import defaults

pytestmark = pytest.mark.containers

STOP_TIMEOUT = 10  # seconds `podman stop` waits before SIGKILL (ECS's default is 30)
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def inspect(ref: str) -> dict:
    return json.loads(podman("image", "inspect", ref).stdout)[0]


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def test_build_gives_one_image_per_service(built: Built) -> None:
    assert sorted(built.images) == sorted(defaults.BUILTIN_SERVICES)
    for service, ref in built.images.items():
        assert ref == f"localhost/microforum/{service}:{built.tag}"
        assert podman("image", "exists", ref, check=False).returncode == 0


@pytest.mark.parametrize("service", defaults.BUILTIN_SERVICES)
def test_image_config(built: Built, service: str) -> None:
    image = inspect(built.images[service])
    config = image["Config"]
    assert config["Cmd"] == ["microforum", "serve", service]  # exec form: no shell in between
    assert config["User"] == "microforum:microforum"
    assert "HOST=0.0.0.0" in config["Env"]  # `serve` alone listens on 127.0.0.1
    assert "3000/tcp" in config["ExposedPorts"]
    assert str(defaults.CONTAINER_PORT) + "/tcp" in config["ExposedPorts"]
    assert config["StopSignal"] in ("SIGTERM", "15")
    check = image.get("Healthcheck") or config["Healthcheck"]  # podman: top level; docker: Config
    # Same cadence as the target group health check (durations are in nanoseconds).
    assert check["Interval"] == defaults.HEALTH_CHECK_INTERVAL * 10**9
    assert check["Timeout"] == defaults.HEALTH_CHECK_TIMEOUT * 10**9
    assert check["Retries"] == defaults.UNHEALTHY_THRESHOLD


def test_runtime_image_is_lean(built: Built) -> None:
    script = (
        "test ! -e /src && test ! -e /opt/microforum/bin/pip && test ! -d /root/.cache/pip"
        " && ! command -v gcc && ! command -v cc"
        " && test -z \"$(find /opt/microforum -path '*/tests/*' -name 'test_*.py' -print -quit)\""
        " && python3 -c 'import microforum.services'"
    )
    ref = built.images["users"]
    proc = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", ref, "-c", script, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture()
def monolith(built: Built) -> Iterator[tuple[str, int]]:
    """The monolith's image running with host networking on a free PORT."""
    name, port = f"mf-test-{uuid.uuid4().hex[:8]}", free_port()
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--env",
        f"PORT={port}",
        built.images["monolith"],
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=30)
        yield name, port
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_container_serves_the_api_as_non_root(monolith: tuple[str, int]) -> None:
    name, port = monolith
    assert fetch(f"http://127.0.0.1:{port}/")[2] == "Ready to receive requests"
    status, content_type, body = fetch(f"http://127.0.0.1:{port}/api/users")
    assert status == 200 and content_type.startswith("application/json")
    assert any(user["username"] == "finn" for user in json.loads(body))
    threads = json.loads(fetch(f"http://127.0.0.1:{port}/api/threads")[2])
    assert threads and {"id", "title"} <= set(threads[0])
    uid = podman("exec", name, "id", "-u").stdout.strip()
    assert uid != "0"
    assert podman("healthcheck", "run", name, check=False).returncode == 0


def test_sigterm_stops_the_container_cleanly(monolith: tuple[str, int]) -> None:
    name, _ = monolith
    podman("stop", "--time", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 30)
    state = json.loads(podman("container", "inspect", name).stdout)[0]["State"]
    # 0, not 137: the server drained and exited on SIGTERM before podman fell back to SIGKILL.
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)


def test_push_every_image_with_the_ecr_login_flow(built: Built, registry: Registry) -> None:
    uri = f"{registry.host}/forum"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "microforum",
            "images",
            "push",
            "--engine",
            "podman",
            "--registry",
            uri,
            "--tag",
            built.tag,
            "--username",
            "AWS",
            "--password-stdin",
        ],
        input=registry.password + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pushed = dict(line.split("\t") for line in proc.stdout.splitlines())
    assert pushed == {s: f"{uri}/{s}:{built.tag}" for s in defaults.BUILTIN_SERVICES}
    assert registry.get("/v2/_catalog", auth=False)[0] == 401  # anonymous access refused
    catalog = json.loads(registry.get("/v2/_catalog")[2])["repositories"]
    assert sorted(catalog) == sorted(f"forum/{s}" for s in defaults.BUILTIN_SERVICES)
    for service in defaults.BUILTIN_SERVICES:
        tags = json.loads(registry.get(f"/v2/forum/{service}/tags/list")[2])["tags"]
        assert tags == [built.tag]
        status, headers, _ = registry.get(
            f"/v2/forum/{service}/manifests/{built.tag}", method="HEAD", accept=MANIFEST_V2
        )
        digest = {k.lower(): v for k, v in headers.items()}["docker-content-digest"]
        assert status == 200 and digest.startswith("sha256:")


def test_push_with_a_wrong_password_fails_in_one_line(built: Built, registry: Registry) -> None:
    with pytest.raises(MicroforumError, match=r"^log in to registry localhost:\d+ as AWS: "):
        images.push(
            {"users": built.images["users"]},
            registry=registry.host,
            tag=built.tag,
            username="AWS",
            password="wrong",
            engine="podman",
            on_progress=lambda _: None,
        )


def test_a_refused_push_is_detected(built: Built, read_only_registry: Registry) -> None:
    reg = read_only_registry
    with pytest.raises(MicroforumError, match=r"^push image for service 'users' to "):
        images.push(
            {"users": built.images["users"]},
            registry=reg.host,
            tag=built.tag,
            username="AWS",
            password=reg.password,
            engine="podman",
            on_progress=lambda _: None,
        )
    assert json.loads(reg.get("/v2/_catalog")[2])["repositories"] == []


def test_bridge_network_with_a_dynamic_host_port(built: Built) -> None:
    """As ECS runs it: bridge network, container port 3000 published on a dynamic host port."""
    name = f"mf-test-{uuid.uuid4().hex[:8]}"
    podman("run", "--detach", "--name", name, "--publish", "127.0.0.1::3000", built.images["users"])
    try:
        host_port = int(podman("port", name, "3000").stdout.strip().rsplit(":", 1)[1])
        wait_http(f"http://127.0.0.1:{host_port}/", timeout=30)
        status, _, body = fetch(f"http://127.0.0.1:{host_port}/api/users/1")
        assert status == 200 and json.loads(body)["id"] == 1
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
