"""The console's HTTP server: a page, its two files and a JSON API on 127.0.0.1.

    GET  /?token=T               -> 302 to / with the token as a cookie (as Jupyter does)
    GET  /                       -> the page (static/index.html)
    GET  /static/NAME            -> console.js, console.css
    GET  /api/state?group=&status=  -> view.state(...): picture, targets, charts, log lines
    POST /api/restart?service=S  -> 202 and the restart's progress; it goes on in the stack

Every request needs the token: in the cookie the first visit set, or as
`Authorization: token T` (or `Bearer T`). Without it: 401 saying where the URL is. Requests
whose Host is not this server's loopback address are refused (403: a page from another site
cannot reach it through DNS rebinding), and a restart must carry `X-Microforum-Console: 1`, a
header no cross-site form can send (the cookie is SameSite=Strict as well).

One request per connection, a head of at most MAX_HEAD bytes read within READ_TIMEOUT
seconds, at most MAX_CONNECTIONS at once: the page polls once a second, nothing more is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from microforum.console import restarts as rs
from microforum.console import view
from microforum.console.history import History
from microforum.console.logs import STATUS_FILTERS, select, tail
from microforum.console.topology import topology
from microforum.errors import MicroforumError
from microforum.spec import defaults as d
from microforum.spec.model import Stack

HOST = "127.0.0.1"
COOKIE = "microforum-console"
MAX_HEAD = 16 * 1024
READ_TIMEOUT = 10.0
MAX_CONNECTIONS = 32
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
)
UNAUTHORIZED = (
    "This is the microforum console. Open the URL that `microforum up` printed (it ends in "
    "?token=...); it is also `console_url` in .microforum/control.json."
)


class Balancer(Protocol):
    def describe(self) -> dict[str, Any]: ...


class Stackkeeper(Protocol):
    """What the console needs of the supervisor."""

    def snapshot(self) -> list[dict[str, Any]]: ...
    def request_restart(self, service: str) -> asyncio.Future[list[str]]: ...


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())

    def encode(self) -> bytes:
        lines = [
            f"HTTP/1.1 {self.status} {http.client.responses.get(self.status, '')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in (*SECURITY_HEADERS, *self.headers)),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def answer(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A JSON response."""
    return Response(status, json.dumps(body).encode(), headers=headers)


def parse_head(head: bytes) -> Request:
    """The request line and headers of `head` (header names lower-cased)."""
    lines = head.decode("latin-1").split("\r\n")
    method, target, *_ = [*lines[0].split(" "), "", ""]
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    url = urllib.parse.urlsplit(target)
    return Request(method, url.path, dict(urllib.parse.parse_qsl(url.query)), headers)


def cookie_value(headers: Mapping[str, str], name: str) -> str:
    """The value of cookie `name` in the request's Cookie header ("" when absent)."""
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


