"""stack.yaml's `database.ca_bundle`: a readable PEM file of certificates that fits a task
definition, or one line naming the problem (docs/stack-yaml.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from microforum.spec import defaults as d
from microforum.spec.load import SpecError, load_stack
from tls_certs import make_ca

ROOT = Path(__file__).resolve().parents[2]


def _stack(tmp_path: Path, bundle: str) -> Path:
    text = (ROOT / "stack.yaml").read_text() + f"database:\n  ca_bundle: {bundle}\n"
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def test_a_bundle_relative_to_the_stack_file_is_read(tmp_path: Path) -> None:
    ca, _ = make_ca("test CA")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "rds.pem").write_bytes(ca)
    stack = load_stack(_stack(tmp_path, "certs/rds.pem"))
    assert stack.database.ca_bundle == "certs/rds.pem"
    assert stack.database.ca_pem == ca.decode()
    assert load_stack(ROOT / "stack.yaml").database.ca_pem == ""  # none given: require only


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read {path}: No such file or directory"),
        (b"hello\n", "{path} is not a PEM file of certificates (no BEGIN CERTIFICATE line)"),
        (
            b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            "{path} is not a PEM file of certificates",
        ),
        (
            b"x" * (d.DATABASE_CA_BUNDLE_MAX_BYTES + 1),
            "{path} is 32 KiB, over the 32 KiB a task definition can carry",
        ),
    ],
    ids=["missing", "not pem", "bad certificate", "too big"],
)
def test_a_bad_bundle_is_one_line_naming_the_key(tmp_path: Path, content: bytes | None, problem: str) -> None:
    if content is not None:
        (tmp_path / "ca.pem").write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_stack(_stack(tmp_path, "ca.pem"))
    assert info.value.path == "database.ca_bundle"
    assert info.value.problem.startswith(problem.format(path=tmp_path / "ca.pem")), info.value.problem
