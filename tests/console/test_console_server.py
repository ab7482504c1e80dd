"""The console's HTTP server over a real socket: the token, the cookie, the guards, the API.

The server runs in-process with the real load balancer and supervisor objects of a stack that
is not started (no replicas: the page still answers, with no targets); requests are raw bytes
over 127.0.0.1, as a browser or curl sends them. The browser test (tests/local/
test_up_console.py) covers a running stack.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from microforum.console.server import COOKIE, MAX_HEAD, ConsoleServer
from microforum.lb.balancer import LoadBalancer
from microforum.local.processes import LogStream, ProcessRunner
from microforum.local.supervisor import Supervisor
from microforum.spec.load import load_stack

ROOT = Path(__file__).resolve().parents[2]
Send = Callable[[bytes], Awaitable[tuple[int, dict[str, str], bytes]]]


def serve(tmp_path: Path, scenario: Callable[[ConsoleServer, Send], Awaitable[None]]) -> None:
    stack = load_stack(ROOT / "stack.yaml")

    async def main() -> None:
        lb = LoadBalancer(stack, access_log=tmp_path / "access.log")
        log = LogStream(io.StringIO())
        keeper = Supervisor(stack, lb, ProcessRunner(log), log, data_dir=tmp_path, api_url="http://x")
        console = ConsoleServer(stack, lb, keeper, tmp_path / "access.log", "http://127.0.0.1:8080")
        await console.start()
        port = int(console.url.rsplit(":", 1)[1])

        async def send(raw: bytes) -> tuple[int, dict[str, str], bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw)
            answer = await reader.read()
            writer.close()
            head, _, body = answer.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            return int(lines[0].split()[1]), headers, body

        try:
            await scenario(console, send)
        finally:
            await console.close()

    asyncio.run(main())


def request(console: ConsoleServer, target: str, *headers: str, method: str = "GET") -> bytes:
    host = console.url.removeprefix("http://")
    return "\r\n".join([f"{method} {target} HTTP/1.1", f"Host: {host}", *headers, "", ""]).encode()


def test_the_token_is_traded_for_a_cookie_and_nothing_answers_without_either(tmp_path: Path) -> None:
    async def scenario(console: ConsoleServer, send: Send) -> None:
        status, _, body = await send(request(console, "/"))
        assert status == 401 and b"console_url" in body
        assert (await send(request(console, "/?token=wrong")))[0] == 401
        status, headers, _ = await send(request(console, f"/?token={console.token}"))
        assert status == 302 and headers["location"] == "/"
        assert headers["set-cookie"] == f"{COOKIE}={console.token}; Path=/; HttpOnly; SameSite=Strict"
        cookie = f"Cookie: other=1; {COOKIE}={console.token}"
        status, headers, body = await send(request(console, "/", cookie))
        assert status == 200 and b"<title>microforum console</title>" in body
        assert headers["content-security-policy"].startswith("default-src 'self'")
        status, headers, _ = await send(request(console, "/static/console.js", cookie))
        assert status == 200 and headers["content-type"].startswith("text/javascript")
        assert (await send(request(console, "/static/../server.py", cookie)))[0] == 404
        assert (await send(request(console, "/api/state", f"Cookie: {COOKIE}=stale")))[0] == 401

    serve(tmp_path, scenario)


def test_the_state_lists_every_rule_and_group(tmp_path: Path) -> None:
    async def scenario(console: ConsoleServer, send: Send) -> None:
        status, _, body = await send(request(console, "/api/state", f"Authorization: token {console.token}"))
        state = json.loads(body)
        assert status == 200 and state["stack"] == "microforum" and state["url"] == "http://127.0.0.1:8080"
        assert [g["name"] for g in state["groups"]] == ["users", "threads", "posts", "monolith"]
        for priority in ("1", "2", "3", "default"):
            assert f'data-priority="{priority}"' in state["picture"]
        assert all(len(g["charts"]) == 4 for g in state["groups"])

    serve(tmp_path, scenario)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /api/state HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403),  # DNS rebinding
        (b"GET /favicon.ico HTTP/1.1\r\nHost: {host}\r\n\r\n", 204),
        (b"GET /api/state HTTP/1.1\r\nHost: {host}\r\nX-Pad: " + b"a" * MAX_HEAD + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: {host}\r\n", 400),  # the head never ends
    ],
    ids=["other-host", "favicon", "huge-head", "cut-head"],
)
def test_guards(tmp_path: Path, raw: bytes, status: int) -> None:
    async def scenario(console: ConsoleServer, send: Send) -> None:
        host = console.url.removeprefix("http://").encode()
        data = raw.replace(b"{host}", host)
        if status == 400:  # send the start, then close our side: an incomplete head
            reader, writer = await asyncio.open_connection("127.0.0.1", int(console.url.rsplit(":", 1)[1]))
            writer.write(data)
            writer.write_eof()
            assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
            writer.close()
            return
        assert (await send(data))[0] == status

    serve(tmp_path, scenario)


def test_a_restart_needs_the_header_and_a_known_service(tmp_path: Path) -> None:
    async def scenario(console: ConsoleServer, send: Send) -> None:
        auth = f"Authorization: token {console.token}"
        assert (await send(request(console, "/api/restart?service=users", auth, method="POST")))[0] == 403
        status, _, body = await send(
            request(console, "/api/restart?service=nope", auth, "X-Microforum-Console: 1", method="POST")
        )
        assert status == 404 and "have: users, threads, posts, monolith" in json.loads(body)["error"]
        assert console.restarts == {}

    serve(tmp_path, scenario)
