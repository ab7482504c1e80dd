"""`microforum images ...` as a user meets it: one line and an exit code for each mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from microforum.images.content import CONTEXT_DIRS, CONTEXT_FILES, snapshot

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, path: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "microforum", "images", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["build", "forum"], 2, "microforum: build images: unknown service 'forum'"),
        (["build", "--tag", "a:b"], 2, "microforum: image tag 'a:b' is not valid"),
        (["push", "--registry", "x y"], 2, "microforum: registry 'x y' is not a registry URI"),
        (
            ["push", "--registry", "localhost:5000"],
            2,
            "microforum: push images: no password for registry localhost:5000",
        ),
        (
            ["push", "--registry", "localhost:5000", "--password-stdin"],
            2,
            "microforum: push images: --password-stdin given but standard input is empty",
        ),
    ],
    ids=["unknown-service", "bad-tag", "bad-registry", "no-password", "empty-stdin"],
)
def test_mistakes_are_one_line(args: list[str], code: int, line: str, tmp_path: Path) -> None:
    # A stand-in `podman` that does nothing: these mistakes are caught before any real work.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "podman").write_text("#!/bin/sh\nexit 0\n")
    (fake / "podman").chmod(0o755)
    proc = cli(*args, path=str(fake))
    assert (proc.returncode, proc.stderr.splitlines()[0]) == (code, line), proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_engine_is_one_line(tmp_path: Path) -> None:
    proc = cli("build", "users", path=str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "microforum: no container engine: neither docker nor podman is installed",
        "hint: install podman (apt-get install podman) or start Docker, then retry",
    ]


def test_snapshot_holds_what_dockerignore_lets_through(tmp_path: Path) -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert allowed | {"Dockerfile", ".dockerignore"} == set(CONTEXT_FILES) | set(CONTEXT_DIRS)
    with snapshot(ROOT) as copy:
        assert (copy / "Dockerfile").read_bytes() == (ROOT / "Dockerfile").read_bytes()
        assert (copy / "src" / "microforum" / "images" / "build.py").is_file()
        assert not list(copy.rglob("__pycache__"))
    assert not copy.exists()
