"""A small pure router: paths with `{param}` segments, matched like koa-router 5 matched them.

Matching is split from handling (starlette's `BaseRoute.matches`): `Route.matches(method,
path)` returns FULL (path and method), PARTIAL (path only: the router answers 405 with an
`Allow` header) or NONE. The original services used koa-router with its defaults, which match
with an optional trailing slash (path-to-regexp, `strict` off) and answer HEAD wherever GET is
routed; so does this router. ⚠ Unlike koa-router's default, paths are matched case-sensitively
and as sent (percent-encoded), as ALB's path-pattern rules match them: otherwise `/API/users/1`
or `/%61pi/users/1` would reach a service's `/api/users` route past a listener rule written
for `/api/users*` (docs/alb.md, "Paths"). Path parameters are percent-decoded once matched.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from microforum.services.http import HttpError, Request, Response

Handler = Callable[[Request], Awaitable[Response]]
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_RESOLVED = 4096  # (method, path) answers remembered; forgotten all at once past this


class Match(enum.Enum):
    """How well a route matches a request."""

    NONE = 0
    PARTIAL = 1  # the path matches, the method does not
    FULL = 2


@dataclass(frozen=True)
class Operation:
    """One method on one route, with what the OpenAPI document says about it."""

    handler: Handler
    summary: str
    body: type | None = None  # the request body's msgspec type
    responses: Mapping[int, tuple[str, Any]] = field(default_factory=dict)  # status: (text, type)
    query: Sequence[tuple[str, dict[str, Any], str]] = ()  # (name, schema, description)
    tag: str = ""


class Route:
    """A path template (`/api/users/{userId}`) and its operations by HTTP method."""

    def __init__(self, template: str, operations: Mapping[str, Operation]) -> None:
        self.template = template
        self.operations = dict(operations)
        if "GET" in self.operations and "HEAD" not in self.operations:
            self.operations["HEAD"] = self.operations["GET"]
        self.params = _PARAM.findall(template)
        pattern = _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", template.rstrip("/"))
        self._regex = re.compile(f"^{pattern}/?$")
        self.allow = ", ".join(sorted(self.operations))
        # koa-router's allowedMethods() answered OPTIONS with 200 and the Allow header.
        self.options = Operation(self._answer_options, "Allowed methods", tag="internal")

    async def _answer_options(self, request: Request) -> Response:
        return Response(200, b"", None, [("allow", self.allow)])

    def __repr__(self) -> str:
        return f"Route({self.template!r}, {sorted(self.operations)})"

    def matches(self, method: str, path: str) -> tuple[Match, dict[str, str]]:
        """Whether this route answers `method path`, and the path parameters when it does."""
        found = self._regex.match(path)
        if found is None:
            return Match.NONE, {}
        full = method in self.operations or method == "OPTIONS"
        params = {k: unquote(v, errors="replace") if "%" in v else v for k, v in found.groupdict().items()}
        return (Match.FULL if full else Match.PARTIAL), params

    def operation(self, method: str) -> Operation | None:
        """The operation for `method` (OPTIONS is answered for every route), or None."""
        operation = self.operations.get(method)
        if operation is None and method == "OPTIONS":
            return self.options
        return operation


class Router:
    """Routes in order; static paths are looked up in a dict first.

    The routes never change, so an answer found for `(method, path)` is remembered (the hot
    path: one dict lookup). Paths come from clients, so at most MAX_RESOLVED are remembered,
    and errors are not.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)
        self._static: dict[str, Route] = {}
        for route in self.routes:
            if not route.params:
                key = _static_key(route.template)
                self._static.setdefault(key, route)
        self._dynamic = [r for r in self.routes if r.params]
        self._resolved: dict[tuple[str, str], tuple[Operation, dict[str, str]]] = {}

    def __repr__(self) -> str:
        return f"Router(routes={len(self.routes)}, remembered={len(self._resolved)})"

    def resolve(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        """The operation for `method path` and its parameters; HttpError 404 or 405 otherwise.

        The parameters' dict is shared by every request for the same path: read it only.
        """
        found = self._resolved.get((method, path))
        if found is None:
            found = self._resolve(method, path)
            if len(self._resolved) >= MAX_RESOLVED:
                self._resolved.clear()
            self._resolved[method, path] = found
        return found

    def _resolve(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        static = self._static.get(_static_key(path))
        if static is not None:
            operation = static.operation(method)
            if operation is not None:
                return operation, {}
            raise _not_allowed(static, method, path)
        partial = None
        for route in self._dynamic:
            match, params = route.matches(method, path)
            if match is Match.FULL:
                return route.operation(method), params  # type: ignore[return-value]
            if match is Match.PARTIAL and partial is None:
                partial = route
        if partial is not None:
            raise _not_allowed(partial, method, path)
        raise HttpError(404, f"no route for {path}")


def _static_key(path: str) -> str:
    return path[:-1] if len(path) > 1 and path[-1] == "/" else path


def _not_allowed(route: Route, method: str, path: str) -> HttpError:
    return HttpError(
        405,
        f"{method} is not allowed on {path}; allowed: {route.allow}",
        headers=[("allow", route.allow)],
    )
