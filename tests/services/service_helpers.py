"""Helpers for the services tests: start `microforum serve`, talk HTTP to it (whole requests, or
raw bytes on one connection: `Wire`)."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from helpers import free_port, running

START_TIMEOUT = 30.0
WIRE_TIMEOUT = 10.0  # seconds a raw read may wait before the test fails


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
    timeout: float = 30,
) -> Answer:
    """One HTTP request to 127.0.0.1:port on a fresh connection."""
    sent = dict(headers or {})
    payload = raw
    if body is not None:
        payload = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


def serve_argv(name: str, port: int, *extra: str) -> list[str]:
    """The command line that serves `name` on `port`."""
    return [
        sys.executable,
        "-m",
        "microforum",
        "serve",
        name,
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *extra,
    ]


@contextlib.contextmanager
def serving(
    name: str,
    data_dir: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    *extra: str,
    port: int | None = None,
) -> Iterator[Service]:
    """Run `microforum serve name` with DATA_DIR=data_dir (plus `env`) until the block ends."""
    port = port or free_port()
    full_env = {"DATA_DIR": str(data_dir), "API_URL": "http://127.0.0.1:9", **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with running(serve_argv(name, port, *extra), full_env, port, timeout=START_TIMEOUT) as proc:
        yield Service(name, port, proc, full_env)


@dataclass
class Wire:
    """One client connection, read through a buffer so pipelined answers split cleanly."""

    sock: socket.socket
    file: BinaryIO

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, *, head: bool = False) -> Reply:
        """The next response (its body read by Content-Length; none for HEAD, 1xx, 204, 304)."""
        status_line = self.file.readline()
        assert status_line, "the connection closed instead of answering"
        _, status, _ = status_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(status)
        bodiless = head or code < 200 or code in (204, 304)
        body = b"" if bodiless else self.file.read(int(headers.get("content-length", "0")))
        return Reply(code, headers, body)

    def closed(self) -> bool:
        """True when the server closed the connection (EOF) with nothing more to read."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def connect(port: int) -> Wire:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WIRE_TIMEOUT)
    return Wire(sock, sock.makefile("rb"))


def get(path: str, *extra: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *extra, "", ""]
    return "\r\n".join(lines).encode()


def post(path: str, body: bytes, *extra: str) -> bytes:
    return get(path, "Content-Type: application/json", f"Content-Length: {len(body)}", *extra,
               method="POST") + body  # fmt: skip


async def first_alone(writes: list[Awaitable[Any]]) -> list[Any]:
    """Await `writes` together, the first sent a turn ahead of the others, so that (group
    commit) it is a batch alone and the others queue meanwhile and share the next; each
    result or exception, in order."""
    first = asyncio.ensure_future(writes[0])
    for _ in range(2):  # the write queued, then the group's task a turn away from taking it
        await asyncio.sleep(0)
    return await asyncio.gather(first, *writes[1:], return_exceptions=True)


def refused_at_commit(table: str, column: str) -> str:
    """SQL making the server refuse, at COMMIT, a transaction that inserted into `table` a row
    whose `column` starts with "poison" (a deferred check raising SQLSTATE 53100, as a full
    disk would)."""
    return f"""
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.{column} LIKE 'poison%' THEN
        RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON {table}
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""
