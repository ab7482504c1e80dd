"""Small pure pieces: trace ids, chunked bodies, problem bodies, OpenAPI generation."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from microforum.services import app as app_module
from microforum.services.app import App, build_app, open_databases
from microforum.services.http import HttpError, decode_body, problem
from microforum.services.model import NewUser
from microforum.services.openapi import build_document
from microforum.services.routes import root
from microforum.services.server import prepare
from microforum.services.settings import load_settings


def test_trace_id_in_alb_format_from_the_clock(tmp_path: Path) -> None:
    settings = load_settings("users", {"DATA_DIR": str(tmp_path)})
    prepare(settings)
    app = build_app(settings, open_databases(settings))
    try:
        trace = app.new_trace_id(now=0x5759E988)
        assert re.fullmatch(r"Root=1-5759e988-[0-9a-f]{24}", trace)
        assert app.new_trace_id(now=0x5759E988) != trace
    finally:
        app.close()


def test_problem_body_names_the_field() -> None:
    answer = problem(422, "username: too long", field="username")
    assert (answer.status, json.loads(answer.body)) == (
        422,
        {
            "type": "about:blank",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "username: too long",
            "field": "username",
        },
    )


def test_decode_body_errors() -> None:
    cases = {
        b'{"name": "x"}': (422, "username"),
        b"{": (400, None),
        b'{"username": "a b", "name": "x"}': (422, "username"),
    }
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
        "text/plain; charset=utf-8": {"schema": {"type": "string"}}
    }
    assert "405" in document["paths"]["/api/"]["get"]["responses"]


def test_the_asgi_interface_answers_like_the_rsgi_one(tmp_path: Path) -> None:
    """granian runs the RSGI entry point; the same app also speaks ASGI for other servers."""
    settings = load_settings("monolith", {"DATA_DIR": str(tmp_path)})
    prepare(settings)
    app = build_app(settings, open_databases(settings))
    try:
        get = asyncio.run(_asgi(app, "GET", "/api/users/1"))
        head = asyncio.run(_asgi(app, "HEAD", "/api/users/1"))
        made = asyncio.run(_asgi(app, "POST", "/api/users", b'{"username": "nept", "name": "N"}'))
        gone = asyncio.run(_asgi(app, "DELETE", f"/api/users/{json.loads(made[2])['id']}"))
    finally:
        app.close()
    assert (get[0], json.loads(get[2])["username"]) == (200, "marceline")
    assert get[1][b"content-type"] == b"application/json; charset=utf-8"
    assert re.fullmatch(rb"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", get[1][b"x-amzn-trace-id"])
    assert (head[0], head[1][b"content-length"], head[2]) == (200, get[1][b"content-length"], b"")
    assert (made[0], made[1][b"location"]) == (201, b"/api/users/5")
    assert (gone[0], b"content-length" in gone[1]) == (204, False)


async def _asgi(app: App, method: str, path: str, body: bytes = b"") -> tuple[int, dict, bytes]:
    sent: list[dict] = []
    headers = [(b"content-type", b"application/json")] if body else []
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_access_log_paths_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(app_module, "_write_log", lines.append)
    monkeypatch.setattr(app_module, "_PATHS_JSON", {})
    for n in range(app_module.MAX_PATHS_JSON + 10):
        path = f'/api/users/"{n}\\é'  # escaped in JSON, remembered escaped
        for _ in range(2):
            app_module._log("users", "GET", path, 200, time.perf_counter(), '"Root=1-0-0"')
            assert json.loads(lines[-1])["path"] == path
    assert len(app_module._PATHS_JSON) == 10
