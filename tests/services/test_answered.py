"""Every request is answered: a handler that fails, however it fails, gets a problem response.

These run the services' own server (`Server` + `Connection`) in this process on 127.0.0.1,
with an app of a few handlers that fail on purpose, and talk HTTP to it over a real socket.
No database is needed: the failure is an executor future that raises, as a database call's
does when its server is gone. A request that is never answered fails the test after
`ANSWER_TIMEOUT` seconds instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from microforum.services.app import App
from microforum.services.connection import Connection, Server
from microforum.services.http import Request, Response, text_response
from microforum.services.routing import Operation, Route, Router
from microforum.services.storage import StorageUnavailable

ANSWER_TIMEOUT = 10.0  # seconds: far beyond any answer here; only a hang reaches it


def _raise(exc: Exception) -> None:
    raise exc


def _in_thread(exc: Exception) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        await asyncio.get_running_loop().run_in_executor(None, _raise, exc)
        return text_response("unreachable")

    return handler


async def _after_a_wait_fails(request: Request) -> Response:
    await asyncio.sleep(0)
    await asyncio.get_running_loop().run_in_executor(None, _raise, RuntimeError("second wait"))
    return text_response("unreachable")


async def _fine(request: Request) -> Response:
    await asyncio.get_running_loop().run_in_executor(None, lambda: None)
    return text_response("fine")


def _app() -> App:
    def route(path: str, handler: Callable[[Request], Awaitable[Response]]) -> Route:
        operation = Operation(handler, path)
        return Route(path, {"GET": operation, "POST": operation})

    return App("users", Router([
        route("/bug", _in_thread(RuntimeError("a bug in a storage function"))),
        route("/db-down", _in_thread(StorageUnavailable("postgresql: server at 10.0.0.7:5432 gone"))),
        route("/later", _after_a_wait_fails),
        route("/fine", _fine),
    ]), {})  # fmt: skip


async def _exchange(port: int, requests: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(requests))
    answers = []
    for request in requests:
        status_line = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
        assert status_line, "the connection closed instead of answering"
        headers = {}
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        head = request.startswith(b"HEAD ")
        body = b"" if head else await reader.readexactly(int(headers.get("content-length", "0")))
        answers.append((int(status_line.split()[1]), headers, body))
    writer.close()
    return answers


def _request(method: str, path: str) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".encode()


class _BrokenApp(App):
    """An app whose own machinery fails (not a handler): the server's last resort answers."""

    async def answer(self, *args: object, **kwargs: object) -> tuple[Response, str]:
        await asyncio.sleep(0)
        raise RuntimeError("a bug outside any handler")


async def _run(
    requests: list[bytes], app: App | None = None
) -> tuple[list[tuple[int, dict[str, str], bytes]], Server]:
    loop = asyncio.get_running_loop()
    server = Server(app or _app(), now=loop.time())
    listener = await loop.create_server(lambda: Connection(server), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        answers = await _exchange(port, requests)
    finally:
        listener.close()
        server.drain()
        await asyncio.wait_for(server.drained(), ANSWER_TIMEOUT)  # SIGTERM's drain completes
    return answers, server


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_a_failing_executor_future_is_a_500_and_the_connection_goes_on(method: str) -> None:
    answers, server = asyncio.run(_run([_request(method, "/bug"), _request(method, "/fine")]))
    assert [status for status, _, _ in answers] == [500, 200]
    if method != "HEAD":
        assert json.loads(answers[0][2])["detail"] == "internal error; see the service's log"
    assert server.busy == 0


def test_a_database_down_is_a_503_with_retry_after_and_no_address() -> None:
    answers, server = asyncio.run(_run([_request("GET", "/db-down")]))
    [(status, headers, body)] = answers
    assert status == 503 and int(headers["retry-after"]) > 0
    assert headers["content-type"].startswith("application/json")
    assert "10.0.0.7" not in body.decode() and "5432" not in body.decode()
    assert server.busy == 0


def test_a_failure_after_the_first_wait_is_answered_too() -> None:
    answers, server = asyncio.run(_run([_request("GET", "/later"), _request("GET", "/fine")]))
    assert [status for status, _, _ in answers] == [500, 200]
    assert server.busy == 0


def test_a_bug_outside_the_handlers_is_a_500_and_closes() -> None:
    answers, server = asyncio.run(_run([_request("GET", "/fine")], _BrokenApp("users", Router([]), {})))
    [(status, headers, _)] = answers
    assert (status, headers["connection"]) == (500, "close")
    assert server.busy == 0
