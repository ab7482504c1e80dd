"""The router matches as koa-router 5 did (optional trailing slash, HEAD wherever GET is
routed; PARTIAL matches answer 405 with Allow), except that paths are matched case-sensitively
and as sent, as the load balancer's path rules match them."""

from __future__ import annotations

import pytest

from microforum.services.http import HttpError, Request, Response
from microforum.services.routing import Match, Operation, Route, Router


async def _ok(request: Request) -> Response:
    return Response(200)


GET = Operation(_ok, "get")
POST = Operation(_ok, "post")
ROUTER = Router(
    [
        Route("/", {"GET": GET}),
        Route("/api/", {"GET": GET}),
        Route("/api/users", {"GET": GET, "POST": POST}),
        Route("/api/users/{userId}", {"GET": GET}),
        Route("/api/posts/in-thread/{threadId}", {"GET": GET}),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/", {}),
        ("GET", "/api", {}),
        ("GET", "/api/", {}),
        ("POST", "/api/users/", {}),
        ("HEAD", "/api/users", {}),
        ("GET", "/api/users/7", {"userId": "7"}),
        ("GET", "/api/users/MiXed/", {"userId": "MiXed"}),
        ("GET", "/api/users/caf%C3%A9", {"userId": "café"}),  # parameters decoded once matched
        ("GET", "/api/posts/in-thread/3", {"threadId": "3"}),
        ("OPTIONS", "/api/users/1", {}),
    ],
)
def test_resolves(method: str, path: str, params: dict[str, str]) -> None:
    operation, found = ROUTER.resolve(method, path)
    assert found == params or method == "OPTIONS"
    assert operation.handler is not None


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/api/users/1/2", 404, None),
        ("GET", "/api//", 404, None),
        ("GET", "/nope", 404, None),
        ("GET", "/API/USERS", 404, None),  # case-sensitive, as ALB's path-pattern
        ("GET", "/Api/Users/1", 404, None),
        ("GET", "/%61pi/users/1", 404, None),  # matched as sent, never decoded first
        ("GET", "/api/%75sers", 404, None),
        ("DELETE", "/api/users", 405, "GET, HEAD, POST"),
        ("POST", "/api/users/1", 405, "GET, HEAD"),
        ("PUT", "/", 405, "GET, HEAD"),
    ],
)
def test_refuses(method: str, path: str, status: int, allow: str | None) -> None:
    with pytest.raises(HttpError) as caught:
        ROUTER.resolve(method, path)
    assert caught.value.status == status
    assert dict(caught.value.headers).get("allow") == allow


def test_route_matches_is_pure_and_partial() -> None:
    route = Route("/api/users/{userId}", {"GET": GET})
    assert route.matches("GET", "/api/users/3") == (Match.FULL, {"userId": "3"})
    assert route.matches("POST", "/api/users/3") == (Match.PARTIAL, {"userId": "3"})
    assert route.matches("GET", "/api/threads/3") == (Match.NONE, {})
    assert repr(route) == "Route('/api/users/{userId}', ['GET', 'HEAD'])"
