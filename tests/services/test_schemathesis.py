"""schemathesis against each service's OpenAPI document: no 5xx, no answer the document
does not describe (status, content type, body schema, headers).

Each service runs on fresh seed data with its dependencies reachable (API_URL points at a
monolith), so a 503 would be a real failure. Example counts stay small to keep this quick.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from service_helpers import Service, serving

EXAMPLES = 12
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    with serving("monolith", tmp_path_factory.mktemp("m")) as monolith:
        env = {"API_URL": monolith.url}
        with (
            serving("users", tmp_path_factory.mktemp("u"), env) as users,
            serving("threads", tmp_path_factory.mktemp("t"), env) as threads,
            serving("posts", tmp_path_factory.mktemp("p"), env) as posts,
        ):
            yield {"monolith": monolith, "users": users, "threads": threads, "posts": posts}


def _failures(service: Service) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{service.url}/api/{service.name}/openapi.json")
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=service.url, checks=CHECKS)

        try:
            exercise()
        except Exception as exc:  # collect every operation's failure, then report them all
            found.append(f"{operation.method.upper()} {operation.path}: {exc}")
    return found


@pytest.mark.parametrize("name", ["users", "threads", "posts", "monolith"])
def test_service_keeps_its_openapi_document(services: dict[str, Service], name: str) -> None:
    failures = _failures(services[name])
    assert not failures, "\n\n".join(failures)


def test_document_lists_every_route(services: dict[str, Service]) -> None:
    document = services["monolith"].get("/api/monolith/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/",
        "/api/",
        "/api/users",
        "/api/users/{userId}",
        "/api/threads",
        "/api/threads/{threadId}",
        "/api/posts",
        "/api/posts/in-thread/{threadId}",
        "/api/posts/by-user/{userId}",
        "/api/posts/{postId}",
        "/api/monolith/openapi.json",
    }
    create = document["paths"]["/api/posts"]["post"]
    assert set(create["responses"]) >= {"201", "400", "413", "415", "422", "503"}
    users_doc = services["users"].get("/api/users/openapi.json").json
    assert set(users_doc["paths"]) == {
        "/",
        "/api/",
        "/api/users",
        "/api/users/{userId}",
        "/api/users/openapi.json",
    }
