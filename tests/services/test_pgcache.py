"""The PostgreSQL read cache: its state table, and its freshness across two replicas.

Two replicas of `users` on one database: a replica reads its own write at once; the other
replica's cached answer is replaced once the change notification arrives (the time it took is
printed, not asserted: `pytest -s` shows it; docs/store.md gives the figure measured here).
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from service_helpers import serving

from microforum.services.pgcache import MISSING, ReadCache

SEEN_WITHIN = 10.0  # seconds: only a cache that is never refreshed gets near this


def test_read_cache_states() -> None:
    cache = ReadCache(max_entries=2)
    cache.put("a", b"1", cache.version)
    assert cache.get("a") is MISSING  # not trusted before the listener listens
    cache.changed(trusted=True)
    cache.put("a", b"1", cache.version)
    assert cache.get("a") == b"1"
    version = cache.version
    cache.changed()  # a write or a notification between reading and keeping
    cache.put("b", b"2", version)
    assert (cache.get("a"), cache.get("b")) == (MISSING, MISSING)
    cache.put("n", None, cache.version)
    assert cache.get("n") is None  # "no such record" is an answer too
    cache.put("x", b"x", cache.version)
    cache.put("y", b"y", cache.version)  # full: starts over
    assert repr(cache) == f"<ReadCache entries=1 version={cache.version} trusted=True>"
    cache.changed(trusted=False)  # the listener lost its connection
    cache.put("z", b"z", cache.version)
    assert cache.get("z") is MISSING


def _until(predicate, within: float) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < within, "the change never became visible"
        time.sleep(0.001)
    return time.monotonic() - started


@pytest.mark.postgres
def test_two_replicas_see_each_others_writes(tmp_path: Path, postgres) -> None:
    env = {"DATABASE_URL": postgres.create_database()}
    delays = []
    with serving("users", tmp_path, env) as a, serving("users", tmp_path, env) as b:
        for n in range(20):
            b.get("/api/users/1")
            b.get("/api/users/1")  # cached now (once B's listener listens)
            changed = a.call("PATCH", "/api/users/1", {"bio": f"round {n}"})
            assert changed.status == 200
            assert a.get("/api/users/1").json["bio"] == f"round {n}"  # the writer: at once
            delays.append(_until(lambda bio=f"round {n}": b.get("/api/users/1").json["bio"] == bio,
                                 SEEN_WITHIN))  # fmt: skip
        # A write from outside the services (an operator with psql) is seen too.
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE users SET bio = 'by hand' WHERE id = 1")
        _until(lambda: b.get("/api/users/1").json["bio"] == "by hand", SEEN_WITHIN)
        _until(lambda: a.get("/api/users/1").json["bio"] == "by hand", SEEN_WITHIN)
        # The answers do come from the cache: a change that notifies nobody is not seen...
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # triggers off
            conn.execute("UPDATE users SET bio = 'unannounced' WHERE id = 1")
            assert b.get("/api/users/1").json["bio"] == "by hand"
            conn.execute("NOTIFY microforum_changes")  # ...until it is announced
        _until(lambda: b.get("/api/users/1").json["bio"] == "unannounced", SEEN_WITHIN)
    print(f"other replica saw the write after {max(delays) * 1000:.1f} ms at most "
          f"(median {sorted(delays)[len(delays) // 2] * 1000:.1f} ms, 20 rounds, incl. one GET)")  # fmt: skip
