"""The container runner's pure parts: the run command, the environment, exit codes."""

from __future__ import annotations

import itertools

import pytest

from microforum.images.engine import Engine
from microforum.images.runner import CONTAINER_DATA_DIR, LABEL, container_env, exit_code_of, run_argv

PODMAN = Engine("podman", "/usr/bin/podman")
ENV = {"PORT": "41000", "HOST": "127.0.0.1", "DATA_DIR": "/home/u/.microforum/data", "DATABASE_URL": "x"}


def test_run_argv_host_network_no_values_on_the_command_line() -> None:
    argv = run_argv(PODMAN, "microforum-users-1-abc", "localhost/microforum/users:latest", ENV, "r1")
    assert argv[:3] == ["/usr/bin/podman", "run", "--rm"]
    assert argv[-1] == "localhost/microforum/users:latest"
    pairs = set(itertools.pairwise(argv))
    assert {("--network", "host"), ("--name", "microforum-users-1-abc"), ("--label", f"{LABEL}=r1")} <= pairs
    assert {("--env", key) for key in ENV} <= pairs
    assert ("--volume", f"/home/u/.microforum/data:{CONTAINER_DATA_DIR}") in pairs
    assert "--sig-proxy=false" in argv
    assert not any("=x" in arg or "41000" in arg for arg in argv)  # values come from the env


def test_no_data_dir_no_volume() -> None:
    argv = run_argv(PODMAN, "n", "img", {"PORT": "1"}, "r1")
    assert "--volume" not in argv


def test_container_env_points_data_dir_at_the_mount() -> None:
    assert container_env(ENV) == {**ENV, "DATA_DIR": CONTAINER_DATA_DIR}
    assert container_env({"PORT": "1"}) == {"PORT": "1"}


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, 0), (1, 1), (125, 125), (137, -9), (143, -15), (130, -2), (255, 255)],
)
def test_exit_code_of(code: int, expected: int) -> None:
    assert exit_code_of(code) == expected
