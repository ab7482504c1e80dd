"""Which images a deploy builds, and where they go (images.plan_images) — on recorded ECR
answers: ECR's image checks and registry login, without building anything."""

from __future__ import annotations

import base64

import pytest
from deploy_helpers import Recorded

from microforum.deploy.images import BUILD_OPERATION, plan_images
from microforum.errors import UsageError

HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
REPOS = {
    f"mf/{s}": {"repositoryName": f"mf/{s}", "repositoryUri": f"{HOST}/mf/{s}"} for s in ("users", "posts")
}
WANTED = {"users": "mf/users", "posts": "mf/posts"}
TOKEN = {"authorizationToken": base64.b64encode(b"AWS:secret").decode(), "proxyEndpoint": f"https://{HOST}"}


def not_found() -> Exception:
    import botocore.exceptions as bex

    from microforum.deploy.aws import translate

    error = bex.ClientError({"Error": {"Code": "ImageNotFoundException", "Message": "no"}}, "DescribeImages")
    translated = translate(error, "ecr", "describe_images")
    translated.__cause__ = error  # as `Aws.call` raises it: `raise translate(...) from exc`
    return translated


class Ecr(Recorded):
    """DescribeImages finds the images in `present`; the rest are not found."""

    def __init__(self, present: set[str]) -> None:
        super().__init__(get_authorization_token=[{"authorizationData": [TOKEN]}])
        self.present = present

    def call(self, service: str, operation: str, /, **params: object) -> dict[str, object]:
        if operation == "describe_images":
            self.calls.append(operation)
            if params["repositoryName"] not in self.present:
                raise not_found()
            return {"imageDetails": [{}]}
        return super().call(service, operation, **params)


def test_images_already_in_ecr_are_used_and_nothing_is_built() -> None:
    ecr = Ecr({"mf/users", "mf/posts"})
    uris, steps = plan_images(ecr, REPOS, WANTED, "c-1", given=False)  # type: ignore[arg-type]
    assert uris == {"users": f"{HOST}/mf/users:c-1", "posts": f"{HOST}/mf/posts:c-1"}
    assert steps == []


def test_an_image_a_task_definition_runs_is_not_looked_up() -> None:
    ecr = Ecr(set())
    running = {f"{HOST}/mf/users:c-1", f"{HOST}/mf/posts:c-1"}
    _, steps = plan_images(ecr, REPOS, WANTED, "c-1", given=False, running=running)  # type: ignore[arg-type]
    assert (steps, ecr.calls) == ([], [])


def test_missing_images_are_one_build_step_with_their_uris_even_in_new_repositories() -> None:
    ecr = Ecr({"mf/users"})
    wanted = {**WANTED, "threads": "mf/threads"}  # no repository yet: its URI from the registry
    uris, steps = plan_images(ecr, REPOS, wanted, "c-2", given=False)  # type: ignore[arg-type]
    (step,) = steps
    assert step.operation == BUILD_OPERATION
    assert step.message == "create images posts, threads: build and push, tag c-2"
    assert step.params["uris"] == {"posts": f"{HOST}/mf/posts:c-2", "threads": f"{HOST}/mf/threads:c-2"}
    assert uris["threads"] == f"{HOST}/mf/threads:c-2"


def test_a_missing_image_with_image_tag_is_refused_before_anything() -> None:
    with pytest.raises(UsageError) as info:
        plan_images(Ecr({"mf/users"}), REPOS, WANTED, "v9", given=True)  # type: ignore[arg-type]
    assert info.value.message == "deploy service posts: image mf/posts:v9 is not in ECR"
