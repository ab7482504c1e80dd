"""`microforum up` with the repository's stack.yaml: the built-in services behind the local ALB.

One stack for the module (a copy of stack.yaml in a temporary directory, so its data directory
is temporary too, and the load balancer on an ephemeral port); the tests follow its life in
order and end with Ctrl-C.
"""

from __future__ import annotations

import json
import shutil
import signal
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from up_helpers import Load, UpProcess, alive, family, kill_replica_under_load, microforum, status, up

from microforum.spec.load import load_stack

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stack") / "stack.yaml"
    shutil.copy(ROOT / "stack.yaml", path)
    return path


@pytest.fixture(scope="module")
def stack(stack_file: Path) -> Iterator[UpProcess]:
    with up(stack_file) as process:
        process.wait_ready(timeout=60)
        yield process


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def test_every_original_route_answers_through_the_load_balancer(stack: UpProcess, stack_file: Path) -> None:
    assert get(f"{stack.url}/")[::2] == (200, "Ready to receive requests")
    assert get(f"{stack.url}/api/")[::2] == (200, "API ready to receive requests")
    users = json.loads(get(f"{stack.url}/api/users")[2])
    threads = json.loads(get(f"{stack.url}/api/threads")[2])
    posts = json.loads(get(f"{stack.url}/api/posts")[2])
    assert users and threads and posts
    assert json.loads(get(f"{stack.url}/api/users/1")[2])["id"] == 1
    assert json.loads(get(f"{stack.url}/api/threads/1")[2])["id"] == 1
    in_thread = json.loads(get(f"{stack.url}/api/posts/in-thread/1")[2])
    by_user = json.loads(get(f"{stack.url}/api/posts/by-user/1")[2])
    assert in_thread and all(p["thread"] == 1 for p in in_thread)
    assert by_user and all(p["user"] == 1 for p in by_user)
    counts = {
        name: group["metrics"]["RequestCount"] for name, group in status(stack_file)["target_groups"].items()
    }  # each rule's target group served its own paths (and maybe lookups); the monolith the rest
    assert counts["monolith"] == 2
    assert counts["users"] >= 2 and counts["threads"] >= 2 and counts["posts"] >= 3
    assert (stack_file.parent / ".microforum" / "data").is_dir()


def test_the_stacks_files_are_readable_by_their_owner_only(stack: UpProcess, stack_file: Path) -> None:
    home = stack_file.parent / ".microforum"
    get(f"{stack.url}/api/users/1")  # the access log has a line
    files = [home / "control.json", home / "access.log", *(home / "data").glob("*.db*")]
    assert len(files) > 6, files  # four databases, with their -wal and -shm files
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    assert stat.S_IMODE(home.stat().st_mode) == stat.S_IMODE((home / "data").stat().st_mode) == 0o700


def test_a_path_rule_cannot_be_bypassed_by_case_or_percent_encoding(stack: UpProcess) -> None:
    # `/api/users*` is the users rule's; these paths do not match it (ALB's path-pattern is
    # case-sensitive and matches the path as sent), so they go to the monolith: it must not
    # serve them as /api/users/1 (it did, having decoded and lower-cased the path).
    assert json.loads(get(f"{stack.url}/api/users/1")[2])["id"] == 1
    for path in ("/API/users/1", "/Api/Users/1", "/%61pi/users/1", "/api/%75sers/1", "/api%2Fusers/1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            get(f"{stack.url}{path}")
        assert refused.value.code == 404, path


def test_status_text_lists_every_target_healthy(stack: UpProcess, stack_file: Path) -> None:
    result = microforum("status", "--stack", str(stack_file))
    assert result.returncode == 0, result.stderr
    desired = sum(s.desired_count for s in load_stack(stack_file).services)
    healthy = [line for line in result.stdout.splitlines() if "  healthy" in line]
    assert len(healthy) == desired


def test_sigkill_of_a_replica_under_load(stack: UpProcess, stack_file: Path) -> None:
    check = load_stack(stack_file).service("users").target_group.health_check
    bound = check.interval * check.unhealthy_threshold + check.timeout
    victim = next(r for r in status(stack_file)["replicas"] if r["service"] == "users")
    with Load(stack.url, "/api/users/1") as load:
        killed_at, settled_at, targets = kill_replica_under_load(stack, stack_file, victim, "users", 2)
    failures = load.failures(since=killed_at)
    print(
        f"\nSIGKILL under load: {len(failures)} failed of {load.count(killed_at)} requests: "
        f"{sorted({str(o) for _, o in failures})}"
    )
    assert victim["id"] not in {t["id"] for t in targets}
    assert all(t - killed_at <= bound for t, _ in failures), failures
    assert load.failures(since=settled_at) == []


def test_rolling_restart_under_load_fails_no_request(stack: UpProcess, stack_file: Path) -> None:
    old = {r["id"] for r in status(stack_file)["replicas"] if r["service"] == "users"}
    with Load(stack.url, "/api/users/1") as load:
        time.sleep(0.3)
        started = time.monotonic()
        result = microforum("restart", "users", "--stack", str(stack_file))
        time.sleep(0.3)
    assert result.returncode == 0, result.stderr
    print(f"\nrestart under load: {len(load.failures())} failed of {load.count(started)} requests")
    assert load.failures() == []
    new = {r["id"] for r in status(stack_file)["replicas"] if r["service"] == "users"}
    assert len(new) == 2 and not new & old


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/users", b'{"username": "\xff", "name": "x"}'),
        ("PATCH", "/api/users/1", b'{"name": "\xff"}'),
        ("POST", "/api/threads", b'{"title": "\xff", "createdBy": 1}'),
        ("POST", "/api/posts", b'{"thread": 1, "user": 1, "text": "\xff"}'),
    ],
)
def test_invalid_utf8_through_the_load_balancer_is_a_400(
    stack: UpProcess, method: str, path: str, body: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{stack.url}{path}", data=body, method=method, headers=headers)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    assert "not valid UTF-8" in json.loads(caught.value.read())["detail"]


def test_ctrl_c_stops_everything_and_exits_0(stack: UpProcess) -> None:
    started = family(stack.proc.pid)
    assert len(started) >= 7  # every replica, with granian's workers
    assert stack.stop(signal.SIGINT) == 0
    assert alive(started) == set()
