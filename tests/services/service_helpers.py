"""Helpers for the services tests: start `microforum serve`, talk HTTP to it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from helpers import free_port, running

START_TIMEOUT = 30.0


@dataclass
class Answer:
    """One HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Service:
    """A running `microforum serve` process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request; `body` is sent as JSON, `raw` as is."""
        return call(self.port, method, path, body, raw=raw, headers=headers)

    def get(self, path: str) -> Answer:
        return self.call("GET", path)


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One HTTP request to 127.0.0.1:port on a fresh connection."""
    sent = dict(headers or {})
    payload = raw
    if body is not None:
        payload = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def serve_argv(name: str, port: int, *extra: str) -> list[str]:
    """The command line that serves `name` on `port`."""
    return [sys.executable, "-m", "microforum", "serve", name, "--port", str(port),
            "--host", "127.0.0.1", *extra]


@contextlib.contextmanager
def serving(
    name: str, data_dir: str | os.PathLike[str], env: Mapping[str, str] | None = None,
    *extra: str, port: int | None = None,
) -> Iterator[Service]:
    """Run `microforum serve name` with DATA_DIR=data_dir (plus `env`) until the block ends."""
    port = port or free_port()
    full_env = {"DATA_DIR": str(data_dir), "API_URL": "http://127.0.0.1:9", **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with running(serve_argv(name, port, *extra), full_env, port, timeout=START_TIMEOUT) as proc:
        yield Service(name, port, proc, full_env)
