"""Small pure pieces: trace ids, chunked bodies, problem bodies, OpenAPI generation."""

from __future__ import annotations

import json
import re

from microforum.services.app import new_trace_id
from microforum.services.http import HttpError, decode_body, problem
from microforum.services.model import NewUser
from microforum.services.openapi import build_document
from microforum.services.refs import _dechunk
from microforum.services.routes import root


def test_trace_id_in_alb_format_from_the_clock() -> None:
    trace = new_trace_id(now=0x5759E988)
    assert re.fullmatch(r"Root=1-5759e988-[0-9a-f]{24}", trace)
    assert new_trace_id(now=0x5759E988) != trace


def test_dechunk() -> None:
    assert _dechunk(b"4\r\n[1,2\r\n2;ext=1\r\n,3\r\n1\r\n]\r\n0\r\n\r\n") == b"[1,2,3]"


def test_problem_body_names_the_field() -> None:
    answer = problem(422, "username: too long", field="username")
    assert (answer.status, json.loads(answer.body)) == (422, {
        "type": "about:blank", "title": "Unprocessable Content", "status": 422,
        "detail": "username: too long", "field": "username"})


def test_decode_body_errors() -> None:
    cases = {b'{"name": "x"}': (422, "username"), b"{": (400, None),
             b'{"username": "a b", "name": "x"}': (422, "username")}
    for body, (status, field) in cases.items():
        try:
            decode_body(body, NewUser)
        except HttpError as exc:
            assert (exc.status, exc.field) == (status, field), body
        else:
            raise AssertionError(f"{body!r} was accepted")


def test_document_of_the_root_routes() -> None:
    document = build_document("users", root.routes())
    assert document["paths"]["/"]["get"]["responses"]["200"]["content"] == {
        "text/plain; charset=utf-8": {"schema": {"type": "string"}}}
    assert "405" in document["paths"]["/api/"]["get"]["responses"]
