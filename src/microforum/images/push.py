"""Push built images to a registry, logging in the way ECR expects.

ECR's flow is `aws ecr get-login-password | docker login --username AWS --password-stdin
REGISTRY` (https://docs.aws.amazon.com/AmazonECR/latest/userguide/registry_auth.html); the
password never appears on a command line. Each image is tagged `REGISTRY/SERVICE:TAG` and
pushed; a push that fails (non-zero exit of the engine CLI) raises a MicroforumError naming
the service, so a half-pushed deployment never looks complete.
"""

from __future__ import annotations

from collections.abc import Callable

from microforum.images.engine import Engine, detect_engine
from microforum.images.refs import check_tag, is_loopback, pushed_ref, split_registry
from microforum.images.stream import run


def push(
    images: dict[str, str],
    *,
    registry: str,
    tag: str,
    username: str,
    password: str,
    on_progress: Callable[[str], None] = print,
    engine: str | None = None,
) -> dict[str, str]:
    """Log in to `registry`, push each local image as `registry/service:tag`; return the URIs.

    `images` maps service -> local image reference (what `build` returned). `registry` is a
    host with an optional namespace path (an https:// prefix is accepted). Raises
    MicroforumError on a failed login, tag or push.
    """
    tag = check_tag(tag)
    host, _ = split_registry(registry)
    chosen = detect_engine(engine)
    login(chosen, host, username=username, password=password, on_progress=on_progress)
    pushed: dict[str, str] = {}
    for service, ref in images.items():
        target = pushed_ref(registry, service, tag)
        on_progress(f"push {service}: {target}")
        doing = f"push image for service {service!r} to {target}"
        run([chosen.binary, "tag", ref, target], doing=doing)
        run(push_argv(chosen, host, target), doing=doing, on_progress=on_progress, prefix=f"{service}: ")
        pushed[service] = target
    return pushed


def login(
    engine: Engine,
    host: str,
    *,
    username: str,
    password: str,
    on_progress: Callable[[str], None] = print,
) -> None:
    """`ENGINE login --username U --password-stdin HOST`, the password on standard input."""
    argv = [engine.binary, "login", "--username", username, "--password-stdin"]
    run(
        [*argv, *_tls_flags(engine, host), host],
        doing=f"log in to registry {host} as {username}",
        on_progress=on_progress,
        stdin=password,
    )


def push_argv(engine: Engine, host: str, target: str) -> list[str]:
    """The engine command that pushes `target` (already tagged) to its registry."""
    return [engine.binary, "push", *_tls_flags(engine, host), target]


def _tls_flags(engine: Engine, host: str) -> list[str]:
    # A registry on this machine speaks plain HTTP; Docker accepts that for 127.0.0.0/8 by
    # itself, podman needs to be told. Remote registries (ECR) always verify TLS.
    return ["--tls-verify=false"] if engine.name == "podman" and is_loopback(host) else []
