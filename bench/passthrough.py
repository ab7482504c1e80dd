"""The floor of microforum's load-balancer architecture, for scenario (b): a pass-through proxy.

asyncio + uvloop + httptools, as the load balancer is, and nothing else: one keep-alive
connection to the backend per client connection, the request line and Host re-sent with
X-Forwarded-For, each response relayed as read. No rules, health checks, trace ids, access
log, desync checks, pooling or error handling: what is left of microforum's CPU per request
above this figure is the price of those. Listens on 127.0.0.1:$PORT, forwards to $BACKEND_PORT.
"""

from __future__ import annotations

import asyncio
import os

import httptools
import uvloop


class Backend(asyncio.Protocol):
    """The client connection's own connection to the backend: responses relayed whole."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.read: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        for request in self.client.waiting:
            self.transport.write(request)
        self.client.waiting.clear()

    def data_received(self, data: bytes) -> None:
        self.read.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.client.transport is not None and not self.client.transport.is_closing():
            self.client.transport.write(b"".join(self.read))
        self.read.clear()


class Client(asyncio.Protocol):
    """One client connection: requests parsed, re-sent to the backend in order."""

    def __init__(self, backend_port: int) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.backend: Backend | None = None
        self.waiting: list[bytes] = []
        self.url = b""
        self.host = b""
        asyncio.get_running_loop().create_task(self.connect(backend_port))

    async def connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        _, self.backend = await loop.create_connection(lambda: Backend(self), "127.0.0.1", port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.close()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"host":
            self.host = value

    def on_message_complete(self) -> None:
        request = b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n" % (self.url, self.host)
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.write(request)
        else:
            self.waiting.append(request)


async def main() -> None:
    """Serve until killed."""
    loop = asyncio.get_running_loop()
    backend_port = int(os.environ["BACKEND_PORT"])
    server = await loop.create_server(lambda: Client(backend_port), "127.0.0.1", int(os.environ["PORT"]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
