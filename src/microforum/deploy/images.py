"""The services' images in ECR: which exist, their content tag, building and pushing the rest.

Building and pushing is `microforum.images`' job; this module adds what ECR needs: the registry
and its login from GetAuthorizationToken, the repository URIs, and the tag. Without
`--image-tag` an image is tagged by the content it is built from (`content_tag`), so a deploy of
unchanged code finds its images already in ECR and changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Set
from pathlib import Path

from microforum import images
from microforum.deploy.aws import Aws, error_code
from microforum.deploy.steps import JSON, Step
from microforum.errors import MicroforumError, UsageError

BUILD_OPERATION = "images.build_and_push"


DEPLOY_PLATFORM = "linux/amd64"  # the container instances are x86 (t3), whatever builds them


def content_tag(root: Path | None = None) -> str:
    """The tag deploy builds and looks for: `microforum.images.content_tag` for the platform
    the cluster runs, so unchanged code finds its images already in ECR."""
    return images.content_tag(root, platform=DEPLOY_PLATFORM)


def plan_images(
    aws: Aws,
    repositories: Mapping[str, JSON],
    wanted: Mapping[str, str],
    tag: str,
    *,
    given: bool,
    running: Set[str] = frozenset(),
) -> tuple[dict[str, str], list[Step]]:
    """(service -> image URI, the build step if any image is missing) for repositories
    `wanted` (service -> repository name). An image a current task definition runs
    (`running`) is known to exist. A missing image with `given` (--image-tag) is refused now,
    before anything changes."""

    def present(repo: str) -> bool:
        found = repositories.get(repo)
        if found is not None and f"{found['repositoryUri']}:{tag}" in running:
            return True
        return _has_image(aws, found, tag)

    missing = [s for s, repo in wanted.items() if not present(repo)]
    if missing and given:
        service = missing[0]
        raise UsageError(
            f"deploy service {service}: image {wanted[service]}:{tag} is not in ECR",
            hint="push it first (microforum images push) or leave out --image-tag to build and push",
        )
    host = "" if all(r in repositories for r in wanted.values()) else registry_host(aws)
    uris = {
        s: f"{repositories[r]['repositoryUri'] if r in repositories else f'{host}/{r}'}:{tag}"
        for s, r in wanted.items()
    }
    if not missing:
        return uris, []
    step = Step(
        "create", "images", ", ".join(missing), BUILD_OPERATION,
        {"services": missing, "tag": tag, "uris": {s: uris[s] for s in missing}},
        detail=f"build and push, tag {tag}",
    )  # fmt: skip
    return uris, [step]


def _has_image(aws: Aws, repository: JSON | None, tag: str) -> bool:
    if repository is None:
        return False
    try:
        aws.call(
            "ecr", "describe_images",
            repositoryName=repository["repositoryName"], imageIds=[{"imageTag": tag}],
        )  # fmt: skip
    except MicroforumError as exc:
        if error_code(exc) in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return False
        raise
    return True


def registry_host(aws: Aws) -> str:
    return registry_login(aws)[0]


def registry_login(aws: Aws) -> tuple[str, str, str]:
    """(registry host, username, password) from ECR's GetAuthorizationToken."""
    data = aws.call("ecr", "get_authorization_token")["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://").rstrip("/")
    return host, username, password


def build_and_push(aws: Aws, step: Step, engine: str | None, say: Callable[[str], None]) -> None:
    """Carry out the build step: build the images, push each to its URI's repository."""
    services, tag, uris = step.params["services"], step.params["tag"], step.params["uris"]
    built = images.build(services, tag=tag, engine=engine, on_progress=say, platform=DEPLOY_PLATFORM)
    _, username, password = registry_login(aws)
    # Every URI is REGISTRY/SERVICE:TAG with one REGISTRY (the ECR host and the prefix).
    registry = next(iter(uris.values())).rsplit(":", 1)[0].rsplit("/", 1)[0]
    pushed = images.push(
        built, registry=registry, tag=tag, username=username, password=password,
        on_progress=say, engine=engine,
    )  # fmt: skip
    for service, uri in uris.items():
        if pushed.get(service) != uri:
            raise MicroforumError(
                f"push image for service {service}: pushed {pushed.get(service)}, expected {uri}"
            )
