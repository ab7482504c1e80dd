"""Engine detection as a table; the commands each engine is given; the streaming runner."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from microforum.errors import MicroforumError, UsageError
from microforum.images.build import build_argv
from microforum.images.engine import Engine, Facts, choose_engine
from microforum.images.push import push_argv
from microforum.images.stream import run

D, P = "/usr/bin/docker", "/usr/bin/podman"


@pytest.mark.parametrize(
    ("requested", "facts", "chosen"),
    [
        (None, Facts(D, P, True), "docker"),
        (None, Facts(D, P, False), "podman"),  # a docker client without an engine
        (None, Facts(None, P, False), "podman"),
        (None, Facts(D, None, True), "docker"),
        ("podman", Facts(D, P, True), "podman"),
        ("docker", Facts(D, P, True), "docker"),
    ],
    ids=[
        "both-docker-first",
        "docker-client-only",
        "podman-only",
        "docker-only",
        "asked-podman",
        "asked-docker",
    ],
)
def test_choose_engine(requested: str | None, facts: Facts, chosen: str) -> None:
    engine = choose_engine(requested, facts)
    assert engine == Engine(chosen, D if chosen == "docker" else P)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "facts", "message"),
    [
        (None, Facts(None, None, False), "no container engine: neither docker nor podman"),
        (None, Facts(D, None, False), "no container engine: podman is not installed and docker info failed"),
        ("docker", Facts(D, P, False), "container engine docker: the Docker engine does not answer"),
        ("docker", Facts(None, P, False), "container engine docker: docker is not installed"),
        ("podman", Facts(D, None, True), "container engine podman: podman is not installed"),
    ],
    ids=["nothing", "client-only", "docker-down", "docker-missing", "podman-missing"],
)
def test_no_engine_is_one_line(requested: str | None, facts: Facts, message: str) -> None:
    with pytest.raises(MicroforumError, match=f"^{message}") as info:
        choose_engine(requested, facts)
    assert "\n" not in str(info.value) and info.value.hint


def test_unknown_engine_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown container engine 'rkt'"):
        choose_engine("rkt", Facts(D, P, True))


def test_podman_builds_the_service_stage_in_docker_format_with_labels() -> None:
    argv = build_argv(
        Engine("podman", P),
        "localhost/microforum/users:t",
        Path("/r"),
        target="users",
        base_image="localhost/base:1",
        platform="linux/amd64",
    )
    assert argv[:2] == [P, "build"] and argv[-1] == "/r"
    assert _pairs(argv) >= {
        ("--target", "users"),
        ("--format", "docker"),
        ("--file", "/r/Dockerfile"),
        ("--tag", "localhost/microforum/users:t"),
        ("--build-arg", "BASE_IMAGE=localhost/base:1"),
        ("--platform", "linux/amd64"),
    }


def test_docker_build_uses_the_dockerfile_default_base() -> None:
    argv = build_argv(Engine("docker", D), "microforum/users:t", Path("/r"), target="users")
    assert ("--file", "/r/Dockerfile") in _pairs(argv)
    assert not {"--format", "--build-arg", "--platform"} & set(argv)


@pytest.mark.parametrize(
    ("engine", "host", "insecure"),
    [
        (Engine("podman", P), "localhost:5000", True),
        (Engine("podman", P), "a.amazonaws.com", False),
        (Engine("docker", D), "localhost:5000", False),
    ],
    ids=["podman-local", "podman-ecr", "docker-local"],
)
def test_plain_http_only_for_a_local_registry(engine: Engine, host: str, insecure: bool) -> None:
    argv = push_argv(engine, host, f"{host}/users:t")
    assert ("--tls-verify=false" in argv) is insecure
    assert argv[-1] == f"{host}/users:t"


def _pairs(argv: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(argv))


def test_run_streams_lines_and_explains_a_failure() -> None:
    seen: list[str] = []
    script = "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"
    with pytest.raises(MicroforumError) as info:
        run(
            [sys.executable, "-c", script],
            doing="push image for service 'users'",
            on_progress=seen.append,
            prefix="users: ",
        )
    assert seen == ["users: one", "users: two"]
    assert str(info.value).startswith("push image for service 'users': ")
    assert str(info.value).endswith("exited with 3: two")


def test_run_feeds_stdin_and_returns_the_tail() -> None:
    script = "import sys; print(sys.stdin.read().upper())"
    assert run([sys.executable, "-c", script], doing="x", stdin="secret") == ["SECRET"]


def test_run_of_a_missing_binary_is_one_line() -> None:
    with pytest.raises(MicroforumError, match=r"^log in: cannot run /nonexistent/podman: "):
        run(["/nonexistent/podman", "login"], doing="log in")


def test_the_project_dockerfile_has_a_stage_per_service_running_it() -> None:
    """`images build SERVICE` builds the Dockerfile's stage of that name (`--target`)."""
    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    for service in ("users", "threads", "posts", "monolith"):
        stage = text.split(f"FROM runtime AS {service}\n", 1)[1].split("FROM ", 1)[0]
        assert f'CMD ["microforum", "serve", "{service}"]' in stage
