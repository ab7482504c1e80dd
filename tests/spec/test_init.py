"""`microforum init [DIR]` and `microforum schema`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from microforum.spec.load import load_stack
from microforum.spec.schema import stack_schema

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microforum", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)  # fmt: skip


def test_init_writes_the_original_architecture_and_says_what_next(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "forum"))
    assert result.returncode == 0, result.stderr
    assert "next:" in result.stdout and "microforum up" in result.stdout
    written = tmp_path / "forum" / "stack.yaml"
    assert written.read_text() == (ROOT / "stack.yaml").read_text()  # the starter is the repository's stack
    assert load_stack(written) == load_stack(ROOT / "stack.yaml")
    assert json.loads((tmp_path / "forum" / "stack.schema.json").read_text()) == stack_schema()


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text("name: mine\n")
    refused = run("init", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.splitlines()[0] == "microforum: write stack.yaml: it already exists"
    assert (tmp_path / "stack.yaml").read_text() == "name: mine\n"
    assert run("init", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "stack.yaml").read_text().startswith("# yaml-language-server")


def test_init_in_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = run("init", str(tmp_path / "file" / "sub"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("microforum: write ")


def test_schema_prints_the_schema() -> None:
    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == stack_schema()
