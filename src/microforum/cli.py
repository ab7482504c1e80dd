"""The `microforum` command: argument parsing and printing only.

Each area of the product contributes its sub-commands through `add_commands(subparsers)` in its
own `command` module; this module wires them together and turns `MicroforumError` into one line
on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from microforum import __version__, helptext
from microforum.errors import MicroforumError

DESCRIPTION = "A forum API as Python microservices behind an ALB: run locally (up), deploy to ECS (deploy)."

COMMAND_MODULES = (
    "microforum.services.command",
    "microforum.local.command",
    "microforum.images.command",
    "microforum.deploy.command",
    "microforum.spec.command",
    "microforum.completion",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, like every user mistake
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="microforum", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"microforum {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    helptext.apply(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MicroforumError as exc:
        print(f"microforum: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
