"""The compiled (mypyc) load balancer: the build key, the choice of a build, and `up` running it.

The pure parts (cache location, key, choice) are tables. The functional part compiles a copy of
the package once per session into a temporary build cache (skipped without a C compiler,
Python headers or mypyc; CI has them), then runs `microforum up` from that copy as a real
process. It checks that the compiled modules are the ones loaded (`up` verifies each module's
`__file__` and says so; /proc/PID/maps shows mypyc's shared library from the build), that the
load balancer proxies, answers 503 and a desync 400 and writes its access log; and that an
edited source or MICROFORUM_NATIVE=0 runs interpreted, with no file of the build loaded.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from microforum.lb.compiled import (
    PACKAGE,
    Choice,
    cache_root,
    choose,
    current_key,
    package_files,
    source_key,
    use_compiled_build,
)
from microforum.lb.native import HOT_MODULES, missing_tool

SOURCE = Path(__file__).resolve().parents[2] / "src" / "microforum"
STANDIN = Path(__file__).resolve().parents[1] / "local" / "standin.py"
COMPILED_LINE = "load balancer compiled with mypyc"
READY = re.compile(r"ready at http://127\.0\.0\.1:(\d+)")

# --- the cache's location ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "/home/u/.cache/microforum/native"),
        ({"XDG_CACHE_HOME": "/var/cache/u"}, "/var/cache/u/microforum/native"),
        ({"XDG_CACHE_HOME": "relative/dir"}, "/home/u/.cache/microforum/native"),  # ignored (XDG)
        ({"XDG_CACHE_HOME": ""}, "/home/u/.cache/microforum/native"),
    ],
    ids=["default", "xdg", "relative-xdg-ignored", "empty-xdg"],
)
def test_cache_root(environ: dict[str, str], expected: str) -> None:
    assert cache_root(environ, Path("/home/u")) == Path(expected)


# --- the build key -----------------------------------------------------------------------

FILES = [("__init__.py", b"x = 1\n"), ("lb/exchange.py", b"def f() -> int:\n    return 1\n")]
KEY = source_key(FILES, "3.11.7", "2.4.1")


@pytest.mark.parametrize(
    ("files", "python", "mypy"),
    [
        ([FILES[0], ("lb/exchange.py", b"def f() -> int:\n    return 2\n")], "3.11.7", "2.4.1"),
        ([*FILES, ("lb/new.py", b"")], "3.11.7", "2.4.1"),
        (FILES[:1], "3.11.7", "2.4.1"),
        ([FILES[0], ("lb/exchange2.py", FILES[1][1])], "3.11.7", "2.4.1"),
        ([("__init__.py", b"x = 1\nlb/exchange.py"), ("lb/exchange.py", FILES[1][1])], "3.11.7", "2.4.1"),
        (FILES, "3.12.1", "2.4.1"),
        (FILES, "3.11.7", "2.5.0"),
        (FILES, "3.11.7", None),
    ],
    ids=["edited", "added", "removed", "renamed", "bytes-moved-between-files", "python", "mypy", "no-mypy"],
)
def test_the_key_changes_with_any_source_python_or_mypy_change(
    files: list[tuple[str, bytes]], python: str, mypy: str | None
) -> None:
    assert source_key(files, python, mypy) != KEY


def test_the_key_does_not_depend_on_the_order_files_are_read() -> None:
    assert source_key(reversed(FILES), "3.11.7", "2.4.1") == KEY


def test_the_key_of_a_package_changes_when_one_source_file_is_edited(tmp_path: Path) -> None:
    package = tmp_path / "microforum"
    shutil.copytree(SOURCE, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_key(package_files(package), "py", "mypy")
    (package / "lb" / "__pycache__").mkdir(exist_ok=True)
    (package / "lb" / "__pycache__" / "exchange.cpython-311.pyc").write_bytes(b"junk")
    (package / "stack.yaml").write_text("not python")
    assert source_key(package_files(package), "py", "mypy") == before  # only .py and .c count
    with (package / "lb" / "exchange.py").open("a") as fh:
        fh.write("# an edit\n")
    edited = source_key(package_files(package), "py", "mypy")
    assert edited != before
    with (package / "lb" / "_speedups.c").open("a") as fh:  # the C helpers are source too
        fh.write("/* an edit */\n")
    assert source_key(package_files(package), "py", "mypy") != edited


# --- choosing a build --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builds", "expected"),
    [
        ({}, Choice(None, stale=False)),
        ({"k1": "/src/microforum"}, Choice("k1", stale=False)),
        ({"k0": "/src/microforum"}, Choice(None, stale=True)),
        ({"k0": "/other/checkout/microforum"}, Choice(None, stale=False)),
        ({"k0": "/src/microforum", "k1": "/other/checkout/microforum"}, Choice("k1", stale=False)),
        ({"k0": ""}, Choice(None, stale=False)),  # unreadable build.json: nobody's
    ],
    ids=["none", "match", "stale", "another-checkout", "match-made-elsewhere", "unknown"],
)
def test_only_the_exact_key_is_chosen(builds: dict[str, str], expected: Choice) -> None:
    assert choose("k1", builds, "/src/microforum") == expected


def test_no_switch_once_the_load_balancer_is_imported(tmp_path: Path) -> None:
    """Here (pytest) the load balancer is imported already: even a matching build is not used."""
    import microforum.lb.exchange  # noqa: F401  (the point: an interpreted module is loaded)

    build = tmp_path / "microforum" / "native" / current_key()
    (build / "microforum" / "lb").mkdir(parents=True)
    (build / "build.json").write_text(json.dumps({"source": str(PACKAGE)}))
    err = io.StringIO()
    assert use_compiled_build({"XDG_CACHE_HOME": str(tmp_path)}, err) is False
    assert err.getvalue() == ""


# --- functional: a real build, a real `microforum up` --------------------------------------

needs_compiler = pytest.mark.skipif(missing_tool() is not None, reason=f"cannot compile: {missing_tool()}")

STACK = f"""
name: native
services:
  web:
    command: [{json.dumps(sys.executable)}, {json.dumps(str(STANDIN))}]
    desired_count: 1
    health_check: {{path: /, interval: 5, timeout: 2, healthy_threshold: 2}}
    deregistration_delay: 1
  empty:
    command: [{json.dumps(sys.executable)}, {json.dumps(str(STANDIN))}]
    desired_count: 0
