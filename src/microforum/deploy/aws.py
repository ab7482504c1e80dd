"""A thin boto3 shell: one session, every call through `Aws.call`, botocore errors translated once.

Clients honour `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_<SERVICE>`) natively (boto3 >= 1.28,
"service-specific endpoints"), which is how the tests point this same code at moto's server.
Every botocore failure becomes a `MicroforumError` here and nowhere else, with a hint
(STYLE 9): no credentials, no region, access denied (naming the action), a quota reached.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions as bex
from botocore.config import Config

from microforum.errors import MicroforumError

JSON = dict[str, Any]

_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException"}
_BAD_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "AuthFailure",
}
_QUOTA = {
    "LimitExceededException",
    "LimitExceeded",
    "ServiceQuotaExceededException",
    "TooManyTargetGroups",
    "TooManyRules",
    "TooManyLoadBalancers",
    "TooManyListeners",
}
_IAM_SERVICE = {
    "elbv2": "elasticloadbalancing",
    "cloudformation": "cloudformation",
    "ecs": "ecs",
    "ecr": "ecr",
    "sts": "sts",
    "iam": "iam",
    "resourcegroupstaggingapi": "tag",
}


def new_session(region: str | None) -> boto3.Session:
    """The one boto3 session of a command (a seam: tests wrap it to count calls)."""
    return boto3.Session(region_name=region)


class Aws:
    """Clients from one session; `call` is the only way out, and translates errors."""

    def __init__(self, region: str | None) -> None:
        try:
            self.session = new_session(region)
        except bex.ProfileNotFound as exc:
            raise MicroforumError(
                f"use AWS profile {exc.kwargs.get('profile')!r}: no such profile",
                hint="check AWS_PROFILE and the profiles in ~/.aws/config",
            ) from exc
        if not self.session.region_name:
            raise MicroforumError(
                "no AWS region configured",
                hint="pass --region REGION or export AWS_DEFAULT_REGION (or set region in your AWS profile)",
            )
        self.region: str = self.session.region_name
        self._clients: dict[str, Any] = {}
        # Retries: botocore's standard mode; AWS_MAX_ATTEMPTS still overrides max_attempts.
        self._config = Config(retries={"mode": "standard"}, user_agent_extra="microforum")

    def client(self, name: str) -> Any:
        if name not in self._clients:
            self._clients[name] = self.session.client(name, config=self._config)  # type: ignore[call-overload]
        return self._clients[name]

    def call(self, service: str, operation: str, /, **params: Any) -> JSON:
        """`client(service).operation(**params)`, with botocore errors as `MicroforumError`."""
        try:
            return dict(getattr(self.client(service), operation)(**params))
        except (bex.ClientError, bex.BotoCoreError) as exc:
            raise translate(exc, service, operation) from exc

    def paginate(self, service: str, operation: str, key: str, /, **params: Any) -> Iterator[Any]:
        """Every item under `key` across the pages of a listing."""
        try:
            for page in self.client(service).get_paginator(operation).paginate(**params):
                yield from page.get(key, [])
        except (bex.ClientError, bex.BotoCoreError) as exc:
            raise translate(exc, service, operation) from exc


def error_code(exc: BaseException) -> str:
    """The AWS error code of a translated error's cause ('' when it had none)."""
    cause = exc.__cause__ if isinstance(exc, MicroforumError) else exc
    if isinstance(cause, bex.ClientError):
        return str(cause.response.get("Error", {}).get("Code", ""))
    return ""


def _action(service: str, operation: str) -> str:
    camel = "".join(part.capitalize() for part in operation.split("_"))
    return f"{_IAM_SERVICE.get(service, service)}:{camel}"


def translate(exc: Exception, service: str, operation: str) -> MicroforumError:
    """One AWS failure as one line with a hint (the only place botocore errors are read)."""
    action = _action(service, operation)
    if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError):
        return MicroforumError(
            f"{action}: no AWS credentials found",
            hint="export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, set AWS_PROFILE or run 'aws configure'",
        )
    if isinstance(exc, bex.NoRegionError):
        return MicroforumError(
            "no AWS region configured", hint="pass --region REGION or export AWS_DEFAULT_REGION"
        )
    if isinstance(exc, bex.EndpointConnectionError):
        return MicroforumError(
            f"{action}: cannot reach {exc.kwargs.get('endpoint_url')}",
            hint="check your network, AWS_ENDPOINT_URL and the region",
        )
    if not isinstance(exc, bex.ClientError):
        return MicroforumError(f"{action}: {exc}")
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).strip()
    if code in _ACCESS_DENIED:
        return MicroforumError(
            f"{action}: access denied", hint=f"grant the caller {action} (IAM policy), then run again"
        )
    if code in _BAD_CREDENTIALS:
        return MicroforumError(
            f"{action}: the AWS credentials were rejected ({code})",
            hint="refresh or correct your credentials",
        )
    if code in _QUOTA or "LimitExceeded" in code or code.startswith("TooMany"):
        return MicroforumError(
            f"{action}: AWS quota reached: {message or code}",
            hint="delete unused resources or request a quota increase (Service Quotas console)",
        )
    return MicroforumError(f"{action}: {message or code}")
