"""The control channel: how `microforum status` and `restart` reach a running `microforum up`.

`up` serves a tiny HTTP/1.1 API on 127.0.0.1 at a port the kernel picks, and writes
`<data_dir>/control.json` (mode 0600) with its URL, a random token and its pid; the file is
removed when `up` exits. Another terminal's `microforum status` / `restart` read that file (same
stack file, so same data directory) and call the API with `Authorization: Bearer <token>`:

    GET  /status                 -> {"stack", "url", "pid", "target_groups": LoadBalancer.describe(),
                                     "replicas": [...]}
    POST /restart?service=NAME   -> 200 {"service", "replicas"} once the rolling replacement is
                                    done (every new replica healthy, every old one drained)

Only loopback, only with the token: another user on the machine cannot read the file, so
cannot drive the stack. A connection has `READ_TIMEOUT` seconds to send its request head (408
otherwise), and at most `MAX_PENDING_CONNECTIONS` may be waiting for theirs: a newer one closes
the oldest, so idle connections cannot use up the stack's file descriptors or keep `status`
and `restart` out (docs/operations.md). A control file whose server does not answer is a stack that died
without cleaning up: the client says "no stack running" and removes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microforum.errors import MicroforumError

CONTROL_FILE = "control.json"
MAX_REQUEST_HEAD = 16 * 1024
CLIENT_TIMEOUT = 5.0
RESTART_TIMEOUT = 600.0  # a rolling replacement waits for health checks and draining
READ_TIMEOUT = 5.0  # seconds a connection has to send its whole request head
MAX_PENDING_CONNECTIONS = 32  # connections still sending their head; past it the oldest is closed

Handler = Callable[[str, str, dict[str, str]], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class ControlInfo:
    """What control.json holds."""

    url: str
    token: str
    pid: int
    stack_url: str


def control_path(data_dir: Path) -> Path:
    """Where the running stack of this data directory writes its control file."""
    return data_dir / CONTROL_FILE


# Server side -----------------------------------------------------------------------------------


class ControlServer:
    """Serves the control API for `handler(method, path, query) -> (status, json)`."""

    def __init__(self, handler: Handler, token: str | None = None, *,
                 read_timeout: float = READ_TIMEOUT,
                 max_pending: int = MAX_PENDING_CONNECTIONS) -> None:  # fmt: skip
        self._handler = handler
        self._read_timeout = read_timeout
        self._max_pending = max_pending
        self._pending: dict[asyncio.StreamWriter, None] = {}  # oldest first
        self.token = token or secrets.token_urlsafe(24)
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on 127.0.0.1, an ephemeral port; the base URL."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        """Stop listening (requests in progress are abandoned)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._pending):
            writer.transport.abort()

    def write_file(self, path: Path, stack_url: str, **extra: str) -> None:
        """Write control.json atomically, readable by this user only; `extra` keys are added
        (`console_url`: the console's address with its token)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"url": self.url, "token": self.token, "pid": os.getpid(), "stack_url": stack_url}
        body |= extra
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh)
        os.replace(tmp, path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._admit(writer)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self._read_timeout)
            answer = None
        except TimeoutError:
            answer = 408, {"error": "request not received in time"}
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            answer = 400, {"error": "malformed request"}
        finally:
            self._pending.pop(writer, None)
        if writer.is_closing():  # closed to make room for a newer connection
            return
        status, body = answer or await self._answer(head)
        await self._reply(writer, status, body)

    def _admit(self, writer: asyncio.StreamWriter) -> None:
        """Count a new connection as pending; past the cap, close the oldest pending one (so
        idle connections can neither exhaust file descriptors nor lock `status` out)."""
        self._pending[writer] = None
        while len(self._pending) > self._max_pending:
            oldest = next(iter(self._pending))
            del self._pending[oldest]
            oldest.transport.abort()

    async def _reply(self, writer: asyncio.StreamWriter, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {http.client.responses.get(status, '')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + payload)
            await asyncio.wait_for(writer.drain(), self._read_timeout)
        writer.close()

    async def _answer(self, head: bytes) -> tuple[int, Any]:
        if len(head) > MAX_REQUEST_HEAD:
            return 431, {"error": "request head too large"}
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" "), "", ""][:3]
        headers = dict(
            (k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])
        )
        if not secrets.compare_digest(headers.get("authorization", ""), f"Bearer {self.token}"):
            return 401, {"error": "missing or wrong token (read it from control.json)"}
        url = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            return await self._handler(method, url.path, query)
        except MicroforumError as exc:
            return 409, {"error": exc.message, "hint": exc.hint}
        except TimeoutError:
            return 504, {"error": f"{method} {url.path}: the stack did not finish in time"}
        except Exception as exc:  # a bug must not take the stack down; say what failed
            return 500, {"error": f"{method} {url.path}: internal error: {exc!r}"}


# Client side -----------------------------------------------------------------------------------


def read_control(data_dir: Path) -> ControlInfo:
    """The running stack's control info; MicroforumError when no stack runs there."""
    path = control_path(data_dir)
    try:
        raw = json.loads(path.read_text())
        return ControlInfo(str(raw["url"]), str(raw["token"]), int(raw["pid"]), str(raw["stack_url"]))
    except FileNotFoundError:
        raise _not_running(data_dir) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MicroforumError(f"read {path}: {exc}", hint="is `microforum up` running?") from exc


def call(info: ControlInfo, method: str, path: str, *, timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """Call the control API; the JSON answer. A refused connection means no stack runs."""
    url = urllib.parse.urlsplit(info.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {info.token}"})
        response = conn.getresponse()
        body: dict[str, Any] = json.loads(response.read() or b"{}")
    except ConnectionRefusedError:
        raise MicroforumError(
            f"reach the local stack at {info.url}: nothing answers (pid {info.pid} is gone)",
            hint="start it with `microforum up`",
        ) from None
    except (OSError, ValueError) as exc:
        raise MicroforumError(f"reach the local stack at {info.url}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise MicroforumError(str(body.get("error", f"HTTP {response.status}")), hint=body.get("hint"))
    return body


def _not_running(data_dir: Path) -> MicroforumError:
    return MicroforumError(
        f"no local stack is running (no {control_path(data_dir)})",
        hint="start it with `microforum up` (same --stack file) in another terminal",
    )
