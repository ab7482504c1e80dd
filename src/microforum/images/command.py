"""`microforum images build|push`: argument parsing and printing only."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from microforum.errors import MicroforumError, UsageError
from microforum.images.build import BASE_IMAGE_ENV, build, image_exists
from microforum.images.content import content_tag
from microforum.images.credentials import registry_password
from microforum.images.engine import ENGINES, Engine, detect_engine
from microforum.images.push import push
from microforum.images.refs import check_services, check_tag, local_ref
from microforum.spec.defaults import BUILTIN_SERVICES

TAG_HELP = "image tag (default: the content tag of the source, src-<hash>; see docs/containers.md)"


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `images build` and `images push` to the `microforum` parser."""
    images = subparsers.add_parser("images", help="build and push the services' container images")
    actions = images.add_subparsers(dest="images_command", metavar="ACTION")
    actions.required = True
    _add_build(actions)
    _add_push(actions)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"services (default: all of {', '.join(BUILTIN_SERVICES)})",
    )
    parser.add_argument("--tag", help=TAG_HELP)
    parser.add_argument("--engine", choices=ENGINES, help="container engine (default: detect)")
    parser.add_argument(
        "--base-image",
        help=f"the Dockerfile's BASE_IMAGE (default: ${BASE_IMAGE_ENV}, else python:3.12-slim; "
        "without Docker Hub: localhost/python-base:bookworm, see docs/containers.md)",
    )


def _add_build(actions: argparse._SubParsersAction[Any]) -> None:
    p = actions.add_parser("build", help="build one image per service from the Dockerfile")
    _add_common(p)
    p.add_argument("--platform", help="target platform, e.g. linux/amd64 for ECS on x86")
    p.set_defaults(func=_build)


def _add_push(actions: argparse._SubParsersAction[Any]) -> None:
    p = actions.add_parser("push", help="push built images to a registry (ECR or any other)")
    _add_common(p)
    p.add_argument("--registry", required=True, help="HOST[:PORT][/NAMESPACE]")
    p.add_argument("--username", default="AWS", help="registry user (default AWS, as ECR)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the registry password from standard input "
        "(default for ECR: a token from ecr:GetAuthorizationToken)",
    )
    p.set_defaults(func=_push)


def _build(args: argparse.Namespace) -> int:
    built = build(
        args.services,
        tag=args.tag,
        engine=args.engine,
        base_image=args.base_image,
        platform=args.platform,
        on_progress=_progress,
    )
    for service, ref in built.items():
        print(f"{service}\t{ref}")
    return 0


def _push(args: argparse.Namespace) -> int:
    services = check_services(args.services)
    tag = check_tag(args.tag or content_tag(base_image=args.base_image or os.environ.get(BASE_IMAGE_ENV)))
    engine = detect_engine(args.engine)
    images = {name: local_ref(engine.name, name, tag) for name in services}
    _check_built(engine, images, tag)
    password = _read_password() if args.password_stdin else registry_password(args.registry)
    pushed = push(
        images,
        registry=args.registry,
        tag=tag,
        username=args.username,
        password=password,
        engine=engine.name,
        on_progress=_progress,
    )
    for service, uri in pushed.items():
        print(f"{service}\t{uri}")
    return 0


def _check_built(engine: Engine, images: dict[str, str], tag: str) -> None:
    """Refuse to push an image that was never built here, saying how to build it."""
    missing = [name for name, ref in images.items() if not image_exists(engine, ref)]
    if missing:
        raise MicroforumError(
            f"push images: {images[missing[0]]} was never built here ({engine.name} has no such image)",
            hint=f"build it first: microforum images build {' '.join(missing)} --tag {tag}, then push again",
        )


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("push images: --password-stdin given but standard input is empty")
    return password


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
