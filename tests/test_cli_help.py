"""`--help` of every command: a description, every option explained, examples to copy; and
`microforum completion bash|zsh|fish` made from the same parser."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from microforum.cli import build_parser
from microforum.completion import script
from microforum.helptext import subcommands

COMMANDS = subcommands(build_parser())


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "microforum", *args], capture_output=True, text=True,
                          input=stdin, timeout=60)  # fmt: skip


def test_every_command_is_listed() -> None:
    assert {"", "up", "status", "restart", "deploy", "schema", "init", "completion", "images build"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: p or "microforum")
def test_help_has_a_description_every_option_explained_and_an_example(path: str) -> None:
    parser = COMMANDS[path]
    assert parser.description, f"`microforum {path} --help` has no description: add it to helptext.HELP"
    examples = (parser.epilog or "").splitlines()
    assert examples[:1] == ["examples:"], f"`microforum {path}` has no examples: add them to helptext.HELP"
    assert all(line.startswith(f"  microforum {path}".rstrip()) for line in examples[1:] if path)
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)
    shown = run(*path.split(), "--help")
    assert shown.returncode == 0 and "examples:" in shown.stdout


def complete(words: str) -> list[str]:
    """What bash completes for `words` (the last one is being typed)."""
    parts = words.split(" ")
    program = (
        f"{script('bash', build_parser())}\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in parts)}); COMP_CWORD={len(parts) - 1}\n"
        '_microforum; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("microforum ", {"up", "status", "restart", "deploy", "schema", "init", "completion", "--help"}),
        ("microforum re", {"restart", "render"}),
        ("microforum up --", {"--stack", "--port", "--containers", "--help"}),
        ("microforum images ", {"build", "push", "--help"}),
        ("microforum images build --", {"--tag", "--engine", "--base-image", "--platform", "--help"}),
        ("microforum images build --engine ", {"docker", "podman"}),
        ("microforum completion ", {"bash", "zsh", "fish", "--help"}),
        ("microforum completion f", {"fish"}),
        ("microforum status --stack pyproject.t", {"pyproject.toml"}),
    ],
)
def test_bash_completes_commands_options_and_choices(words: str, expected: set[str]) -> None:
    assert set(complete(words)) >= expected
    if not words.endswith(" "):
        assert all(w.startswith(words.rsplit(" ", 1)[1]) for w in complete(words))


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_each_script_is_printed_and_parses_in_its_shell(shell: str) -> None:
    result = run("completion", shell)
    assert result.returncode == 0 and "microforum" in result.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell} here to parse the script")
    check = subprocess.run([shell, "-n"], input=result.stdout, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


@pytest.mark.skipif(shutil.which("fish") is None, reason="no fish here")
def test_fish_completes_subcommands_with_their_help(tmp_path: Path) -> None:
    path = tmp_path / "microforum.fish"
    path.write_text(run("completion", "fish").stdout)
    done = subprocess.run(["fish", "-c", f"source {path}; complete -C 'microforum images build --'"],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    assert "--engine\tcontainer engine (default: detect)" in done.stdout
    assert "--platform" in done.stdout and "--stack" not in done.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = run("completion", "tcsh")
    assert result.returncode == 2 and "invalid choice: 'tcsh'" in result.stderr
