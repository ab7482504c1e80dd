"""A trivially fast HTTP/1.1 backend for the load-balancer benchmark (scenario b).

Answers every request with `200 ok` (keep-alive), listening on 127.0.0.1:$PORT. It does not
parse beyond the end of the header block: the benchmark sends only bodiless GETs, so the cost of
a proxied request is the load balancer's, not this server's.
"""

from __future__ import annotations

import asyncio
import os

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CLOSE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
)


class Answer(asyncio.Protocol):
    """One connection: answer each complete header block with the fixed response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            assert self.transport is not None
            if b"close" in head.lower():  # a health checker asking to close
                self.transport.write(CLOSE_RESPONSE)
                self.transport.close()
                return
            self.transport.write(RESPONSE)


async def main() -> None:
    """Serve until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", int(os.environ.get("PORT", "3000")))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        asyncio.run(main())
    else:
        uvloop.run(main())
