"""A small HTTP/1.1 client for the services' calls to each other: GETs on pooled keep-alive
connections, responses parsed by httptools (the parser the server already uses).

Only what those calls need: GET and HEAD with a few headers, answers framed by Content-Length
or chunked. Each origin (`http://host:port`) keeps up to `MAX_IDLE` idle connections; a call
takes the most recently used one (LIFO: the warmest, and the others age out) or opens one.
A connection goes back to the pool only after a complete answer that did not ask to close.

A pooled connection may have been closed by the peer while idle (the load balancer's idle
timeout, a replica restarting): a call that fails on a reused connection before any byte of
the answer arrived is sent once more on a fresh one, as GET and HEAD are idempotent
(RFC 9110 9.2.2). docs/api.md gives the reasons for keeping this client rather than a library.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Final

import httptools

MAX_IDLE: Final = 16  # idle connections kept per origin


class _Connection(asyncio.Protocol):
    """One client connection: sends a request, collects one answer at a time."""

    def __init__(self) -> None:
        # Per connection.
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        # Per request.
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.started = False  # some of the answer arrived

    # Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # a stream: asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.started = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("connection closed before the answer ended"))

    # Parser callbacks

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((self.parser.get_status_code(), b"".join(self.body)))

    # Requests

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send `request`; the future gets (status, body)."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.body, self.started = [], False
        self.transport.write(request)
        return self.answer

    def _fail(self, exc: BaseException) -> None:
        self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Origin:
    """Pooled connections to one `http://host:port`."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.authority = parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.idle: list[_Connection] = []

    def __repr__(self) -> str:
        return f"Origin({self.authority!r}, idle={len(self.idle)})"

    async def get(self, path: str, headers: list[tuple[str, str]], timeout: float) -> tuple[int, bytes]:
        """GET `path` (with `headers`) within `timeout` seconds: (status, body).

        Raises TimeoutError, OSError (ConnectionError included) when no answer came."""
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
        request = f"GET {self.prefix}{path} HTTP/1.1\r\nHost: {self.authority}\r\n{lines}\r\n"
        async with asyncio.timeout(timeout):
            return await self._exchange(request.encode("latin-1"))

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            try:
                return await self._on(conn, request)
            except OSError:
                if conn.started:  # the peer answered part: not a stale connection
                    raise
        return await self._on(await self._open(), request)

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        transport, conn = await loop.create_connection(_Connection, self.host, self.port)
        conn.transport = transport  # uvloop may call connection_made only after this returns
        return conn

    async def _on(self, conn: _Connection, request: bytes) -> tuple[int, bytes]:
        try:
            answer = await conn.send(request)
        except BaseException:
            conn.close()  # cancelled or failed mid-answer: never reused
            raise
        if not conn.closed and len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        """Close the idle connections."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()
