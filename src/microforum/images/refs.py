"""Image names, tags and registry URIs: pure functions, no I/O.

A service's image is built locally as `microforum/SERVICE:TAG` (podman stores it as
`localhost/microforum/SERVICE:TAG`) and pushed as `REGISTRY/SERVICE:TAG`, where REGISTRY is a
registry host with an optional namespace path, e.g. an ECR registry
`123456789012.dkr.ecr.eu-west-1.amazonaws.com` or `localhost:5000/microforum`. The repository
inside the registry is then `[namespace/]SERVICE`, one per service as in the original
architecture (one ECR repository per service).
"""

from __future__ import annotations

import ipaddress
import re

from microforum.errors import UsageError
from microforum.spec.defaults import BUILTIN_SERVICES

LOCAL_NAMESPACE = "microforum"

# Docker's reference grammar: a tag is [\w][\w.-]{0,127}
# (https://github.com/distribution/reference/blob/main/reference.go).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# A registry host: DNS name or IPv4 with an optional port; a path of lowercase components.
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def check_services(services: list[str]) -> list[str]:
    """The services to build, in order, without duplicates; all of them when none are named."""
    unknown = [name for name in services if name not in BUILTIN_SERVICES]
    if unknown:
        raise UsageError(
            f"build images: unknown service {unknown[0]!r}",
            hint=f"choose from {', '.join(BUILTIN_SERVICES)}",
        )
    return list(dict.fromkeys(services or BUILTIN_SERVICES))


def check_tag(tag: str) -> str:
    """`tag` when it is a valid image tag, else a UsageError saying what a tag may contain."""
    if not _TAG.fullmatch(tag):
        raise UsageError(
            f"image tag {tag!r} is not valid",
            hint="use up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        )
    return tag


def local_ref(engine: str, service: str, tag: str) -> str:
    """The local image reference for `service` as `engine` names it after `build -t`."""
    name = f"{LOCAL_NAMESPACE}/{service}:{tag}"
    return f"localhost/{name}" if engine == "podman" else name


def split_registry(registry: str) -> tuple[str, str]:
    """(host, namespace) of a registry URI; a leading https:// (ECR's proxyEndpoint) is dropped."""
    text = re.sub(r"^https?://", "", registry.strip()).strip("/")
    host, _, namespace = text.partition("/")
    if not _HOST.fullmatch(host) or not all(
        _PATH_COMPONENT.fullmatch(part) for part in namespace.split("/") if namespace
    ):
        raise UsageError(
            f"registry {registry!r} is not a registry URI",
            hint="give HOST[:PORT][/NAMESPACE], e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        )
    return host, namespace


def repository_name(registry: str, service: str) -> str:
    """The repository `service` is pushed to inside `registry` (`[namespace/]service`)."""
    _, namespace = split_registry(registry)
    return f"{namespace}/{service}" if namespace else service


def pushed_ref(registry: str, service: str, tag: str) -> str:
    """The full URI `service`'s image is pushed as: `host[/namespace]/service:tag`."""
    host, _ = split_registry(registry)
    return f"{host}/{repository_name(registry, service)}:{tag}"


def is_loopback(host: str) -> bool:
    """Whether a registry host is on this machine (plain HTTP is accepted there, as Docker does)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False
