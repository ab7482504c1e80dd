"""The ASGI application of one service: routing, the error boundary, trace ids, access logs.

A deliberately small raw ASGI app (no framework): per request it resolves the route, runs the
handler, translates known exceptions into problem responses once, here, and writes one JSON
access-log line to stdout. Nothing a client sends can produce a 500; an unexpected exception
is logged with its traceback on stderr and answered 500 without details.

Trace ids follow the ALB (docs/alb.md §D): an incoming `X-Amzn-Trace-Id` is kept, otherwise
one is made in ALB's format `Root=1-{epoch seconds, 8 hex}-{24 hex}` by the load balancer's own
generator (`lb.headers.TraceIds`); either way it is answered in the response and logged.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from microforum.lb.headers import TraceIds
from microforum.services.accesslog import ACCESS_LOG
from microforum.services.conditional import with_etag
from microforum.services.http import (
    AsgiHeaders,
    HeaderSource,
    HttpError,
    Request,
    Response,
    encode_json,
    problem,
)
from microforum.services.refs import DependencyUnavailable, References
from microforum.services.routes import posts, root, threads, users
from microforum.services.routes.common import Context
from microforum.services.routing import Router
from microforum.services.settings import DEPENDENCY_RETRY_AFTER, OWNED, STORAGE_RETRY_AFTER, Settings
from microforum.services.storage import Conflict, Database, StorageUnavailable, open_database

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
TRACE_HEADER = "x-amzn-trace-id"
IF_NONE_MATCH = "if-none-match"
MAX_TRACE_LENGTH = 256
_RESOURCE_ROUTES = {"users": users.routes, "threads": threads.routes, "posts": posts.routes}
# Bound once: looked up per request.
perf_counter, wall_time = time.perf_counter, time.time
_write_log = ACCESS_LOG.write
STORAGE_RETRY = [("retry-after", str(STORAGE_RETRY_AFTER))]  # RFC 9110 10.2.3


def _str(value: str) -> str:
    """`value` as a JSON string; plain printable ASCII (the usual path) needs no encoder."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return encode_json(value).decode()


# Paths as JSON strings, by path: a replica logs the same few again and again.
_PATHS_JSON: dict[str, str] = {}
MAX_PATHS_JSON = 1024


def _path_json(path: str) -> str:
    if len(_PATHS_JSON) >= MAX_PATHS_JSON:
        _PATHS_JSON.clear()
    found = _PATHS_JSON[path] = _str(path)
    return found


def _log(service: str, method: str, path: str, status: int, started: float, trace_json: str) -> None:
    # Formatted by hand (about twice as fast as encoding a dict); strings are JSON-encoded,
    # but the method: a parsed request's is a token (RFC 9110 9.1), never quoted or escaped.
    duration = (perf_counter() - started) * 1000
    # Batched: a few write(2)s per burst of requests, whole lines, flushed at shutdown too.
    _write_log(
        f'{{"time":{wall_time():.3f},"service":"{service}","method":"{method}",'
        f'"path":{_PATHS_JSON.get(path) or _path_json(path)},"status":{status},'
        f'"duration_ms":{duration:.3f},"trace_id":{trace_json}}}\n'
    )


async def _asgi_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client disconnected before sending the whole body")
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _translate(exc: Exception) -> Response:
    """The one place foreign failures become answers."""
    if isinstance(exc, HttpError):
        return exc.response()
    if isinstance(exc, DependencyUnavailable):  # the reason names hosts: the log only
        print(f"{exc}: {exc.reason}", file=sys.stderr, flush=True)
        return problem(
            503,
            f"{exc}; nothing was written",
            field=exc.service,
            headers=[("retry-after", str(DEPENDENCY_RETRY_AFTER))],
        )
    if isinstance(exc, Conflict):
        if exc.cause:
            _log_cause(409, exc.cause)
        return problem(409, str(exc))
    if isinstance(exc, StorageUnavailable):
        _log_cause(503, exc)
        return problem(503, exc.public_detail(), headers=STORAGE_RETRY)
    traceback.print_exception(exc, file=sys.stderr)
    return problem(500, "internal error; see the service's log")


def _log_cause(status: int, cause: object) -> None:
    # The cause may name hosts, ports, URLs, SQL: for the log only, never for the client.
    print(f"microforum: answered {status}: {cause}", file=sys.stderr, flush=True)


