"""Constants and helpers of the deploy tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
STACK_NAME = "mf-test"
SERVICES = ("users", "threads", "posts", "monolith")
TAG = "v1"
CAPACITY_PROVIDER = "mf-test-capacity"
CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = ROOT / "build" / "checkov-venv"
CHECKOV_BINARY = CHECKOV_VENV / "bin" / "checkov"
CHECKOV_LOG = ROOT / "build" / "checkov-install.log"
CHECKOV_LOCK = ROOT / "build" / "checkov-install.lock"
# Read-only AWS operations start like this; anything else changes something.
READ_ONLY = ("Describe", "List", "Get")


def client(name: str) -> Any:
    return boto3.client(name, region_name=REGION)


def write_stack(path: Path, edit: Any = None) -> Path:
    """The repository's stack.yaml with one task per service (moto reports one running), edited."""
    data = yaml.safe_load((ROOT / "stack.yaml").read_text())
    for service in data["services"].values():
        service["desired_count"] = 1
    if edit:
        edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def put_images(
    tag: str = TAG, services: tuple[str, ...] = SERVICES, prefix: str = STACK_NAME, *, tagged: bool = False
) -> None:
    """Repositories as a user might have made them by hand (or, `tagged`, as an earlier deploy
    made them), each holding an image `tag`."""
    ecr = client("ecr")
    for service in services:
        owner = [{"Key": "microforum:stack", "Value": STACK_NAME}] if tagged else []
        ecr.create_repository(repositoryName=f"{prefix}/{service}", tags=owner)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + "a" * 64,
            },
            "layers": [],
        }
        ecr.put_image(repositoryName=f"{prefix}/{service}", imageTag=tag, imageManifest=json.dumps(manifest))


def cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `microforum ARGV` in-process; (exit code, stdout, stderr)."""
    from microforum.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def deploy_args(stack: Path, template: Path, *extra: str) -> list[str]:
    return [
        "deploy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack),
        "--template", str(template), "--image-tag", TAG, "--no-database", *extra,
    ]  # fmt: skip


def run_cli_subprocess(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microforum", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


class Recorded:
    """An `Aws` stand-in answering each operation from a queue of recorded responses."""

    def __init__(self, **answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def call(self, service: str, operation: str, /, **params: Any) -> dict[str, Any]:
        self.calls.append(operation)
        queue = self.answers[operation]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def paginate(self, service: str, operation: str, key: str, /, **params: Any) -> Iterator[Any]:
        yield from self.call(service, operation, **params)[key]
