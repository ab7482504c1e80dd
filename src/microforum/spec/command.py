"""`microforum schema` and `microforum init`: stack.yaml's JSON Schema, and a starter stack.

`init` writes the original architecture (the repository's own stack.yaml, shipped as
`spec/starter.yaml`) and its schema beside it, so an editor with the YAML language server
completes and checks the file offline; it never overwrites a stack file without `--force`.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from microforum.errors import UsageError
from microforum.spec import defaults as d

SCHEMA_FILE = "stack.schema.json"


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `schema` and `init` to the `microforum` parser."""
    schema = subparsers.add_parser("schema", help="print stack.yaml's JSON Schema (2020-12) for editors")
    schema.set_defaults(func=_schema)

    init = subparsers.add_parser("init", help="write a starter stack.yaml (the original architecture)")
    init.add_argument(
        "dir",
        nargs="?",
        default=".",
        metavar="DIR",
        help="where to write stack.yaml and stack.schema.json (default: here; made if missing)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing stack.yaml")
    init.set_defaults(func=_init)  # fmt: skip


def schema_text() -> str:
    """The schema as `microforum schema` prints it (and stack.schema.json holds it)."""
    from microforum.spec.schema import stack_schema

    return json.dumps(stack_schema(), indent=2, ensure_ascii=False) + "\n"


def starter_text() -> str:
    """The starter stack.yaml: the original architecture, with its schema comment."""
    return resources.files("microforum.spec").joinpath("starter.yaml").read_text(encoding="utf-8")


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0


def _init(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    stack = directory / d.STACK_FILE
    if stack.exists() and not args.force:
        raise UsageError(
            f"write {stack}: it already exists",
            hint="edit it, or pass --force to start again from the starter",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        stack.write_text(starter_text(), encoding="utf-8")
        (directory / SCHEMA_FILE).write_text(schema_text(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"write {stack}: {exc.strerror}", hint="pick a directory you can write to") from exc
    go = "" if directory == Path(".") else f"cd {directory} && "
    print(
        f"wrote {stack} (users, threads, posts and the monolith behind one ALB) and {SCHEMA_FILE} beside it"
    )
    print("next:")
    print(f"  {go}microforum up                 # run it here: replicas + the local ALB on :{d.LOCAL_PORT}")
    print(f"  curl localhost:{d.LOCAL_PORT}/api/users     # through the load balancer")
    print("  microforum status             # target health, from another terminal")
    print("  microforum deploy --dry-run --region eu-west-1 --stack-name my-forum   # what AWS would get")
    return 0
