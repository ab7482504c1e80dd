"""Run an engine command, streaming its output lines to a progress callback.

The one place images/ starts processes: build, tag, login and push all go through `run`, which
raises a MicroforumError naming what was being done and the command's last output line when the
command fails, so a failed push is never mistaken for a successful one.
"""

from __future__ import annotations

import collections
import subprocess
from collections.abc import Callable, Sequence

from microforum.errors import MicroforumError

Progress = Callable[[str], None]
_TAIL = 20  # output lines kept to explain a failure


def run(
    argv: Sequence[str],
    *,
    doing: str,
    on_progress: Progress | None = None,
    prefix: str = "",
    stdin: str | None = None,
) -> list[str]:
    """Run `argv`; send each output line to `on_progress`; return the last lines.

    `doing` ("push image for service 'users'") starts the error message if the command cannot
    start or exits non-zero. `stdin` is written to the command's standard input (a password).
    """
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL)
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise MicroforumError(f"{doing}: cannot run {argv[0]}: {exc.strerror}") from exc
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.rstrip()
        if line:
            tail.append(line)
            if on_progress is not None:
                on_progress(f"{prefix}{line}")
    code = proc.wait()
    if code != 0:
        raise MicroforumError(f"{doing}: {_cause(argv, code, tail)}")
    return list(tail)


def _cause(argv: Sequence[str], code: int, tail: collections.deque[str]) -> str:
    last = tail[-1] if tail else "no output"
    name = " ".join(argv[:2])
    return f"{name} exited with {code}: {last}"
