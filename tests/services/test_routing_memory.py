"""The router remembers what it resolved, per method and path, without changing any answer."""

from __future__ import annotations

import pytest

from microforum.services.http import HttpError, Request, Response
from microforum.services.routing import MAX_RESOLVED, Operation, Route, Router


async def _ok(request: Request) -> Response:
    return Response(200)


GET = Operation(_ok, "get")
DELETE = Operation(_ok, "delete")


def _router() -> Router:
    return Router(
        [
            Route("/api/posts", {"GET": GET}),
            Route("/api/posts/by-user/{userId}", {"GET": GET}),
            Route("/api/posts/{postId}", {"GET": GET, "DELETE": DELETE}),
        ]
    )


@pytest.mark.parametrize(
    ("method", "path", "operation", "params"),
    [
        ("GET", "/api/posts/by-user/2", GET, {"userId": "2"}),
        # The same path with another method is another route: by-user has no DELETE, {postId} has.
        ("DELETE", "/api/posts/by-user", DELETE, {"postId": "by-user"}),
        ("GET", "/api/posts/by-user", GET, {"postId": "by-user"}),
        ("HEAD", "/api/posts/", GET, {}),
    ],
)
def test_a_remembered_answer_is_the_answer(
    method: str, path: str, operation: Operation, params: dict[str, str]
) -> None:
    router = _router()
    first = router.resolve(method, path)
    assert first == (operation, params)
    assert router.resolve(method, path) == first
    assert repr(router) == "Router(routes=3, remembered=1)"


def test_refusals_are_not_remembered() -> None:
    router = _router()
    for _ in range(2):
        with pytest.raises(HttpError) as caught:
            router.resolve("DELETE", "/api/posts/by-user/2")
        assert caught.value.status == 405
        with pytest.raises(HttpError) as caught:
            router.resolve("GET", "/nope")
        assert caught.value.status == 404
    assert repr(router) == "Router(routes=3, remembered=0)"


def test_clients_cannot_grow_the_memory_past_its_bound() -> None:
    router = _router()
    for n in range(MAX_RESOLVED + 10):
        assert router.resolve("GET", f"/api/posts/{n}")[1] == {"postId": str(n)}
    assert repr(router) == "Router(routes=3, remembered=10)"
