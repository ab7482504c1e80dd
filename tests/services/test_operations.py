"""Operations: SIGTERM drains in-flight requests and exits 0, access logs and trace ids,
settings refused at start-up with one line and exit 2, replicas sharing one SQLite file.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import Answer, Service, call, serving

from helpers import output_of

TRACE = re.compile(r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24}$")


class _SlowUsers(http.server.BaseHTTPRequestHandler):
    """A users service that answers only when the test says so."""

    arrived = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        type(self).arrived.set()
        type(self).release.wait(30)
        body = b'{"id": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_users() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowUsers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _SlowUsers.release.set()
    server.shutdown()


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path: Path, slow_users: str) -> None:
    with (
        serving("threads", tmp_path, {"USERS_URL": slow_users}) as threads,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        pending = pool.submit(threads.call, "POST", "/api/threads", {"title": "in flight", "createdBy": 1})
        assert _SlowUsers.arrived.wait(30), "the request never reached its dependency"
        threads.process.send_signal(signal.SIGTERM)
        _SlowUsers.release.set()
        answer = pending.result(30)
        assert answer.status == 201, output_of(threads.process)
        assert threads.process.wait(30) == 0, output_of(threads.process)
    with serving("threads", tmp_path) as again:  # it was written before the exit
        assert again.get("/api/threads").json[-1]["title"] == "in flight"


def _log_lines(service: Service) -> list[dict]:
    lines = [ln for ln in output_of(service.process).splitlines() if ln.startswith("{")]
    return [json.loads(ln) for ln in lines]


def test_access_log_and_trace_ids(monolith: Service) -> None:
    given = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    kept = monolith.call("GET", "/api/users/2", headers={"X-Amzn-Trace-Id": given})
    made = monolith.get("/api/nothing-here?x=1")
    assert kept.headers["x-amzn-trace-id"] == given
    assert TRACE.match(made.headers["x-amzn-trace-id"])
    odd = monolith.call("GET", '/api/users/"\\%C3%A9', headers={"X-Amzn-Trace-Id": 'a"b\\c'})
    assert odd.status == 404
    wanted = {given, made.headers["x-amzn-trace-id"], 'a"b\\c'}
    entries = {entry["trace_id"]: entry for entry in _wait_for_log(monolith, wanted)}
    assert entries[given] | {"time": 0, "duration_ms": 0} == {
        "time": 0,
        "service": "monolith",
        "method": "GET",
        "path": "/api/users/2",
        "status": 200,
        "duration_ms": 0,
        "trace_id": given,
    }
    assert entries[made.headers["x-amzn-trace-id"]]["status"] == 404
    assert entries['a"b\\c']["path"] == '/api/users/"\\%C3%A9'  # escaped, still one JSON line


def _wait_for_log(service: Service, trace_ids: set[str]) -> list[dict]:
    # A line is written just after its response is sent: poll, with a deadline, until all are.
    deadline = time.monotonic() + 10
    while True:
        entries = _log_lines(service)
        if trace_ids <= {e["trace_id"] for e in entries} or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_unprintable_trace_header_is_replaced(monolith: Service) -> None:
    answer = monolith.call("GET", "/", headers={"X-Amzn-Trace-Id": "x" * 300})
    assert TRACE.match(answer.headers["x-amzn-trace-id"])


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["nope"], {}, "unknown service 'nope'"),
        (["users"], {"PORT": "eighty"}, "PORT: must be a whole number"),
        (["users", "--port", "70000"], {}, "--port: must be 0..65535"),
        (["users"], {"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL: must be sqlite:///"),
        (["users", "--database", "sqlite:///"], {}, "--database: must be sqlite:///"),
        (["posts"], {"API_URL": "ftp://lb"}, "API_URL: must be an http://host:port URL"),
        (["posts"], {"USERS_URL": "http://:99"}, "USERS_URL: must be an http://host:port URL"),
        (["users", "--workers", "0"], {}, "--workers: must be 1..64"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(argv: list[str], env: dict, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "microforum", "serve", *argv],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreachable_postgres_is_one_line_exit_1(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:9/none?connect_timeout=2"
    result = subprocess.run(
        [sys.executable, "-m", "microforum", "serve", "users", "--database", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("microforum: open database postgresql://")
    assert "Traceback" not in result.stderr


def test_port_in_use_and_unwritable_database_are_one_line_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port), "--host", "127.0.0.1"], f"listen on 127.0.0.1:{port}"),
            (["--database", f"sqlite:///{tmp_path}/file/x.db"], "open database sqlite:///"),
        ]
        (tmp_path / "file").write_text("a file where a directory should be")
        for extra, message in cases:
            result = subprocess.run(
                [sys.executable, "-m", "microforum", "serve", "users", *extra],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1
            assert result.stderr.startswith(f"microforum: {message}"), result.stderr
            assert "Traceback" not in result.stderr


def test_replicas_on_one_sqlite_file_see_each_others_writes(tmp_path: Path) -> None:
    with serving("users", tmp_path) as a, serving("users", tmp_path) as b:
        assert a.get("/api/users").json == b.get("/api/users").json  # both warm their caches
        made = a.call("POST", "/api/users", {"username": "tree-trunks", "name": "Tree Trunks"})
        assert b.get(f"/api/users/{made.json['id']}").json == made.json
        assert b.get("/api/users").json[-1] == made.json
        changed = b.call("PATCH", f"/api/users/{made.json['id']}", {"bio": "apple pies"})
        assert a.get(f"/api/users/{made.json['id']}").json == changed.json

        def create(n: int) -> Answer:
            port = (a, b)[n % 2].port
            return call(port, "POST", "/api/users", {"username": f"pup{n}", "name": "Pup"})

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(create, range(40)))
        assert {x.status for x in answers} == {201}
        ids = {x.json["id"] for x in answers}
        assert len(ids) == 40
        assert ids <= {u["id"] for u in a.get("/api/users").json}
        assert ids <= {u["id"] for u in b.get("/api/users").json}
