"""The services' images in ECR: check a given tag exists, or build and push a new one.

Building and pushing is `microforum.images`' job; this module only adds what ECR needs: the
registry and its login from GetAuthorizationToken, and the repository URIs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from microforum import images
from microforum.deploy.aws import Aws, error_code
from microforum.deploy.render import repository_name
from microforum.errors import MicroforumError


def existing(
    aws: Aws, services: list[str], tag: str, prefix: str, say: Callable[[str], None]
) -> dict[str, str]:
    """service -> image URI for images already in ECR under `tag`; a clear error for a missing one."""
    found = {}
    for service in services:
        repo = repository_name(prefix, service)
        try:
            aws.call("ecr", "describe_images", repositoryName=repo, imageIds=[{"imageTag": tag}])
            uri = aws.call("ecr", "describe_repositories", repositoryNames=[repo])["repositories"][0][
                "repositoryUri"
            ]
        except MicroforumError as exc:
            if error_code(exc) in ("ImageNotFoundException", "RepositoryNotFoundException"):
                raise MicroforumError(
                    f"deploy service {service}: image {repo}:{tag} is not in ECR",
                    hint="push it first (microforum images push) or leave out --image-tag to build and push",
                ) from exc
            raise
        found[service] = f"{uri}:{tag}"
    say(f"images: using tag {tag} for {', '.join(services)}")
    return found


def registry_login(aws: Aws) -> tuple[str, str, str]:
    """(registry host, username, password) from ECR's GetAuthorizationToken."""
    data = aws.call("ecr", "get_authorization_token")["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    return host, username, password


def build_and_push(
    aws: Aws, services: list[str], tag: str, prefix: str, engine: str | None, say: Callable[[str], None]
) -> dict[str, str]:
    """Build one image per service and push it to its ECR repository; service -> image URI."""
    # The container instances are x86 (t3): build for linux/amd64 whatever this machine is.
    built = images.build(services, tag=tag, engine=engine, on_progress=say, platform="linux/amd64")
    host, username, password = registry_login(aws)
    registry = f"{host}/{prefix}" if prefix else host
    return images.push(
        built,
        registry=registry,
        tag=tag,
        username=username,
        password=password,
        on_progress=say,
        engine=engine,
    )