class App:
    """A service as an ASGI 3 application."""

    def __init__(self, service: str, router: Router, databases: Mapping[str, Database]) -> None:
        self.service = service
        self.router = router
        self.databases = dict(databases)
        # Made here, in the worker that answers (never shared by forked workers).
        self.trace_ids = TraceIds()

    def new_trace_id(self, now: float | None = None) -> str:
        """A fresh trace id in ALB's format, `Root=1-...`."""
        return self.trace_ids.root(int(wall_time() if now is None else now)).decode()

    def _trace(self, given: str | None) -> tuple[str, str]:
        """The request's trace id, and it as a JSON string for the access log.

        An incoming one is kept only when it is printable ASCII of sane length (safe to echo)."""
        if given and len(given) <= MAX_TRACE_LENGTH and given.isascii() and given.isprintable():
            return given, _str(given)
        made = self.new_trace_id()
        return made, f'"{made}"'  # hex digits and dashes: nothing to escape

    def __repr__(self) -> str:
        return f"App({self.service!r}, routes={len(self.router.routes)})"

    async def _respond(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeaderSource,
        chunks: Callable[[], AsyncIterator[bytes]],
        trace: str,
    ) -> Response:
        try:
            operation, params = self.router.resolve(method, path)
            request = Request(method, path, query, headers, chunks, params, trace)
            response = await operation.handler(request)
        except Exception as exc:
            return _translate(exc)
        return with_etag(method, headers.get(IF_NONE_MATCH), response)

    async def answer(
        self,
        method: str,
        path: str,
        query: str,
        headers: HeaderSource,
        chunks: Callable[[], AsyncIterator[bytes]],
    ) -> tuple[Response, str]:
        """The response to one request and its trace id (to answer in `x-amzn-trace-id`); logged.

        The entry point of the services' own server (`microforum.services.connection`).
        """
        started = perf_counter()
        trace, trace_json = self._trace(headers.get(TRACE_HEADER))
        try:  # `_respond`, inline: one coroutine less per request
            operation, params = self.router.resolve(method, path)
            request = Request(method, path, query, headers, chunks, params, trace)
            response = await operation.handler(request)
            response = with_etag(method, headers.get(IF_NONE_MATCH), response)
        except Exception as exc:
            response = _translate(exc)
        _log(self.service, method, path, response.status, started, trace_json)
        return response, trace

    # --- ASGI 3, for other servers (and tests).

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        headers = AsgiHeaders(scope["headers"])
        trace, trace_json = self._trace(headers.get(TRACE_HEADER))
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        response = await self._respond(method, path, query, headers, lambda: _asgi_chunks(receive), trace)
        body = response.body
        out = [(TRACE_HEADER.encode(), trace.encode())]
        if response.status != 204:  # RFC 9110 8.6: no Content-Length on a 204
            out.append((b"content-length", str(len(body)).encode()))
        if response.content_type is not None:
            out.append((b"content-type", response.content_type.encode()))
        out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        _log(self.service, method, path, response.status, started, trace_json)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Write the pending access-log lines; close the databases (once)."""
        ACCESS_LOG.flush()
        for db in self.databases.values():
            db.close()
        self.databases.clear()


def open_databases(settings: Settings) -> dict[str, Database]:
    """One Database per owned resource; resources sharing a URL share one Database."""
    by_url: dict[str, Database] = {}
    for url in dict.fromkeys(settings.databases.values()):
        by_url[url] = open_database(url)
    return {resource: by_url[url] for resource, url in settings.databases.items()}


def build_app(settings: Settings, databases: Mapping[str, Database]) -> App:
    """The ASGI app of `settings.service` over already-migrated `databases`."""
    from microforum.services.openapi import openapi_routes

    refs = References(databases, settings.peers, settings.dependency_timeout)
    ctx = Context(settings.service, dict(databases), refs)
    routes = root.routes()
    for resource in OWNED[settings.service]:
        routes += _RESOURCE_ROUTES[resource](ctx)
    routes += openapi_routes(settings.service, routes)
    unique = {id(db): db for db in databases.values()}
    return App(settings.service, Router(routes), {str(k): v for k, v in unique.items()})
