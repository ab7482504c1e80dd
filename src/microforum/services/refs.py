"""References between resources: does user 4 exist, is thread 2 still referenced?

A service answers these about its own resources from its own database, and asks the service
that owns any other resource over HTTP (through the load balancer by default): a GET on a
pooled keep-alive connection (`microforum.services.client`) with a timeout, retried a bounded
number of times on a refused connection, a timeout or a 5xx. When the owner still cannot
answer, `DependencyUnavailable` names it and the write is refused with 503; its reason (hosts,
ports, errors) goes to the log, never into the answer. Each call carries the request's
X-Amzn-Trace-Id as ALB forwards it (same `Root`, a `Self` of its own), so one request's
calls share one trace.

"May a new record refer to user 4?" (`user_referable`) is stricter than "does user 4 exist?":
a user whose delete is in progress may not be referred to. With the order in which creates
and deletes check each other, this keeps any record from outliving what it refers to
(docs/consistency.md). The check that decides (`fresh=True`) asks the owner, which reads its
database. A create's first check is only a courtesy (a quick 422 before writing), so it may
be answered from the remote answers "referable" seen in the last `HINT_TTL` seconds: a wrong
hint costs a write and its undo, never an orphan. Checks of one path asked at about the same
time share one request not yet sent (`sharedcheck.py`); it carries the trace id of the request
that asked first.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from microforum.lb.headers import new_trace_id, trace_id
from microforum.services import store
from microforum.services.client import Origin
from microforum.services.settings import (
    DEPENDENCY_ATTEMPTS,
    DEPENDENCY_BACKOFF,
    DEPENDENCY_TIMEOUT,
)
from microforum.services.sharedcheck import SharedChecks
from microforum.services.storage import Database

# Asked of the owner when a record is about to be referred to: 404 while its delete is in
# progress too, and answered from the database, not a cache.
REFERABLE_QUERY = "?referable=true"
# A reference question's answer: known at once, or an awaitable of it already under way.
Answer = bool | Awaitable[bool]
HINT_TTL = 5.0  # seconds a remote "referable" answer may serve as a create's first check
MAX_HINTS = 4096  # hints kept; forgotten all at once past this


class DependencyUnavailable(Exception):
    """The service owning a resource did not answer usefully in time.

    `str()` is the public sentence; `reason` (for the log) may name hosts and errors."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} service unavailable")
        self.service = service
        self.reason = reason


def outgoing_trace(incoming: str | None) -> str:
    """The X-Amzn-Trace-Id of a call made while answering a request that carried `incoming`:
    its `Root` (and other fields) kept, a new `Self`, as ALB forwards a request."""
    fresh = new_trace_id(int(time.time()), random.getrandbits(96))
    return trace_id(incoming, fresh) if incoming else f"Root={fresh}"


