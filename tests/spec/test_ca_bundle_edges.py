"""`database.ca_bundle` at its edges (spec/load.py): a bundle of exactly the size limit, whole
messages (the RDS hint, the TLS library's reason), a file that is not ASCII. The happy path and
the usual refusals: test_ca_bundle.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ca_bundle import _stack

from microforum.spec import defaults as d
from microforum.spec.load import SpecError, load_stack
from tls_certs import make_ca


def refusal(tmp_path: Path, content: bytes, bundle: str = "ca.pem") -> str:
    (tmp_path / "ca.pem").write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_stack(_stack(tmp_path, bundle))
    assert info.value.path == "database.ca_bundle"
    return info.value.problem.replace(str(tmp_path / "ca.pem"), "PATH")


def test_a_bundle_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    ca, _ = make_ca("test CA")
    pem = ca + b"\n" * (d.DATABASE_CA_BUNDLE_MAX_BYTES - len(ca))
    (tmp_path / "ca.pem").write_bytes(pem)
    assert load_stack(_stack(tmp_path, "ca.pem")).database.ca_pem == pem.decode()


def test_a_bundle_over_the_limit_names_the_rds_bundle(tmp_path: Path) -> None:
    assert refusal(tmp_path, b"x" * (d.DATABASE_CA_BUNDLE_MAX_BYTES + 1)) == (
        "PATH is 32 KiB, over the 32 KiB a task definition can carry: use the "
        "RDS bundle of the stack's region (<region>-bundle.pem)"
    )


def test_a_bad_certificate_gives_the_tls_library_s_reason(tmp_path: Path) -> None:
    problem = refusal(tmp_path, b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert problem.startswith(
        "PATH is not a PEM file of certificates (no start line: cadata does not contain a certificate"
    ), problem


def test_a_file_that_is_not_ascii_cannot_be_read(tmp_path: Path) -> None:
    assert refusal(tmp_path, "caf\u00e9\n".encode()).startswith(
        "cannot read PATH: 'ascii' codec can't decode"
    )
