"""Fixtures for the deploy tests: moto's server mode on loopback, and the tool pointed at it.

One moto server per session (`tests/deploy/moto_server.py`, moto plus one documented gap
filled), reset before each test with `POST /moto-api/reset`. The tool only sees
`AWS_ENDPOINT_URL`, fake credentials and `AWS_MAX_ATTEMPTS=1`: the same code runs against AWS.

moto's other gaps are worked around here, in the tests, never in the product:
- it skips `AWS::ECS::CapacityProvider` (and the cluster association) in CloudFormation, so the
  stack would have no `CapacityProviderName` output: the tests deploy a copy of
  infrastructure/ecs.yaml whose output is a fixed name (`moto_template`);
- it runs nothing: `MOTO_ECS_SERVICE_RUNNING=1` makes every service report one running task,
  so the tests' stack file asks for one task per service (`stack_file`); a second server with
  `MOTO_ECS_SERVICE_RUNNING=0` (`idle_aws`) has services that never become stable;
- it fails stack deletion (the VPC "has dependencies"): the destroy tests expect that one error.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import (
    CAPACITY_PROVIDER,
    CHECKOV_BINARY,
    CHECKOV_LOCK,
    CHECKOV_LOG,
    CHECKOV_VENV,
    CHECKOV_VERSION,
    READ_ONLY,
    ROOT,
    write_stack,
)

from helpers import free_port, running


@pytest.fixture(scope="session", autouse=True)
def checkov_install() -> Iterator[subprocess.Popen[str] | None]:
    """Start installing checkov into its own venv now, so the ~1 minute install overlaps the
    moto tests (test_template.py waits for it). Nothing happens when checkov is already there."""
    if os.environ.get("CHECKOV") or shutil.which("checkov") or CHECKOV_BINARY.exists():
        yield None
        return
    python = CHECKOV_VENV / "bin" / "python"
    install = (
        f"test -x {shlex.quote(str(CHECKOV_BINARY))} || "
        f"({shlex.quote(sys.executable)} -m venv {shlex.quote(str(CHECKOV_VENV))} && "
        f"{shlex.quote(str(python))} -m pip install --quiet checkov=={CHECKOV_VERSION})"
    )
    # flock: several test sessions (developers, CI) may share the checkout; one installs.
    script = f"flock {shlex.quote(str(CHECKOV_LOCK))} sh -c {shlex.quote(install)}"
    CHECKOV_VENV.parent.mkdir(parents=True, exist_ok=True)
    with CHECKOV_LOG.open("a") as log:
        process = subprocess.Popen(["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT, text=True)
    yield process
    if process.poll() is None:  # the session ended first (e.g. -k selected no template test)
        process.terminate()
        process.wait()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("moto_server.py")), str(port)]
    with running(argv, {"MOTO_ECS_SERVICE_RUNNING": "1"}, port, path="/moto-api/", timeout=30):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def idle_moto_url() -> Iterator[str]:
    """A second moto server whose services never run a task (they stay 0/N, never stable)."""
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("moto_server.py")), str(port)]
    with running(argv, {"MOTO_ECS_SERVICE_RUNNING": "0"}, port, path="/moto-api/", timeout=30):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture()
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh emulated account; the environment points boto3 (and the tool) at it."""
    return point_at(moto_url, monkeypatch)


@pytest.fixture()
def idle_aws(idle_moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """As `aws`, on the server whose services never become stable."""
    return point_at(idle_moto_url, monkeypatch)


def point_at(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_url


@pytest.fixture()
def moto_template(tmp_path: Path) -> Path:
    """infrastructure/ecs.yaml minus what moto skips (see the module docstring)."""
    template = yaml.safe_load((ROOT / "infrastructure" / "ecs.yaml").read_text())
    del template["Resources"]["CapacityProvider"]
    del template["Resources"]["ClusterCapacityProviders"]
    template["Outputs"]["CapacityProviderName"]["Value"] = CAPACITY_PROVIDER
    path = tmp_path / "ecs.yaml"
    path.write_text(yaml.safe_dump(template))
    return path


@pytest.fixture()
def stack_file(tmp_path: Path) -> Path:
    return write_stack(tmp_path / "stack.yaml")


class Calls:
    """Every AWS operation the tool called (service, operation), from a botocore event hook."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.made.append((model.service_model.service_name, model.name))

    @property
    def mutating(self) -> list[tuple[str, str]]:
        return [c for c in self.made if not c[1].startswith(READ_ONLY)]


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Count the tool's calls: wrap its one session factory (the seam in deploy/aws.py)."""
    from microforum.deploy import aws as aws_module

    counter = Calls()
    original = aws_module.new_session

    def counting(region: str | None) -> Any:
        session = original(region)
        session.events.register("before-call", counter)
        return session

    monkeypatch.setattr(aws_module, "new_session", counting)
    return counter
