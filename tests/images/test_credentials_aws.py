"""`images push` without --password-stdin on an ECR registry: the token from
ecr:GetAuthorizationToken, asked of moto's server mode (marker `aws`)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from helpers import free_port, running
from microforum.images.credentials import registry_password

pytestmark = pytest.mark.aws

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-p", str(port)]
    with running(argv, port=port, path="/moto-api/", timeout=30):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture()
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return moto_url


def test_the_password_is_the_ecr_token_s(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    token = boto3.client("ecr", region_name="eu-west-1").get_authorization_token()
    user, _, password = (
        base64.b64decode(token["authorizationData"][0]["authorizationToken"]).decode().partition(":")
    )
    assert user == "AWS" and password
    assert registry_password(f"https://{ECR}/forum") == password


def test_no_credentials_is_one_line_with_a_hint(aws_env: str, tmp_path: Path) -> None:
    # A fresh process (boto3 caches credentials per process) and a stand-in podman: the
    # failure is the token's, before any engine runs.
    (tmp_path / "podman").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "podman").chmod(0o755)
    env = {**os.environ, "PATH": str(tmp_path)}
    argv = [sys.executable, "-m", "microforum", "images", "push", "--registry", ECR]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr
    first, hint = proc.stderr.splitlines()
    assert first.startswith("microforum: get an ECR login token in eu-west-1: ")
    assert hint.startswith("hint: configure AWS credentials")
