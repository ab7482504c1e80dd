"""`status`'s first line says what the listener will be on AWS (deploy's listeners)."""

from __future__ import annotations

from microforum.local.stack import _listener_note
from microforum.spec import defaults as d
from microforum.spec.load import parse_stack

ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"


def _note(listener: dict[str, object]) -> str:
    return _listener_note(
        parse_stack({"services": {"monolith": None}, "listener": {"rules": [], **listener}})
    )


def test_the_listener_note_names_the_aws_listeners() -> None:
    assert _note({"port": 8000}) == "HTTP here; on AWS: HTTP:8000 (no listener.certificate_arn)"
    assert _note({"port": 8000, "certificate_arn": ARN}) == (
        f"HTTP here; on AWS: HTTPS:443 ({d.TLS_POLICY}, {ARN}), HTTP:8000 answers 301 to HTTPS,"
        f" the services call each other on HTTP:{d.INTERNAL_LISTENER_PORT}"
    )
