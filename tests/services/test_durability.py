"""An acknowledged write survives SIGKILL of the service right after the response."""

from __future__ import annotations

import concurrent.futures
import signal
from pathlib import Path

import pytest
from service_helpers import call, serving

WRITES = 25


@pytest.mark.parametrize("workers", ["1", "2"])
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, workers: str) -> None:
    with serving("monolith", tmp_path, {}, "--workers", workers) as first:
        created = []
        for n in range(WRITES):
            answer = first.call(
                "POST", "/api/posts", {"thread": 1 + n % 3, "text": f"post {n}", "user": 1 + n % 4}
            )
            assert answer.status == 201
            created.append(answer.json)
        edited = first.call("PATCH", "/api/users/2", {"bio": "edited just before the crash"})
        assert edited.status == 200
        first.process.send_signal(signal.SIGKILL)  # no chance to flush or close anything
        assert first.process.wait(10) == -signal.SIGKILL

    with serving("monolith", tmp_path) as second:
        posts = second.get("/api/posts").json
        assert posts[-WRITES:] == created
        assert second.get("/api/users/2").json == edited.json
        assert len(posts) == 6 + WRITES  # seeded once, not again on the second start


@pytest.mark.postgres
def test_acknowledged_concurrent_writes_survive_sigkill_on_postgres(tmp_path: Path, postgres) -> None:
    """Writes sent at once share commits (group commit); each one answered 201 is kept."""
    env = {"DATABASE_URL": postgres.create_database()}
    with serving("monolith", tmp_path, env) as first:

        def create(n: int) -> dict[str, object]:
            body = {"thread": 1 + n % 3, "text": f"post {n}", "user": 1 + n % 4}
            answer = call(first.port, "POST", "/api/posts", body)
            assert answer.status == 201, answer
            return answer.json

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            created = list(pool.map(create, range(WRITES * 2)))
        first.process.send_signal(signal.SIGKILL)  # right after the last answer
        assert first.process.wait(10) == -signal.SIGKILL

    with serving("monolith", tmp_path, env) as second:
        posts = {post["id"]: post for post in second.get("/api/posts").json}
        assert [posts.get(post["id"]) for post in created] == created
        assert len(posts) == 6 + WRITES * 2
