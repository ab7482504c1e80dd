"""The prefixed log stream and replica argv (the process runner itself runs in test_up.py)."""

from __future__ import annotations

import io
import sys

from microforum.local.processes import LogStream, replica_argv
from microforum.spec.load import parse_stack


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
