"""A PostgreSQL server stopped and started again under load: every request is answered.

The service runs on a server of the test's own (`own_postgres`), which is stopped (`pg_ctl
-m fast`: every session ended, as a restart, a patch or a failover does) while client threads
keep reading and writing, then started again. Each request has `ANSWER_BOUND` seconds: one
that takes longer, or a connection closed without an answer, fails the test. While the server
is down the answers are 503 with `Retry-After` and a body that names no host, port or URL; once
it is back and one request succeeded, every later one succeeds (the stale pooled connections
were replaced without failing a request); SIGTERM then still drains and exits 0.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from service_helpers import Answer, call, serving

from helpers import output_of, stop

pytestmark = pytest.mark.postgres

# Seconds within which every request must be answered, database down or not: the connect
# timeout (5 s) plus margin for a loaded machine; in practice a refused connect is instant.
ANSWER_BOUND = 15.0
CLIENTS = 4
DOWN_FOR = 1.5  # seconds of load while the server is stopped
AFTER = 20  # successes each client collects once the server is back


@dataclass
class Record:
    """What one client saw: (phase, answer or the failure) in order."""

    answers: list[tuple[str, Answer]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    back_ok: int = 0  # successes since the server is back


def _request(port: int, n: int) -> Answer:
    if n % 4 == 2:
        return call(port, "POST", "/api/users", {"username": f"load-{n}", "name": "L"},
                    timeout=ANSWER_BOUND)  # fmt: skip
    # GET: cached, a list from a database thread, and a fresh check on the event loop's connection
    path = ("/api/users/1", "/api/users", "", "/api/users/1?referable=true")[n % 4]
    return call(port, "GET", path, timeout=ANSWER_BOUND)


def _client(port: int, phase: list[str], stop_at: threading.Event, record: Record, ids) -> None:
    while not stop_at.is_set():
        started = phase[0]
        try:
            answer = _request(port, next(ids))
        except (OSError, http.client.HTTPException) as exc:  # a timeout is an OSError too
            record.failures.append(f"{started}: {type(exc).__name__}: {exc}")
            continue
        record.answers.append((started, answer))
        if started == "back" and answer.status < 300:
            record.back_ok += 1
            if record.back_ok >= AFTER:
                return


def test_stop_and_restart_under_load(tmp_path: Path, own_postgres) -> None:
    env = {"DATABASE_URL": own_postgres.create_database()}
    with serving("users", tmp_path, env) as service:
        phase, done, ids = ["up"], threading.Event(), itertools.count()
        records = [Record() for _ in range(CLIENTS)]
        threads = [threading.Thread(target=_client, args=(service.port, phase, done, r, ids))
                   for r in records]  # fmt: skip
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        own_postgres.stop()
        phase[0] = "down"
        time.sleep(DOWN_FOR)
        own_postgres.start()
        phase[0] = "back"
        for thread in threads:
            thread.join(ANSWER_BOUND * (AFTER + 5))
        done.set()
        assert stop(service.process) == 0  # SIGTERM drains: nothing left busy
        log = output_of(service.process)

    assert [f for r in records for f in r.failures] == []  # every request was answered
    answers = [a for r in records for a in r.answers]
    assert {a.status for _, a in answers} <= {200, 201, 503}
    down = [a for p, a in answers if a.status == 503]
    assert any(p == "down" for p, a in answers if a.status == 503)  # the outage was seen
    for answer in down:
        assert int(answer.headers["retry-after"]) > 0
        text = answer.body.decode()
        assert str(own_postgres.port) not in text and "127.0.0.1" not in text and "://" not in text
        assert answer.json["detail"].startswith("the database ")
    for record in records:  # back: after one success, no request fails again
        back = [a.status for p, a in record.answers if p == "back"]
        first_ok = next((i for i, status in enumerate(back) if status < 300), None)
        assert first_ok is not None, [line for line in log.splitlines() if "answered" in line][-5:]
        assert set(back[first_ok:]) <= {200, 201}, back
