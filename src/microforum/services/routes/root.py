"""The original's two text routes: `GET /` (the health check) and `GET /api/`."""

from __future__ import annotations

from microforum.services.http import Request, Response, text_response
from microforum.services.routing import Operation, Route

READY = "Ready to receive requests"
API_READY = "API ready to receive requests"
_TEXT = {200: ("Plain text", str)}


async def health(request: Request) -> Response:
    """The target group's health check."""
    return text_response(READY)


async def api_ready(request: Request) -> Response:
    """The original's API banner."""
    return text_response(API_READY)


def routes() -> list[Route]:
    """`/` and `/api/`."""
    return [
        Route("/", {"GET": Operation(health, "Health check", responses=_TEXT, tag="health")}),
        Route("/api/", {"GET": Operation(api_ready, "API banner", responses=_TEXT, tag="health")}),
    ]
