"""The prefixed log stream and replica argv; replicas' output through real child processes.

The children print in odd chunkings (a line cut across writes, several lines in one write),
leave a last line without its newline, print a line longer than the read limit and many lines
fast; each test checks the prefixed stream the terminal gets and the lines kept for crash reports.
"""

from __future__ import annotations

import asyncio
import io
import sys
import textwrap
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from microforum.local.processes import (
    READ_LIMIT,
    RECENT_LINES,
    LogStream,
    ProcessHandle,
    ProcessRunner,
    pump_lines,
    replica_argv,
)
from microforum.spec.load import parse_stack

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
LOOPS = [pytest.param(asyncio.run, id="asyncio"), pytest.param(uvloop.run, id="uvloop")]
# Writes cut where lines are not: across writes, several lines at once, stderr in between, CRLF.
ODD_CHUNKS = r"""
import os, sys, time
for piece in [b"al", b"pha\nbe", b"ta\n\ngam", b"ma\r\n", b"caf\xc3", b"\xa9 \xff\n"]:
    os.write(1, piece)
    time.sleep(0.01)  # let the supervisor read each piece on its own
os.write(2, b"to stderr\n")
os.write(1, b"no newline before the end")
"""


def test_log_lines_are_prefixed_like_docker_compose_without_colour_off_a_tty() -> None:
    out = io.StringIO()
    log = LogStream(out)
    log.line("users-1", "started")
    log.line("microforum", "ready")
    assert out.getvalue() == "users-1     | started\nmicroforum  | ready\n"


def test_colours_are_per_service_when_asked_for() -> None:
    out = io.StringIO()
    log = LogStream(out, colour=True)
    log.line("users-1", "a")
    log.line("users-2", "b")
    log.line("posts-1", "c")
    first, second, third = out.getvalue().splitlines()
    assert first.startswith("\x1b[36musers-1") and second.startswith("\x1b[36musers-2")
    assert third.startswith("\x1b[33mposts-1")


def test_builtins_run_this_interpreter_and_commands_get_port_expanded() -> None:
    stack = parse_stack(
        {
            "services": {
                "users": {},
                "web": {"command": "python3 -m http.server --bind 127.0.0.1 ${PORT}"},
                "app": {"command": ["node", "app.js", "--port=$PORT"]},
            },
            "listener": {"default_action": {"forward": "web"}, "rules": []},
        }
    )
    env = {"PORT": "4321"}
    assert replica_argv(stack.service("users"), env) == [
        sys.executable, "-m", "microforum", "serve", "users",
    ]  # fmt: skip
    assert replica_argv(stack.service("web"), env)[-1] == "4321"
    assert replica_argv(stack.service("app"), env) == ["node", "app.js", "--port=4321"]


class CountingOut(io.StringIO):
    """A terminal stand-in that counts writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _service(script: str) -> Any:
    stack = parse_stack({
        "services": {"kid": {"command": [sys.executable, "-c", textwrap.dedent(script)]}},
        "listener": {"default_action": {"forward": "kid"}, "rules": []},
    })  # fmt: skip
    return stack.service("kid")


def _run_child(run: Runner, script: str) -> tuple[CountingOut, ProcessHandle, int]:
    """Run `script` as replica kid-1 through the process runner until it exits."""
    out = CountingOut()

    async def main() -> tuple[ProcessHandle, int]:
        handle = await ProcessRunner(LogStream(out)).start(_service(script), "kid-1", 0, {})
        return handle, await asyncio.wait_for(handle.wait(), 30)

    handle, code = run(main())
    return out, handle, code


@pytest.mark.parametrize("run", LOOPS)
def test_odd_chunkings_come_out_as_whole_prefixed_lines(run: Runner) -> None:
    out, handle, code = _run_child(run, ODD_CHUNKS)
    expected = ["alpha", "beta", "", "gamma", "caf\u00e9 \ufffd", "to stderr", "no newline before the end"]
    assert code == 0
    assert out.getvalue() == "".join(f"kid-1       | {line}\n" for line in expected)
    assert handle.recent_lines() == expected
    assert handle.exit_code == 0 and "exit=0" in repr(handle)


@pytest.mark.parametrize("run", LOOPS)
def test_many_lines_fast_are_all_there_in_order_in_few_writes(run: Runner) -> None:
    count = 20000
    script = f"""
        import os
        data = "".join(f"line {{i}}\\n" for i in range({count})).encode()
        while data:
            data = data[os.write(1, data):]
    """
    out, handle, code = _run_child(run, script)
    assert code == 0
    assert out.getvalue().splitlines() == [f"kid-1       | line {i}" for i in range(count)]
    assert handle.recent_lines() == [f"line {i}" for i in range(count - RECENT_LINES, count)]
    assert out.writes < count / 20  # whole chunks are written at once, not line by line


def test_a_line_longer_than_the_read_limit_comes_out_in_pieces() -> None:
    size = READ_LIMIT * 2 + READ_LIMIT // 2
    script = f"""
        import sys
        sys.stdout.write("x" * {size} + "\\nafter\\n")
    """
    out, handle, code = _run_child(uvloop.run, script)
    assert code == 0
    lines = out.getvalue().splitlines()
    assert [len(line) for line in lines[:-1]] == [14 + READ_LIMIT] * 2 + [14 + READ_LIMIT // 2]
    assert all(line == "kid-1       | " + "x" * (len(line) - 14) for line in lines[:-1])
    assert lines[-1] == "kid-1       | after"
    assert handle.recent_lines()[-1] == "after"


def test_pump_lines_reads_a_stream_reader_the_same_way() -> None:
    out, recent = io.StringIO(), deque[str](maxlen=3)

    async def main() -> None:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ODD_CHUNKS, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert child.stdout is not None
        await pump_lines(child.stdout, "kid-2", recent, LogStream(out, colour=True))
        await child.wait()

    asyncio.run(main())
    lines = out.getvalue().splitlines()
    assert lines[0] == "\x1b[36mkid-2       |\x1b[0m alpha"
    assert len(lines) == 7 and all(line.startswith("\x1b[36mkid-2") for line in lines)
    assert list(recent) == ["caf\u00e9 \ufffd", "to stderr", "no newline before the end"]


def test_a_command_that_cannot_start_is_one_clear_error(tmp_path: Any) -> None:
    from microforum.errors import MicroforumError

    stack = parse_stack({
        "services": {"kid": {"command": [str(tmp_path / "missing")]}},
        "listener": {"default_action": {"forward": "kid"}, "rules": []},
    })  # fmt: skip

    async def main() -> None:
        await ProcessRunner(LogStream(io.StringIO())).start(stack.service("kid"), "kid-1", 0, {})

    with pytest.raises(MicroforumError, match=r"start replica kid-1: .*missing"):
        asyncio.run(main())
