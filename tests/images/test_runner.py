"""The container runner's pure parts: the run command, the environment, exit codes."""

from __future__ import annotations

import itertools

import pytest

from microforum.errors import UsageError
from microforum.images.engine import Engine
from microforum.images.leftovers import STACK_LABEL
from microforum.images.runner import (
    CONTAINER_DATA_DIR,
    container_env,
    exit_code_of,
    passed_env,
    run_argv,
    user_flags,
)

PODMAN = Engine("podman", "/usr/bin/podman")
DOCKER = Engine("docker", "/usr/bin/docker")
ENV = {"PORT": "41000", "HOST": "127.0.0.1", "DATA_DIR": "/home/u/.microforum/data", "DATABASE_URL": "x"}
LABELS = {STACK_LABEL: "/home/u/.microforum/data"}


def test_run_argv_host_network_no_values_on_the_command_line() -> None:
    argv = run_argv(PODMAN, "microforum-users-1-abc", "localhost/microforum/users:latest", ENV, LABELS)
    assert argv[:3] == ["/usr/bin/podman", "run", "--rm"]
    assert argv[-1] == "localhost/microforum/users:latest"
    pairs = set(itertools.pairwise(argv))
    assert {("--network", "host"), ("--name", "microforum-users-1-abc")} <= pairs
    assert ("--label", f"{STACK_LABEL}=/home/u/.microforum/data") in pairs
    assert {("--env", key) for key in ENV} <= pairs
    assert ("--volume", f"/home/u/.microforum/data:{CONTAINER_DATA_DIR}") in pairs
    assert "--sig-proxy=false" in argv
    assert "--no-healthcheck" in argv  # the local ALB checks health; podman's timers need systemd
    assert not any("=x" in arg or "41000" in arg for arg in argv)  # values come from the env


def test_no_data_dir_no_volume() -> None:
    argv = run_argv(PODMAN, "n", "img", {"PORT": "1"}, LABELS)
    assert "--volume" not in argv


@pytest.mark.parametrize(
    ("engine", "uid", "flags"),
    [
        (PODMAN, 0, []),  # root: the image's own user, the data directory handed to it
        (PODMAN, 1000, ["--userns", "keep-id", "--user", "1000:1000"]),
        (DOCKER, 1000, ["--user", "1000:1000"]),
    ],
)
def test_who_the_container_runs_as(engine: Engine, uid: int, flags: list[str]) -> None:
    assert user_flags(engine, uid, uid) == flags


def test_the_services_variables_reach_containers_and_nothing_else() -> None:
    environ = {
        "DATABASE_URL": "postgresql://u@127.0.0.1/db",
        "PGPASSWORD": "pw",
        "WORKERS": "2",
        "HOME": "/root",
        "PATH": "/bin",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    assert passed_env(environ) == {
        "DATABASE_URL": "postgresql://u@127.0.0.1/db",
        "PGPASSWORD": "pw",
        "WORKERS": "2",
    }


@pytest.mark.parametrize("name", ["DATABASE_URL", "POSTS_DATABASE_URL"])
def test_a_sqlite_database_url_is_refused_for_containers(name: str) -> None:
    with pytest.raises(UsageError, match=rf"^{name}=sqlite:////tmp/x.db names a SQLite file on this host"):
        passed_env({name: "sqlite:////tmp/x.db"})


def test_each_resources_database_reaches_the_containers() -> None:
    environ = {
        "USERS_DATABASE_SECRET": "{}",
        "POSTS_DATABASE_URL": "postgresql://p@db/posts",
        "DATABASE_CA_BUNDLE": "x",
    }
    assert passed_env(environ) == environ


def test_container_env_points_data_dir_at_the_mount() -> None:
    assert container_env(ENV) == {**ENV, "DATA_DIR": CONTAINER_DATA_DIR}
    assert container_env({"PORT": "1"}) == {"PORT": "1"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, 0), (1, 1), (125, 125), (137, -9), (143, -15), (130, -2), (255, 255)],
)
def test_exit_code_of(code: int, expected: int) -> None:
    assert exit_code_of(code) == expected
