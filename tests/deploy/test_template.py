"""The cluster template: cfn-lint reports nothing, checkov finds nothing unsuppressed.

Both run on infrastructure/ecs.yaml as written and on the template deploy actually sends (with
one task role per service added by render). checkov is heavy and its dependencies clash with
the project's, so it lives in its own virtualenv: $CHECKOV, else `checkov` on PATH, else
build/checkov-venv/, which conftest.py starts installing in the background when the session
begins (about a minute, overlapping the moto tests; .ci/run may create it first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import CHECKOV_BINARY, CHECKOV_LOCK, CHECKOV_LOG, ROOT

from microforum.deploy.render import render_template
from microforum.deploy.stack import default_template_path, load_template
from microforum.spec.load import load_stack

TEMPLATE = ROOT / "infrastructure" / "ecs.yaml"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = render_template(load_stack(ROOT / "stack.yaml"), load_template(default_template_path()))
    path = tmp_path_factory.mktemp("rendered") / "cluster.json"
    path.write_text(json.dumps(template, indent=1))
    return path


@pytest.fixture(scope="session")
def checkov(checkov_install: subprocess.Popen[str] | None) -> str:
    """The checkov binary; waits for the install conftest.py started in the background."""
    found = os.environ.get("CHECKOV") or shutil.which("checkov")
    if found:
        return found
    if checkov_install is not None:
        checkov_install.wait(timeout=900)
        log = CHECKOV_LOG.read_text()[-2000:]
        assert checkov_install.returncode == 0, f"installing checkov failed (see {CHECKOV_LOG}):\n{log}"
    elif not CHECKOV_BINARY.exists():  # another session is installing it: wait for its lock
        subprocess.run(["flock", str(CHECKOV_LOCK), "true"], check=True, timeout=900)
    assert CHECKOV_BINARY.exists(), f"{CHECKOV_BINARY} missing"
    return str(CHECKOV_BINARY)


@pytest.mark.parametrize("which", ["as-written", "rendered"])
def test_cfn_lint_reports_nothing(which: str, rendered: Path) -> None:
    path = TEMPLATE if which == "as-written" else rendered
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.fixture(scope="module")
def checkov_report(checkov: str, rendered: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run (it takes ~15 s to start) over both templates."""
    home = tmp_path_factory.mktemp("checkov-home")
    argv = [
        checkov,
        "-f",
        str(TEMPLATE),
        "-f",
        str(rendered),
        "--framework",
        "cloudformation",
        "--skip-download",
        "-o",
        "json",
    ]
    env = {**os.environ, "HOME": str(home)}  # checkov writes caches under $HOME
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=home, env=env)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("which", ["as-written", "rendered"])
def test_checkov_finds_nothing_unsuppressed(
    which: str, rendered: Path, checkov_report: dict[str, Any]
) -> None:
    path = str(TEMPLATE if which == "as-written" else rendered)
    results = checkov_report["results"]

    def mine(kind: str) -> list[dict[str, Any]]:
        return [r for r in results[kind] if r["file_abs_path"] == path]

    assert [(f["check_id"], f["resource"]) for f in mine("failed_checks")] == []
    assert len(mine("passed_checks")) > 20  # it really scanned this template
    skipped = mine("skipped_checks")
    assert skipped, "the template's suppressions were read"
    assert all(s["check_result"]["suppress_comment"].strip() for s in skipped), (
        "every suppression has a reason"
    )
