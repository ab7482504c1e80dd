"""Fixtures for the container tests: podman configured for this machine, the local base image,
the four service images, and a local registry that asks for a password as ECR does.

Facts from docs/containers.md: podman here needs runc and explicit ulimits with
soft == hard (scripts/containers.conf, given through CONTAINERS_CONF); Docker Hub is unreachable, so the
Dockerfile builds FROM a Debian base made with mmdebstrap (scripts/make_base_image.sh, cached as a
tarball between runs); `docker-registry` with htpasswd auth stands in for ECR.
Everything is session-scoped and built lazily: only the `containers` tests pay for it.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port, stop, wait_http

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BASE_IMAGE = "localhost/python-base:bookworm"
REGISTRY_USER = "AWS"  # ECR's login user name
CONTAINERS_CONF = (ROOT / "scripts" / "containers.conf").read_text()  # what docs/containers.md tells users
_SIZES: dict[str, int] = {}
LAYER_SIZES: dict[str, list[int]] = {}  # image -> its non-empty layers' sizes, last layer first


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run podman with this session's configuration; output captured as text."""
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Podman usable here: skipped (with the reason) when it is not installed."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (apt-get install podman buildah runc mmdebstrap)")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    saved = os.environ.get("CONTAINERS_CONF")
    os.environ["CONTAINERS_CONF"] = str(conf)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CONTAINERS_CONF", None)
        else:
            os.environ["CONTAINERS_CONF"] = saved


@pytest.fixture(scope="session")
def base_image(podman_env: None) -> str:
    """The local Python base image (made once, then loaded from the cache tarball)."""
    subprocess.run([str(ROOT / "scripts" / "make_base_image.sh"), BASE_IMAGE], check=True, timeout=600)
    return BASE_IMAGE


@dataclass(frozen=True)
class Built:
    tag: str
    images: dict[str, str]  # service -> local ref
    cli_output: str
    commit: str | None  # the checkout's HEAD when they were built (None outside git)


@pytest.fixture(scope="session")
def built(base_image: str) -> Iterator[Built]:
    """Every service image, built through the CLI as a user would."""
    tag = f"test-{uuid.uuid4().hex[:8]}"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    argv = [
        sys.executable,
        "-m",
        "microforum",
        "images",
        "build",
        "--engine",
        "podman",
        "--base-image",
        base_image,
        "--tag",
        tag,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, f"images build failed:\n{proc.stderr[-4000:]}"
    images = dict(line.split("\t") for line in proc.stdout.splitlines())
    for ref in images.values():
        _SIZES[ref] = int(podman("image", "inspect", "--format", "{{.Size}}", ref).stdout)
    yield Built(tag=tag, images=images, cli_output=proc.stdout, commit=head.stdout.strip() or None)
    for ref in images.values():  # leave only the cached layers behind
        podman("rmi", "--force", ref, check=False)


@dataclass(frozen=True)
class Registry:
    host: str  # localhost:PORT
    password: str

    def get(
        self, path: str, *, auth: bool = True, method: str = "GET", accept: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """An HTTP request to the registry API; (status, headers, body)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"http://{self.host}{path}", method=method)
        if auth:
            token = base64.b64encode(f"{REGISTRY_USER}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        if accept:
            request.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


def _start_registry(directory: Path, *, read_only: bool = False) -> tuple[subprocess.Popen[bytes], Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    password = uuid.uuid4().hex
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", REGISTRY_USER, password], capture_output=True, text=True, check=True
    ).stdout
    (directory / "htpasswd").write_text(htpasswd)
    port = free_port()
    (directory / "config.yml").write_text(_registry_config(directory, port, read_only))
    # The registry reads every REGISTRY_* variable as a config override (podman sets some).
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    log = open(directory / "registry.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [binary, "serve", str(directory / "config.yml")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_http(f"http://127.0.0.1:{port}/v2/", timeout=15, process=proc)
    return proc, Registry(host=f"localhost:{port}", password=password)


def _registry_config(directory: Path, port: int, read_only: bool) -> str:
    return f"""\
version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {directory / "data"}}}
  maintenance: {{readonly: {{enabled: {str(read_only).lower()}}}}}
http: {{addr: "127.0.0.1:{port}"}}
auth:
  htpasswd: {{realm: microforum-test, path: {directory / "htpasswd"}}}
"""


@pytest.fixture(scope="session")
def registry(podman_env: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A local registry with htpasswd auth (user AWS, a random password), like ECR's login."""
    proc, reg = _start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    stop(proc)


@pytest.fixture()
def read_only_registry(podman_env: None, tmp_path: Path) -> Iterator[Registry]:
    """A registry that accepts the login but refuses every push."""
    proc, reg = _start_registry(tmp_path, read_only=True)
    yield reg
    stop(proc)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report the size of each image built and its layers after an edit (issues 5 and 18)."""
    if _SIZES:
        terminalreporter.section("microforum image sizes")
        for ref, size in _SIZES.items():
            terminalreporter.write_line(f"{ref}: {size / 1e6:.0f} MB")
    for ref, sizes in LAYER_SIZES.items():
        shown = ", ".join(f"{size / 1e6:.2f} MB" for size in sizes)
        terminalreporter.write_line(f"{ref} after a one-line edit, layers from the last: {shown}")
