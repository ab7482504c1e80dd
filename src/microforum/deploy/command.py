"""`microforum render`, `deploy` and `destroy`: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from microforum.errors import UsageError
from microforum.spec import defaults as d

STACK_HELP = f"the stack file (default: {d.STACK_FILE})"


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `render`, `deploy` and `destroy` to the `microforum` parser."""
    render = subparsers.add_parser(
        "render",
        help="print the CloudFormation, task definitions, target groups, rules and services to apply",
    )
    _common(render, region_required=False)
    render.add_argument(
        "--outputs",
        metavar="FILE",
        help="JSON object of the stack's outputs (default: from AWS with --region, else placeholders)",
    )
    render.set_defaults(func=_render)

    deploy = subparsers.add_parser("deploy", help="plan and apply the stack on AWS; prints the URL")
    _common(deploy)
    deploy.add_argument(
        "--image-tag",
        metavar="T",
        help="deploy images already in ECR under tag T (default: tag by the code's content; "
        "build and push what is missing)",
    )
    deploy.add_argument(
        "--dry-run", action="store_true", help="print the plan (the one deploy would run) and change nothing"
    )
    deploy.add_argument(
        "--delete-database",
        action="store_true",
        help="allow a change that deletes or replaces the database or its secrets (refused otherwise)",
    )
    deploy.add_argument(
        "--engine", choices=("docker", "podman"), help="container engine for building (default: detect)"
    )
    deploy.add_argument(
        "--timeout",
        type=float,
        default=d.DEPLOY_STABLE_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the services to become stable (default {d.DEPLOY_STABLE_TIMEOUT})",
    )
    deploy.set_defaults(func=_deploy)

    destroy = subparsers.add_parser("destroy", help="remove everything deploy created")
    _common(destroy)
    destroy.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    destroy.add_argument(
        "--delete-images",
        action="store_true",
        help="also delete the images (repositories holding images are kept otherwise)",
    )
    destroy.set_defaults(func=_destroy)


def _common(p: argparse.ArgumentParser, *, region_required: bool = True) -> None:
    p.add_argument("--stack", default=d.STACK_FILE, metavar="FILE", help=STACK_HELP)
    p.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / your profile)")
    p.add_argument(
        "--stack-name",
        required=region_required,
        metavar="S",
        help="CloudFormation stack name (letters, digits, -)",
    )
    p.add_argument(
        "--template",
        type=Path,
        default=None,
        metavar="FILE",
        help="cluster template (default: infrastructure/ecs.yaml)",
    )
    p.add_argument(
        "--no-database",
        dest="database",
        action="store_false",
        help="no RDS PostgreSQL: each task keeps its own SQLite (one task per service)",
    )
    p.add_argument(
        "--repository-prefix",
        default=None,
        metavar="P",
        help="ECR repositories P/users, ... shared on purpose with other stacks "
        "(default: the stack's own, STACK-NAME/users, ...)",
    )


def _say(line: str) -> None:
    print(line, flush=True)


def _stack_name(args: argparse.Namespace) -> str:
    name = args.stack_name or "microforum"
    if not name[:1].isalpha() or not all(c.isalnum() or c == "-" for c in name) or len(name) > 128:
        raise UsageError(
            f"--stack-name {name!r}: must start with a letter and hold only letters, digits and -"
        )
    return str(name)


def _template(args: argparse.Namespace) -> Path:
    from microforum.deploy.stack import default_template_path

    return Path(args.template) if args.template else default_template_path()


def _render(args: argparse.Namespace) -> int:
    from microforum.deploy.render import Target, render, render_template, template_parameters
    from microforum.deploy.stack import load_template
    from microforum.spec.load import load_stack

    stack = load_stack(args.stack)
    name = _stack_name(args)
    outputs: dict[str, str] = {}
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "<region>"
    if args.outputs:
        outputs = _read_outputs(args.outputs)
    elif args.region:
        outputs = _remote_outputs(args.region, name)
    target = Target(name, region, outputs, {}, args.database, args.repository_prefix)
    document = {
        "stack": {
            "StackName": name,
            "Parameters": template_parameters(stack, database=args.database),
            "TemplateBody": render_template(stack, load_template(_template(args))),
        },
        **render(stack, target).as_json(),
    }
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _read_outputs(path: str) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"read outputs {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"read outputs {path}: must be a JSON object of output name -> value")
    return {str(k): str(v) for k, v in data.items()}


def _remote_outputs(region: str, name: str) -> dict[str, str]:
    from microforum.deploy.aws import Aws
    from microforum.deploy.remote import read_stack

    state = read_stack(Aws(region), name)
    return dict(state.outputs) if state else {}


def _deploy(args: argparse.Namespace) -> int:
    from microforum.deploy.aws import Aws
    from microforum.deploy.execute import DeployOptions, deploy
    from microforum.spec.load import load_stack

    stack = load_stack(args.stack)
    options = DeployOptions(
        stack_name=_stack_name(args),
        template=_template(args),
        image_tag=args.image_tag,
        dry_run=args.dry_run,
        database=args.database,
        delete_database=args.delete_database,
        repository_prefix=args.repository_prefix,
        engine=args.engine,
        timeout=args.timeout,
    )
    url = deploy(stack, options, Aws(args.region), _say)
    if url:
        print(url)
    return 0


def _destroy(args: argparse.Namespace) -> int:
    from microforum.deploy.aws import Aws
    from microforum.deploy.destroy import DestroyOptions, destroy
    from microforum.spec.load import load_stack

    stack = load_stack(args.stack)
    name = _stack_name(args)
    if not args.yes:
        _confirm(name, args.delete_images)
    options = DestroyOptions(
        stack_name=name, delete_images=args.delete_images, repository_prefix=args.repository_prefix
    )
    destroy(stack, options, Aws(args.region), _say, time.sleep)
    return 0


def _confirm(name: str, delete_images: bool) -> None:
    if not sys.stdin.isatty():
        raise UsageError(
            f"destroy {name}: refusing without confirmation (standard input is not a terminal)",
            hint="pass --yes to destroy without asking",
        )
    images = " and the images" if delete_images else ""
    answer = input(
        f"Destroy stack {name}, its services, load balancer, database (a final snapshot is kept)"
        f"{images}? Type the stack name to confirm: "
    )
    if answer.strip() != name:
        raise UsageError(f"destroy {name}: not confirmed, nothing was deleted")
