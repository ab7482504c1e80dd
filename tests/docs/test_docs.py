"""The docs cannot drift: their shell blocks are checked, and the ones marked runnable are run.

In README.md and docs/*.md, every fenced `sh` block is read line by line:

* a `microforum ...` command (or `.venv/bin/microforum ...`) must parse with the real parser
  (its sub-command and flags exist);
* a `make TARGET` must name a target of the Makefile.

A block whose fence is preceded by `<!-- run -->` is run with bash (`set -euo pipefail`) in a
fresh temporary directory, `microforum` on PATH. One preceded by `<!-- run: stack -->` is run in
the directory of a `microforum up` of the repository's stack.yaml, started for these tests on
a free port: `localhost:8080` in the block is that port. Blocks marked nothing are only checked
(they need AWS, a long time, or your terminal).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from microforum.cli import build_parser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "local"))
from up_helpers import UpProcess, up

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
COMMENT = re.compile(r"(^|[ \t])#.*$", re.M)
MARKER = re.compile(r"<!-- run(?:: (\w+))? -->\s*$")
BIN = str(Path(sys.executable).parent)


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int
    language: str
    text: str
    mode: str | None  # None: only checked; "plain": run alone; "stack": run beside a stack

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks() -> Iterator[Block]:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = MARKER.search(before)
            mode = (marker.group(1) or "plain") if marker else None
            line = text[: match.start()].count("\n") + 1
            yield Block(doc, line, match.group(1), match.group(2), mode)


SHELL = [b for b in blocks() if b.language in {"sh", "bash", "shell"}]


def commands(block: Block) -> Iterator[list[str]]:
    """Each simple command of a block as its words, without redirections: continuation lines
    joined, comments (a # after a space) dropped, split at newlines, ;, &&, || and |."""
    text = COMMENT.sub("", block.text.replace("\\\n", " "))
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();<>|&\n")
    lexer.whitespace, lexer.whitespace_split, lexer.commenters = " \t\r", True, ""
    words: list[str] = []
    redirect = False
    for token in lexer:
        if token and set(token) <= set("<>"):
            redirect = True  # the next word is a file, not an argument
        elif token and set(token) <= set("();|&\n"):
            if words:
                yield words
            words = []
        elif redirect:
            redirect = False
        else:
            words.append(token)
    if words:
        yield words


def test_the_docs_have_blocks_to_run() -> None:
    assert {b.mode for b in SHELL} >= {"plain", "stack", None}


@pytest.mark.parametrize("block", SHELL, ids=str)
def test_every_command_in_the_docs_exists(block: Block) -> None:
    targets = set(re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M))
    for words in commands(block):
        if words[0] in {"microforum", ".venv/bin/microforum"}:
            try:
                build_parser().parse_args(words[1:])
            except SystemExit as exc:  # --help and --version exit 0
                if exc.code in (0, None):
                    continue
                pytest.fail(f"{block}: `{shlex.join(words)}` does not parse (exit {exc.code})")
        elif words[0] == "make":
            assert set(words[1:]) <= targets, f"{block}: `{shlex.join(words)}`: no such make target"


def run(block: Block, cwd: Path, port: int | None = None) -> None:
    text = block.text if port is None else re.sub(r"(localhost|127\.0\.0\.1):8080", rf"\1:{port}", block.text)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1"}
    result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + text], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=180)  # fmt: skip
    assert result.returncode == 0, (
        f"{block} failed:\n{text}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


@pytest.mark.parametrize("block", [b for b in SHELL if b.mode == "plain"], ids=str)
def test_runnable_blocks_run(block: Block, tmp_path: Path) -> None:
    run(block, tmp_path)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """The repository's stack, running in a directory of its own: (the directory, its port)."""
    directory = tmp_path_factory.mktemp("docs-stack")
    shutil.copy(ROOT / "stack.yaml", directory / "stack.yaml")
    process: UpProcess
    with up(directory / "stack.yaml") as process:
        yield directory, int(process.wait_ready(60).rsplit(":", 1)[1])


@pytest.mark.parametrize("block", [b for b in SHELL if b.mode == "stack"], ids=str)
def test_blocks_run_beside_a_stack(block: Block, stack: tuple[Path, int]) -> None:
    run(block, *stack)
