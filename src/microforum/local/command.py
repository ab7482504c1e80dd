"""Sub-commands of the local stack: `up`, `status`, `restart`, `down`.

`up` runs the stack in the foreground (local/stack.py); `status` and `restart` talk to it from
another terminal through the control channel (local/control.py), found through the data
directory of the same stack file; `down` stops it and removes what it left (local/down.py).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from microforum.errors import UsageError
from microforum.spec import defaults as d

STACK_HELP = f"the stack file (default: {d.STACK_FILE})"


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `up`, `status` and `restart` to the `microforum` parser."""
    up = subparsers.add_parser("up", help="run the local stack: replicas + local ALB (Ctrl-C stops)")
    up.add_argument("--stack", default=d.STACK_FILE, metavar="FILE", help=STACK_HELP)
    up.add_argument(
        "--port",
        type=_port,
        default=None,
        metavar="N",
        help=f"the load balancer's port (default: local.port, {d.LOCAL_PORT}; 0 picks a free one)",
    )
    up.add_argument(
        "--containers",
        action="store_true",
        help="run the services from their container images (built first; podman or docker)",
    )
    up.add_argument(
        "--base-image",
        metavar="IMAGE",
        help="with --containers: the Dockerfile's BASE_IMAGE (default: $MICROFORUM_BASE_IMAGE, else "
        "python:3.12-slim; without Docker Hub: localhost/python-base:bookworm, see docs/containers.md)",
    )
    up.set_defaults(func=_up)

    down = subparsers.add_parser(
        "down", help="stop the stack and remove its containers, whatever happened to its `up`"
    )
    down.add_argument("--stack", default=d.STACK_FILE, metavar="FILE", help=STACK_HELP)
    down.set_defaults(func=_down)

    status = subparsers.add_parser("status", help="target health per target group of the running stack")
    status.add_argument("--stack", default=d.STACK_FILE, metavar="FILE", help=STACK_HELP)
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.add_argument("--region", help="with --stack-name: the deployed stack, read from AWS")
    status.add_argument("--stack-name", metavar="S", help="the deployed stack (deploy --stack-name)")
    status.set_defaults(func=_status)

    restart = subparsers.add_parser(
        "restart", help="rolling replacement of one service's replicas in the running stack"
    )
    restart.add_argument("service", help="the service to replace (e.g. users)")
    restart.add_argument("--stack", default=d.STACK_FILE, metavar="FILE", help=STACK_HELP)
    restart.set_defaults(func=_restart)

    logs = subparsers.add_parser("logs", help="the local stack's logs, per replica, interleaved in time")
    logs.add_argument("service", nargs="?", help="one service (e.g. users) or replica (users-2)")
    logs.add_argument("--stack", default=d.STACK_FILE, metavar="FILE", help=STACK_HELP)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    logs.add_argument("--since", metavar="DURATION", help="only the last DURATION (e.g. 30s, 10m, 1h30m)")
    logs.add_argument("--region", help="with --stack-name: the deployed stack's CloudWatch Logs")
    logs.add_argument("--stack-name", metavar="S", help="the deployed stack (deploy --stack-name)")
    logs.set_defaults(func=_logs)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {port}")
    return port


def _load(path: str) -> tuple[Any, Path]:
    from microforum.spec.load import load_stack

    return load_stack(path), Path(path)


def _up(args: argparse.Namespace) -> int:
    from microforum.lb.compiled import use_compiled_build

    # First, before any load-balancer module is imported. What it says goes to the stack's log
    # once the stack starts: a user mistake below stays a one-line error.
    notice = io.StringIO()
    use_compiled_build(err=notice)
    from microforum.local.stack import run_up

    stack, path = _load(args.stack)
    if getattr(args, "containers", False):
        from microforum.images.runner import container_runner_factory
        from microforum.local.stack import data_dir_of

        factory = container_runner_factory(stack, data_dir_of(stack, path), base_image=args.base_image)
        return run_up(stack, path, args.port, runner_factory=factory, notice=notice.getvalue())
    if args.base_image:
        raise UsageError(
            "--base-image is for --containers", hint="add --containers, or leave --base-image out"
        )
    return run_up(stack, path, args.port, notice=notice.getvalue())


def _down(args: argparse.Namespace) -> int:
    from microforum.images.leftovers import installed_engines, remove_leftovers
    from microforum.local.down import stop_running
    from microforum.local.stack import data_dir_of

    stack, path = _load(args.stack)
    data_dir = data_dir_of(stack, path)
    stopped = stop_running(data_dir, say=print)
    removed = sum(remove_leftovers(engine, data_dir, print) for engine in installed_engines())
    if not stopped and not removed:
        print(f"nothing to do: no stack running from {data_dir}, and no container of it left")
    return 0


def _control(args: argparse.Namespace) -> Any:
    from microforum.local.control import read_control
    from microforum.local.stack import data_dir_of

    stack, path = _load(args.stack)
    return read_control(data_dir_of(stack, path))


def _status(args: argparse.Namespace) -> int:
    from microforum.local.control import call
    from microforum.local.status import format_status

    if getattr(args, "stack_name", None):
        from microforum.deploy.aws import Aws
        from microforum.deploy.status import aws_status

        body = aws_status(_load(args.stack)[0], Aws(args.region), args.stack_name)
    else:
        body = call(_control(args), "GET", "/status")
    if args.json:
        json.dump(body, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_status(body))
    return 0


def _logs(args: argparse.Namespace) -> int:
    from microforum.errors import UsageError
    from microforum.local.logs import parse_duration, print_logs
    from microforum.local.replicalogs import LOG_DIR
    from microforum.local.stack import data_dir_of

    stack, path = _load(args.stack)
    names = [s.name for s in stack.services]
    if args.service and args.service.rsplit("-", 1)[0] not in names and args.service not in names:
        raise UsageError(
            f"logs {args.service}: no such service in {path}", hint=f"services: {', '.join(names)}"
        )
    since = parse_duration(args.since) if args.since is not None else None

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        if args.follow:
            sys.stdout.flush()

    try:
        if args.stack_name:
            _aws_logs(args, since, out)
        else:
            print_logs(data_dir_of(stack, path) / LOG_DIR, args.service, since, args.follow, out)
    except KeyboardInterrupt:
        return 130
    return 0


def _aws_logs(args: argparse.Namespace, since: float | None, out: Any) -> None:
    from microforum.deploy.aws import Aws
    from microforum.deploy.logs import print_aws_logs

    print_aws_logs(Aws(args.region), args.stack_name, args.service, since, args.follow, out)


def _restart(args: argparse.Namespace) -> int:
    from microforum.local.control import RESTART_TIMEOUT, call

    info = _control(args)
    print(f"restarting {args.service}: new replicas first, old ones drained when they are healthy")
    body = call(info, "POST", f"/restart?service={args.service}", timeout=RESTART_TIMEOUT)
    print(f"{args.service}: replaced; now {', '.join(body['replicas'])}")
    return 0
