"""Errors a user can act on.

Every failure a user can cause or fix is raised as a `MicroforumError` (or a subclass) at the
boundary where a foreign exception is understood, with `raise ... from exc`. `cli.main` prints
it as one line (plus an optional hint) and exits with its `exit_code`; no traceback.
"""

from __future__ import annotations


class MicroforumError(Exception):
    """A failure explained in one line: "verb object: cause"."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MicroforumError):
    """The user asked for something malformed: bad arguments, an invalid stack.yaml."""

    exit_code = 2
