"""References between resources: does user 4 exist, is thread 2 still referenced?

A service answers these about its own resources from its own database, and asks the service
that owns any other resource over HTTP (through the load balancer by default): a GET with a
timeout, retried a bounded number of times on a refused connection, a timeout or a 5xx.
When the owner still cannot answer, `DependencyUnavailable` names it and the write is refused
with 503 before anything is written. The monolith owns everything and never leaves the process.

Deleting a user or a thread asks the services holding references (threads and posts; posts)
first and refuses with 409 while any exist. Checks and the write are not one distributed
transaction: a post created at the same moment as its thread is deleted can still slip in.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Mapping

from microforum.services import store
from microforum.services.settings import (
    DEPENDENCY_ATTEMPTS,
    DEPENDENCY_BACKOFF,
    DEPENDENCY_TIMEOUT,
)
from microforum.services.storage import Database


class DependencyUnavailable(Exception):
    """The service owning a resource did not answer usefully in time."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} service unavailable: {reason}")
        self.service = service
        self.reason = reason


async def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """GET `url` (http only) on a fresh connection; return (status, body)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/json\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            raw = await reader.read()  # Connection: close -> the body ends at EOF
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ConnectionError("malformed HTTP response")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return int(status_line[1]), body


def _dechunk(data: bytes) -> bytes:
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)


class Remote:
    """A resource owned by another service, reached at `base_url`."""

    def __init__(self, service: str, base_url: str, timeout: float = DEPENDENCY_TIMEOUT) -> None:
        self.service = service
        self.base_url = base_url
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Remote({self.service!r}, {self.base_url!r})"

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET `path`; a 2xx or 404 answer is returned, anything else retried then refused."""
        reason = "no answer"
        for attempt in range(DEPENDENCY_ATTEMPTS):
            if attempt:
                await asyncio.sleep(DEPENDENCY_BACKOFF * attempt)
            try:
                status, body = await http_get(self.base_url + path, self.timeout)
            except TimeoutError:
                reason = f"no answer within {self.timeout:g} s"
                continue
            except (OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                continue
            if 200 <= status < 300 or status == 404:
                return status, body
            reason = f"answered {status}"
        raise DependencyUnavailable(self.service, f"GET {self.base_url}{path}: {reason}")

    async def exists(self, path: str) -> bool:
        """True when `path` answers 2xx, False on 404."""
        status, _ = await self.get(path)
        return status != 404

    async def non_empty(self, path: str) -> bool:
        """True when `path` answers a non-empty JSON list."""
        status, body = await self.get(path)
        try:
            value = json.loads(body) if status != 404 else []
        except ValueError as exc:
            raise DependencyUnavailable(self.service, f"GET {path}: not JSON") from exc
        return bool(value)


class References:
    """Answers reference questions locally (owned resources) or through their owner."""

    def __init__(
        self,
        local: Mapping[str, Database],
        remote: Mapping[str, str],
        timeout: float = DEPENDENCY_TIMEOUT,
    ) -> None:
        self.local = dict(local)
        self.remote = {name: Remote(name, url, timeout) for name, url in remote.items()}

    def __repr__(self) -> str:
        return f"References(local={sorted(self.local)}, remote={list(self.remote.values())})"

    async def user_exists(self, user_id: int) -> bool:
        """Does user `user_id` exist?"""
        if "users" in self.local:
            found = await self.local["users"].read(store.get_user, user_id=user_id)
            return found is not None
        return await self.remote["users"].exists(f"/api/users/{user_id}")

    async def thread_exists(self, thread_id: int) -> bool:
        """Does thread `thread_id` exist?"""
        if "threads" in self.local:
            found = await self.local["threads"].read(store.get_thread, thread_id=thread_id)
            return found is not None
        return await self.remote["threads"].exists(f"/api/threads/{thread_id}")

    async def user_referenced(self, user_id: int) -> str | None:
        """What still refers to user `user_id` ("threads", "posts"), or None."""
        if "threads" in self.local:
            used = await self.local["threads"].read(store.thread_by_user_exists, user_id=user_id)
        else:
            used = await self.remote["threads"].non_empty(f"/api/threads?createdBy={user_id}&limit=1")
        if used:
            return "threads"
        if await self._posts_exist(f"by-user/{user_id}", user=user_id):
            return "posts"
        return None

    async def thread_referenced(self, thread_id: int) -> str | None:
        """What still refers to thread `thread_id` ("posts"), or None."""
        return "posts" if await self._posts_exist(f"in-thread/{thread_id}", thread=thread_id) else None

    async def _posts_exist(self, path: str, **where: int) -> bool:
        if "posts" in self.local:
            return await self.local["posts"].read(store.post_exists, **where)
        return await self.remote["posts"].non_empty(f"/api/posts/{path}?limit=1")