class Remote:
    """A resource owned by another service, reached at `base_url`."""

    def __init__(self, service: str, base_url: str, timeout: float = DEPENDENCY_TIMEOUT) -> None:
        self.service = service
        self.base_url = base_url
        self.timeout = timeout
        self.origin = Origin(base_url)

    def __repr__(self) -> str:
        return f"Remote({self.service!r}, {self.base_url!r})"

    async def get(self, path: str, trace: str | None = None) -> tuple[int, bytes]:
        """GET `path`; a 2xx or 404 answer is returned, anything else retried then refused."""
        reason = "no answer"
        headers = [("accept", "application/json"), ("x-amzn-trace-id", outgoing_trace(trace))]
        for attempt in range(DEPENDENCY_ATTEMPTS):
            if attempt:
                await asyncio.sleep(DEPENDENCY_BACKOFF * attempt)
            try:
                status, body = await self.origin.get(path, headers, self.timeout)
            except TimeoutError:
                reason = f"no answer within {self.timeout:g} s"
                continue
            except (OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
                continue
            if 200 <= status < 300 or status == 404:
                return status, body
            reason = f"answered {status}"
        raise self._unavailable(f"GET {self.base_url}{path}: {reason}")

    def _unavailable(self, reason: str) -> DependencyUnavailable:
        return DependencyUnavailable(self.service, reason)

    async def exists(self, path: str, trace: str | None = None) -> bool:
        """True when `path` answers 2xx, False on 404."""
        status, _ = await self.get(path, trace)
        return status != 404

    async def non_empty(self, path: str, trace: str | None = None) -> bool:
        """True when `path` answers a non-empty JSON list."""
        status, body = await self.get(path, trace)
        try:
            value = json.loads(body) if status != 404 else []
        except ValueError as exc:
            raise self._unavailable(f"GET {path}: not JSON") from exc
        return bool(value)

    def close(self) -> None:
        """Close the pooled connections."""
        self.origin.close()


class References:
    """Answers reference questions locally (owned resources) or through their owner.

    `trace` is the X-Amzn-Trace-Id of the request being answered (propagated to the calls)."""

    def __init__(
        self,
        local: Mapping[str, Database],
        remote: Mapping[str, str],
        timeout: float = DEPENDENCY_TIMEOUT,
    ) -> None:
        self.local = dict(local)
        self.remote = {name: Remote(name, url, timeout) for name, url in remote.items()}
        self._hints: dict[str, float] = {}  # path -> when it last answered "referable"
        self._shared: SharedChecks[bool] = SharedChecks()  # checks of one path asked at once share a request

    def __repr__(self) -> str:
        return f"References(local={sorted(self.local)}, remote={list(self.remote.values())})"

    def user_referable(self, user_id: int, trace: str | None = None, *, fresh: bool = True) -> Answer:
        """May a new record refer to user `user_id` (it exists, no delete in progress)?"""
        if "users" in self.local:
            return self._local("users", store.referable_user, user_id=user_id)
        return self._referable("users", f"/api/users/{user_id}{REFERABLE_QUERY}", trace, fresh)

    def thread_referable(self, thread_id: int, trace: str | None = None, *, fresh: bool = True) -> Answer:
        """May a new post be in thread `thread_id` (it exists, no delete in progress)?"""
        if "threads" in self.local:
            return self._local("threads", store.referable_thread, thread_id=thread_id)
        return self._referable("threads", f"/api/threads/{thread_id}{REFERABLE_QUERY}", trace, fresh)

    async def _local(self, resource: str, referable: Callable[..., object], **where: int) -> bool:
        return await self.local[resource].read(referable, **where) is not None

    def _referable(self, service: str, path: str, trace: str | None, fresh: bool) -> Answer:
        """True at once from a recent hint (`fresh=False`), else a check under way."""
        if not fresh and self._hints.get(path, 0.0) > time.monotonic() - HINT_TTL:
            return True
        found = self._shared.start(path, lambda: self.remote[service].exists(path, trace))
        found.add_done_callback(lambda done: self._remember(path, done))
        return found

    def _remember(self, path: str, done: asyncio.Future[bool]) -> None:
        """Keep a "referable" answer as a hint, forget a "not referable" one."""
        if done.cancelled() or done.exception() is not None:
            return
        if done.result():
            if len(self._hints) >= MAX_HINTS:
                self._hints.clear()
            self._hints[path] = time.monotonic()
        else:
            self._hints.pop(path, None)

    async def user_referenced(self, user_id: int, trace: str | None = None) -> str | None:
        """What still refers to user `user_id` ("threads", "posts"), or None."""
        if "threads" in self.local:
            used = await self.local["threads"].read(store.thread_by_user_exists, user_id=user_id)
        else:
            used = await self.remote["threads"].non_empty(f"/api/threads?createdBy={user_id}&limit=1", trace)
        if used:
            return "threads"
        if await self._posts_exist(f"by-user/{user_id}", trace, user=user_id):
            return "posts"
        return None

    async def thread_referenced(self, thread_id: int, trace: str | None = None) -> str | None:
        """What still refers to thread `thread_id` ("posts"), or None."""
        found = await self._posts_exist(f"in-thread/{thread_id}", trace, thread=thread_id)
        return "posts" if found else None

    async def _posts_exist(self, path: str, trace: str | None, **where: int) -> bool:
        if "posts" in self.local:
            return await self.local["posts"].read(store.post_exists, **where)
        return await self.remote["posts"].non_empty(f"/api/posts/{path}?limit=1", trace)

    def close(self) -> None:
        """Close the pooled connections to other services."""
        for remote in self.remote.values():
            remote.close()