listener:
  port: 80
  default_action: {{forward: web}}
  rules:
    - priority: 1
      conditions: [{{path_pattern: ["/empty/*"]}}]
      action: {{forward: empty}}
"""


@dataclass
class Build:
    """A package copy (`tree`, for PYTHONPATH) and the build cache holding its compiled build."""

    tree: Path
    cache: Path
    seconds: float

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.tree), "XDG_CACHE_HOME": str(self.cache),
                "NO_COLOR": "1", **extra}  # fmt: skip

    @property
    def build_dir(self) -> Path:
        (only,) = [p for p in (self.cache / "microforum" / "native").iterdir() if p.is_dir()]
        return only


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """Compile a copy of the package once (a copy: the source may change during the session)."""
    root = tmp_path_factory.mktemp("native")
    tree, cache = root / "tree", root / "cache"
    shutil.copytree(SOURCE, tree / "microforum", ignore=shutil.ignore_patterns("__pycache__"))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "microforum.lb.native"], env=Build(tree, cache, 0).env(),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    seconds = time.monotonic() - started
    print(f"\nmypyc build of the load balancer: {seconds:.0f} s")  # shown with -s; see the report
    return Build(tree, cache, seconds)


class Up:
    """`python -m microforum up` from the build's package copy; output lines collected."""

    def __init__(self, stack_file: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "microforum", "up", "--stack", str(stack_file), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=stack_file.parent,
            env=env,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for line in list(self.lines):
                if match := READY.search(line):
                    return int(match.group(1))
            time.sleep(0.05)
        raise AssertionError("up never got ready:\n" + "\n".join(self.lines))

    def mapped(self) -> set[Path]:
        """The shared objects the `up` process (the load balancer) has loaded."""
        maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        return {Path(line.split()[-1]) for line in maps.splitlines() if line.endswith(".so")}


@contextlib.contextmanager
def up(build: Build, tmp_path: Path, **env: str) -> Iterator[Up]:
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(STACK)
    process = Up(stack_file, build.env(**env))
    try:
        yield process
    finally:
        process.proc.terminate()  # SIGTERM: `up` drains and stops its replicas
        try:
            process.proc.wait(30)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def raw(port: int, request: bytes) -> bytes:
    """Send `request` as is; everything the load balancer answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for_line(path: Path, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if needle in text:
            return next(line for line in text.splitlines() if needle in line)
        time.sleep(0.05)
    raise AssertionError(f"no access-log line with {needle!r} in {path}")


@needs_compiler
def test_up_runs_the_compiled_load_balancer(build: Build, tmp_path: Path) -> None:
    with up(build, tmp_path) as stack:
        port = stack.port()
        # `up` checked each compiled module's __file__ (in the build) before saying so; the
        # group's shared library, which holds all their code, is loaded from the build.
        # (the mypyc modules and the C helpers, lb/_speedups.c)
        assert f"{COMPILED_LINE} ({len(HOT_MODULES) + 1} modules," in "\n".join(stack.lines), stack.lines
        compiled = {p.name.split(".")[0] for p in stack.mapped() if p.is_relative_to(build.build_dir)}
        assert any(name.endswith("__mypyc") for name in compiled), compiled
        assert "_speedups" in compiled, compiled

        status, body = get(port, "/whoami")
        assert status == 200 and len(body.split()) == 2  # the stand-in: "<pid> <port>"
        status, body = get(port, "/empty/x")
        assert status == 503 and b"503" in body
        answer = raw(port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        assert answer.startswith(b"HTTP/1.1 400 ")

        log = tmp_path / ".microforum" / "access.log"
        line = wait_for_line(log, "/whoami HTTP/1.1")
        assert line.startswith("http ") and " 200 200 " in line
        assert '"Severe" "MultipleContentLength"' in wait_for_line(log, '"Severe"')


@needs_compiler
@pytest.mark.parametrize(
    ("edit", "env", "message"),
    [
        (True, {}, "does not match the source"),
        (False, {"MICROFORUM_NATIVE": "0"}, "load balancer interpreted (MICROFORUM_NATIVE=0)"),
    ],
    ids=["edited-source", "opted-out"],
)
def test_up_runs_interpreted_when_the_build_does_not_apply(
    build: Build, tmp_path: Path, edit: bool, env: dict[str, str], message: str | None
) -> None:
    exchange = build.tree / "microforum" / "lb" / "exchange.py"
    original = exchange.read_bytes()
    if edit:  # an edited .py must never be shadowed by the older .so
        exchange.write_bytes(original + b"\n# edited after the build\n")
    try:
        with up(build, tmp_path, **env) as stack:
            port = stack.port()
            assert not any(p.is_relative_to(build.cache) for p in stack.mapped())
            assert get(port, "/whoami")[0] == 200
            assert not any(COMPILED_LINE in line for line in stack.lines)
            if message:
                assert any(message in line for line in stack.lines), stack.lines
    finally:
        exchange.write_bytes(original)


# --- `make run`: the build in the background -----------------------------------------------


def native(build: Build, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**build.env(), "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([sys.executable, "-m", "microforum.lb.native", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


@needs_compiler
def test_background_build_starts_once_detached_and_not_when_the_build_exists(
    build: Build, tmp_path: Path
) -> None:
    done = native(build, build.cache, "--background")  # this source's build is there
    assert done.returncode == 0 and done.stdout.startswith("compiled load balancer: up to date")

    cache = tmp_path / "empty-cache"
    done = native(build, cache, "--background")
    assert done.returncode == 0, done.stderr
    assert "building in the background for the next start" in done.stdout
    assert "this start is interpreted" in done.stdout
    (lock,) = (cache / "microforum" / "native").glob(".building-*")
    pid = int(lock.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"microforum.lb.native" in cmdline and b"--if-possible" in cmdline
        assert os.getpgid(pid) == pid  # its own session: Ctrl-C on `make run` does not stop it
        again = native(build, cache, "--background")  # a second start does not start a second build
        assert f"being built in the background (pid {pid})" in again.stdout
        assert len(list((cache / "microforum" / "native").glob(".building-*"))) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, 9)