class ConsoleServer:
    """The console of one running stack; `start()` it inside `up`'s event loop."""

    def __init__(
        self, stack: Stack, lb: Balancer, keeper: Stackkeeper, access_log: Path, lb_url: str, *,
        port: int = 0,
    ) -> None:  # fmt: skip
        self.stack, self._lb, self._keeper, self._access_log = stack, lb, keeper, access_log
        self._port = port
        self.token = secrets.token_hex(24)
        self.topology = topology(stack, lb_url)
        self.history = History(int(d.CONSOLE_HISTORY / d.CONSOLE_SAMPLE_INTERVAL))
        self.restarts: dict[str, rs.Restart] = {}
        self._server: asyncio.Server | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._connections = 0
        self.url = ""

    @property
    def url_with_token(self) -> str:
        """The URL to open (the token in it is exchanged for a cookie on the first visit)."""
        return f"{self.url}/?token={self.token}"

    async def start(self) -> str:
        """Listen on 127.0.0.1 and start sampling the figures; the URL with its token."""
        self._server = await asyncio.start_server(self._serve, HOST, self._port)
        self.url = f"http://{HOST}:{self._server.sockets[0].getsockname()[1]}"
        self._sampler = asyncio.get_running_loop().create_task(self._sample())
        return self.url_with_token

    async def close(self) -> None:
        """Stop listening and sampling."""
        if self._sampler is not None:
            self._sampler.cancel()
            self._sampler = None
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _sample(self) -> None:
        while True:
            self.history.add(time.time(), self._lb.describe())
            await asyncio.sleep(d.CONSOLE_SAMPLE_INTERVAL)

    # HTTP --------------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        try:
            response = await self._respond(reader)
            writer.write(response.encode())
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._connections -= 1
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        if self._connections > MAX_CONNECTIONS:
            return answer(503, {"error": "too many connections to the console"})
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except asyncio.LimitOverrunError:
            return answer(431, {"error": "request head too large"})
        except asyncio.IncompleteReadError:
            return answer(400, {"error": "malformed request"})
        if len(head) > MAX_HEAD:
            return answer(431, {"error": "request head too large"})
        try:
            return self.route(parse_head(head))
        except Exception as exc:  # a bug must not take the stack down; say what failed
            return answer(500, {"error": f"console: internal error: {exc!r}"})

    def route(self, req: Request) -> Response:
        """The response to `req` (everything but the socket)."""
        if req.headers.get("host") not in {self.url.removeprefix("http://"), self._localhost()}:
            return answer(403, {"error": "the console answers only at " + self.url})
        if req.path == "/favicon.ico":  # browsers ask for it; there is none
            return Response(204)
        if req.method == "GET" and req.path == "/" and "token" in req.query:
            return self._login(req.query["token"])
        if not self._authorized(req):
            if req.path.startswith("/api/"):
                return answer(401, {"error": UNAUTHORIZED})
            return Response(401, UNAUTHORIZED.encode(), "text/plain; charset=utf-8")
        if req.method == "GET" and req.path == "/":
            return self._static("index.html")
        if req.method == "GET" and req.path.startswith("/static/"):
            return self._static(req.path.removeprefix("/static/"))
        if req.method == "GET" and req.path == "/api/state":
            return answer(200, self.state(req.query.get("group", ""), req.query.get("status", "")))
        if req.method == "POST" and req.path == "/api/restart":
            if req.headers.get("x-microforum-console") != "1":
                return answer(403, {"error": "a restart needs the header X-Microforum-Console: 1"})
            return self.restart(req.query.get("service", ""))
        return answer(404, {"error": f"no such page: {req.method} {req.path}"})

    def _localhost(self) -> str:
        return self.url.replace(f"http://{HOST}", "localhost")

    def _login(self, token: str) -> Response:
        if not secrets.compare_digest(token, self.token):
            return Response(401, UNAUTHORIZED.encode(), "text/plain; charset=utf-8")
        cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        return Response(302, b"", "text/plain", (("Location", "/"), ("Set-Cookie", cookie)))

    def _authorized(self, req: Request) -> bool:
        scheme, _, credential = req.headers.get("authorization", "").partition(" ")
        given = credential if scheme.lower() in {"token", "bearer"} else cookie_value(req.headers, COOKIE)
        return secrets.compare_digest(given, self.token)

    def _static(self, name: str) -> Response:
        if name not in STATIC:
            return answer(404, {"error": f"no such file: {name}"})
        body = resources.files("microforum.console").joinpath("static", name).read_bytes()
        return Response(200, body, STATIC[name])

    # The API -----------------------------------------------------------------------------------

    def state(self, group: str = "", status: str = "") -> dict[str, Any]:
        """`GET /api/state`: see `view.state`; unknown filters are ignored."""
        groups = {g["name"] for g in self.topology["groups"]}
        logs = select(
            tail(self._access_log),
            group if group in groups else "",
            status if status in STATUS_FILTERS else "",
            d.CONSOLE_LOG_LINES,
        )
        page = view.state(
            self.topology, self._lb.describe(), self._keeper.snapshot(), self.history, self.restarts,
            logs, d.CONSOLE_HISTORY / 60,
        )  # fmt: skip
        return {**page, "poll_interval": d.CONSOLE_POLL_INTERVAL}

    def restart(self, service: str) -> Response:
        """`POST /api/restart?service=S`: ask the stack for a rolling replacement of S."""
        services = {s.name: s for s in self.stack.services}
        if service not in services:
            return answer(404, {"error": f"no such service: {service!r} (have: {', '.join(services)})"})
        current = self.restarts.get(service)
        if current is not None and current.state == rs.RUNNING:
            return answer(409, {"error": f"service '{service}' is already being restarted"})
        replicas = self._keeper.snapshot()
        record = rs.begin(service, services[service].desired_count, replicas)
        try:
            done = self._keeper.request_restart(service)
        except MicroforumError as exc:
            return answer(409, {"error": exc.message})
        self.restarts[service] = record
        done.add_done_callback(lambda future: _finish(record, future))
        return answer(202, rs.progress(record, replicas))


def _finish(record: rs.Restart, future: asyncio.Future[list[str]]) -> None:
    if future.cancelled():
        record.state, record.message = rs.FAILED, "cancelled: the stack is stopping"
    elif (exc := future.exception()) is not None:
        record.state = rs.FAILED
        record.message = exc.message if isinstance(exc, MicroforumError) else repr(exc)
    else:
        record.state, record.message = rs.DONE, "replaced; now " + ", ".join(future.result())
