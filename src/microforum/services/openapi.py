"""The OpenAPI 3.1 document of a service, generated from its routes and msgspec types.

Served at `/api/<service>/openapi.json` so it is reachable through the load balancer (the
`/api/users*` rule sends `/api/users/openapi.json` to the users service). Every route, request
body, query parameter and error answer is in it; the schemathesis tests hold the service to it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from microforum import __version__
from microforum.services.http import JSON_TYPE, Problem, Request, Response
from microforum.services.routing import Operation, Route

REF = "#/components/schemas/{name}"
_COMMON_ERRORS = {405: ("Method not allowed on this path (see the Allow header)", Problem)}
_NOT_MODIFIED = {304: ("Not modified: If-None-Match names the current ETag", None)}

# The response headers the services send, by status: (name, required, schema, description).
_HEADER = tuple[str, bool, dict[str, Any], str]
_ETAG: _HEADER = ("ETag", True, {"type": "string"}, "Strong validator of this representation")
_PAGE_HEADERS: list[_HEADER] = [
    ("Link", False, {"type": "string"}, 'The next page: <URL>; rel="next" (when more remain)'),
    ("X-Next-Cursor", False, {"type": "string"}, "The cursor of the next page (when more remain)"),
]
_HEADERS: dict[int, list[_HEADER]] = {
    200: [_ETAG],
    201: [("Location", True, {"type": "string"}, "The new record's URL"), _ETAG],
    304: [_ETAG],
    405: [("Allow", True, {"type": "string"}, "The methods this path answers")],
    412: [("ETag", False, {"type": "string"}, "The record's current ETag")],
    503: [("Retry-After", False, {"type": "integer", "minimum": 0}, "Seconds after which to try again")],
}
# Request headers, by method: (name, description).
_REQUEST_HEADERS = {
    "GET": [("If-None-Match", "ETags the client has: 304 when one is current")],
    "PATCH": [("If-Match", "Change only if the record's current ETag is one of these (else 412)")],
    "DELETE": [("If-Match", "Delete only if the record's current ETag is one of these (else 412)")],
    "POST": [
        (
            "Idempotency-Key",
            "A retry with the same key and body answers the first answer (kept 24 h) and writes nothing",
        )
    ],
}


def _headers(status: int, op: Operation) -> dict[str, Any]:
    found = list(_HEADERS.get(status, []))
    if status == 200 and any(name == "limit" for name, _, _ in op.query):
        found += _PAGE_HEADERS
    return {
        name: {"required": required, "schema": schema, "description": text}
        for name, required, schema, text in found
    }


def _param_names(template: str) -> list[str]:
    return [part[1:-1] for part in template.split("/") if part.startswith("{")]


def _content(kind: Any, types: list[Any]) -> dict[str, Any] | None:
    if kind is None:
        return None
    if kind is str:
        return {"text/plain; charset=utf-8": {"schema": {"type": "string"}}}
    types.append(kind)
    return {"application/json; charset=utf-8": {"schema": kind}}  # resolved below


def _operation(route: Route, method: str, op: Operation, types: list[Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer"},
            "description": "A record id",
        }
        for name in _param_names(route.template)
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
        for name, schema, text in op.query
    ]
    params += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in _REQUEST_HEADERS.get(method, [])
        if name != "Idempotency-Key" or op.body is not None
    ]
    common = {**_COMMON_ERRORS, **(_NOT_MODIFIED if method == "GET" else {})}
    responses: dict[str, Any] = {}
    for status, (text, kind) in {**op.responses, **common}.items():
        entry: dict[str, Any] = {"description": text}
        content = _content(kind, types)
        if content:
            entry["content"] = content
        headers = _headers(status, op)
        if headers and (status != 200 or content):
            entry["headers"] = headers
        responses[str(status)] = entry
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{method.lower()}_{route.template.strip('/').replace('/', '_')}".replace("{", "")
        .replace("}", "")
        .replace("-", "_"),
        "tags": [op.tag] if op.tag else [],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        types.append(op.body)
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": op.body}},
        }
    return doc


def _resolve(node: Any, refs: dict[Any, dict[str, Any]]) -> Any:
    """Replace the Python types left in `node` by their JSON schema."""
    if isinstance(node, dict):
        return {
            k: (refs[v] if k == "schema" and not isinstance(v, dict) else _resolve(v, refs))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve(v, refs) for v in node]
    return node


def build_document(service: str, routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI document describing `routes`."""
    types: list[Any] = []
    paths: dict[str, Any] = {}
    for route in routes:
        ops = {
            m.lower(): _operation(route, m, op, types)
            for m, op in sorted(route.operations.items())
            if m != "HEAD"
        }
        paths[route.template] = ops
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(unique, ref_template=REF)
    refs = dict(zip(unique, schemas, strict=True))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"microforum {service}",
            "version": __version__,
            "description": "Forum API; errors are JSON problem bodies naming the field.",
        },
        "paths": _resolve(paths, refs),
        "components": {"schemas": components},
    }


def openapi_routes(service: str, routes: list[Route]) -> list[Route]:
    """The route serving this service's document (which describes itself too)."""
    path = f"/api/{service}/openapi.json"
    cache: list[bytes] = []

    async def serve(request: Request) -> Response:
        return Response(200, cache[0], JSON_TYPE)

    route = Route(
        path,
        {
            "GET": Operation(
                serve, "This OpenAPI document", tag="meta", responses={200: ("OpenAPI 3.1 document", dict)}
            )
        },
    )
    cache.append(msgspec.json.encode(build_document(service, [*routes, route])))
    return [route]
