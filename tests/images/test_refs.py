"""Image names, tags and registry URIs, as tables (pure functions, no engine needed)."""

from __future__ import annotations

import pytest

from microforum.errors import UsageError
from microforum.images.credentials import ecr_region, registry_password
from microforum.images.refs import (
    check_services,
    check_tag,
    is_loopback,
    local_ref,
    pushed_ref,
    repository_name,
    split_registry,
)

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(
    ("registry", "service", "tag", "uri", "repository"),
    [
        (ECR, "users", "v1", f"{ECR}/users:v1", "users"),
        (f"https://{ECR}", "posts", "abc123", f"{ECR}/posts:abc123", "posts"),
        (f"{ECR}/forum/", "threads", "latest", f"{ECR}/forum/threads:latest", "forum/threads"),
        ("localhost:5000/a/b", "monolith", "t", "localhost:5000/a/b/monolith:t", "a/b/monolith"),
        ("127.0.0.1:5000", "users", "1.0", "127.0.0.1:5000/users:1.0", "users"),
    ],
    ids=["ecr", "ecr-proxy-endpoint", "namespace", "nested-namespace", "ip-port"],
)
def test_pushed_ref(registry: str, service: str, tag: str, uri: str, repository: str) -> None:
    assert pushed_ref(registry, service, tag) == uri
    assert repository_name(registry, service) == repository


@pytest.mark.parametrize(
    "registry",
    ["", "x y", "host/Upper", "host//double", "ftp://host", "host:port"],
)
def test_bad_registry_is_a_usage_error(registry: str) -> None:
    with pytest.raises(UsageError, match="is not a registry URI"):
        split_registry(registry)


@pytest.mark.parametrize("tag", ["latest", "v1.2.3", "abc_DEF-1", "0", "x" * 128])
def test_good_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".hidden", "-dash", "a/b", "a:b", "x" * 129, "sp ace"])
def test_bad_tags(tag: str) -> None:
    with pytest.raises(UsageError, match="is not valid"):
        check_tag(tag)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([], ["users", "threads", "posts", "monolith"]),
        (["posts", "users", "posts"], ["posts", "users"]),
    ],
    ids=["none-means-all", "order-kept-duplicates-dropped"],
)
def test_check_services(given: list[str], expected: list[str]) -> None:
    assert check_services(given) == expected


def test_unknown_service_names_the_choices() -> None:
    with pytest.raises(UsageError, match="unknown service 'forum'") as info:
        check_services(["users", "forum"])
    assert info.value.hint == "choose from users, threads, posts, monolith"


@pytest.mark.parametrize(
    ("engine", "ref"),
    [("podman", "localhost/microforum/users:t"), ("docker", "microforum/users:t")],
)
def test_local_ref(engine: str, ref: str) -> None:
    assert local_ref(engine, "users", "t") == ref


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        (ECR, False),
        ("10.0.0.1:5000", False),
        ("registry.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("registry", "region"),
    [
        (ECR, "eu-west-1"),
        (f"https://{ECR}/ns", "eu-west-1"),
        ("localhost:5000", None),
        ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
    ],
)
def test_ecr_region(registry: str, region: str | None) -> None:
    assert ecr_region(registry) == region


def test_a_non_ecr_registry_needs_a_password() -> None:
    with pytest.raises(UsageError, match="no password for registry localhost:5000") as info:
        registry_password("localhost:5000")
    assert "--password-stdin" in (info.value.hint or "")
