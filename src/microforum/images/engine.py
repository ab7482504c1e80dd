"""Which container engine to use: docker when its engine answers, else podman.

`choose_engine` decides from facts (which binaries exist, whether `docker info` succeeded);
`detect_engine` gathers those facts. A `docker` binary alone is not enough: on machines with
only the Docker client (no daemon) every docker command fails, so docker is chosen only when
`docker info` answers.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from microforum.errors import MicroforumError, UsageError

EngineName = Literal["docker", "podman"]
ENGINES: tuple[EngineName, ...] = ("docker", "podman")
_PROBE_TIMEOUT = 15.0  # seconds for `docker info`; a hung daemon socket must not hang us


@dataclass(frozen=True)
class Engine:
    """A container engine CLI: its name and the binary to run."""

    name: EngineName
    binary: str


@dataclass(frozen=True)
class Facts:
    """What detection found: binaries on PATH and whether the Docker engine answered."""

    docker: str | None
    podman: str | None
    docker_answers: bool


def choose_engine(requested: str | None, facts: Facts) -> Engine:
    """The engine to use, or a MicroforumError saying why none can be used."""
    if requested is not None and requested not in ENGINES:
        raise UsageError(f"unknown container engine {requested!r}", hint="use docker or podman")
    if requested in (None, "docker") and facts.docker and facts.docker_answers:
        return Engine("docker", facts.docker)
    if requested in (None, "podman") and facts.podman:
        return Engine("podman", facts.podman)
    hint = _DOCKER_HINT if requested == "docker" else _HINT
    raise MicroforumError(_no_engine_message(requested, facts), hint=hint)


_HINT = "install podman (apt-get install podman) or start Docker, then retry"
_DOCKER_HINT = "start the Docker engine (docker info must answer), or use --engine podman"


def _no_engine_message(requested: str | None, facts: Facts) -> str:
    if requested == "docker" and facts.docker:
        return "container engine docker: the Docker engine does not answer (docker info failed)"
    if requested is not None:
        return f"container engine {requested}: {requested} is not installed (not on PATH)"
    if facts.docker:
        return "no container engine: podman is not installed and docker info failed"
    return "no container engine: neither docker nor podman is installed"


def gather_facts(requested: str | None = None) -> Facts:
    """Look for the binaries; ask `docker info` only when docker could be chosen."""
    docker, podman = shutil.which("docker"), shutil.which("podman")
    answers = bool(docker) and requested in (None, "docker") and _docker_answers(docker or "")
    return Facts(docker=docker, podman=podman, docker_answers=answers)


def _docker_answers(binary: str) -> bool:
    try:
        probe = subprocess.run(
            [binary, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def detect_engine(requested: str | None = None) -> Engine:
    """The container engine to use (`requested` if given), or a one-line MicroforumError."""
    return choose_engine(requested, gather_facts(requested))
