"""The registry password for `images push` when none is given: an ECR authorization token.

ECR's token is base64("AWS:password"), valid 12 hours
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetAuthorizationToken.html).
The region comes from the registry host, ACCOUNT.dkr.ecr.REGION.amazonaws.com.
"""

from __future__ import annotations

import base64
import re

from microforum.errors import MicroforumError, UsageError
from microforum.images.refs import split_registry

_ECR_HOST = re.compile(r"(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com")


def ecr_region(registry: str) -> str | None:
    """The AWS region of an ECR registry URI, or None when it is not ECR."""
    host, _ = split_registry(registry)
    match = _ECR_HOST.fullmatch(host)
    return match["region"] if match else None


def registry_password(registry: str) -> str:
    """An ECR token's password for an ECR registry; a UsageError for any other registry."""
    region = ecr_region(registry)
    if region is None:
        raise UsageError(
            f"push images: no password for registry {registry}",
            hint="pipe it in with --password-stdin",
        )
    return _ecr_password(region)


def _ecr_password(region: str) -> str:
    import boto3
    import botocore.exceptions

    try:
        data = boto3.client("ecr", region_name=region).get_authorization_token()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise MicroforumError(
            f"get an ECR login token in {region}: {exc}",
            hint="configure AWS credentials, or pipe a password in with --password-stdin",
        ) from exc
    token = data["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(token).decode().partition(":")[2]
