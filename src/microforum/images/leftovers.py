"""Containers a stack left behind, found by their labels and removed.

Every container `up --containers` starts carries labels naming its stack (`STACK_LABEL`: the
stack's data directory, which identifies it on this machine; `STACK_NAME_LABEL`: its name, for
people) and the run that started it (`RUNNER_LABEL`). A run that ends normally removes its
containers; one killed with SIGKILL cannot, and its containers keep running. The next `up` of
the same stack removes them before starting (saying so), and `microforum down` removes them
whatever happened to the `up` that made them, as `docker compose down` does by its labels.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from microforum.images.engine import Engine, EngineName, gather_facts

STACK_LABEL = "io.microforum.stack"
STACK_NAME_LABEL = "io.microforum.stack.name"
RUNNER_LABEL = "io.microforum.runner"
_TIMEOUT = 60.0


def stack_id(data_dir: Path) -> str:
    """The value of `STACK_LABEL` for the stack whose data directory is `data_dir`."""
    return str(data_dir.resolve())


def ps_argv(engine: Engine, label: str, value: str) -> list[str]:
    """The engine command listing every container (running or not) labelled `label=value`."""
    return [engine.binary, "ps", "--all", "--filter", f"label={label}={value}", "--format", "{{.Names}}"]


def stack_containers(engine: Engine, data_dir: Path) -> list[str]:
    """The names of the containers of the stack of `data_dir`."""
    out = subprocess.run(
        ps_argv(engine, STACK_LABEL, stack_id(data_dir)),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    return out.stdout.split() if out.returncode == 0 else []


def remove_leftovers(engine: Engine, data_dir: Path, say: Callable[[str], None]) -> int:
    """Remove (SIGKILL, then delete) every container of the stack of `data_dir`; how many."""
    names = stack_containers(engine, data_dir)
    if names:
        say(f"removing {len(names)} container(s) left by an earlier run of this stack: {', '.join(names)}")
        subprocess.run(
            [engine.binary, "rm", "--force", *names], capture_output=True, timeout=_TIMEOUT, check=False
        )
    return len(names)


def installed_engines() -> list[Engine]:
    """Every container engine whose binary is here (`down` looks in each; none is an error)."""
    facts = gather_facts()
    found: list[tuple[EngineName, str | None]] = [("podman", facts.podman)]
    if facts.docker_answers:
        found.append(("docker", facts.docker))
    return [Engine(name, binary) for name, binary in found if binary]
