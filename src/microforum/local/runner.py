"""How the supervisor starts one replica of a service: the `Runner` protocol.

The supervisor (`local/supervisor.py`) never spawns anything itself; it asks a `Runner` to start
a replica of a service on a given host port with a given environment, and gets back a
`ReplicaHandle` it can wait on, stop and read the last log lines of. Two runners exist:

* `ProcessRunner` (`local/processes.py`): a local process in its own process group — the
  default for `microforum up`;
* `ContainerRunner` (`images/`): a container run with podman — `microforum up --containers`.

Contract every runner keeps:

* `start()` returns as soon as the replica is launched; it does not wait for it to listen.
  The supervisor probes the port itself and asks `handle.owns_port(port)` before registering
  the replica in its target group, so a replica that failed to bind (someone else took the
  port) is never registered (see `local/ports.py`).
* The environment passed in is complete for the service (`PORT`, and for built-ins `DATA_DIR`
  and `API_URL`, plus the service's `environment`); a runner adds only what its medium needs.
* `terminate()` asks the replica to drain and exit (SIGTERM, as ECS's `StopTask` does);
  `kill()` forces it (SIGKILL). Both are idempotent and never raise for a replica that
  already exited. After `wait()` returns nothing the replica started is left running.
* `recent_lines()` gives the last lines the replica printed (stdout and stderr), for the
  crash-loop message that names a failing service and shows why it failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from microforum.errors import MicroforumError
from microforum.spec.model import Service


class ReplicaHandle(Protocol):
    """One started replica: a process, a container, ..."""

    replica_id: str  # "users-3": the service name and a number unique within the stack run
    port: int  # the host port the replica was told to listen on

    @property
    def pid(self) -> int | None:
        """The OS process id of the replica's main process (None when not applicable)."""

    @property
    def exit_code(self) -> int | None:
        """The exit code once the replica has exited (negative: killed by that signal)."""

    async def wait(self) -> int:
        """Wait until the replica has exited and everything it started is gone; its exit code."""

    def terminate(self) -> None:
        """Ask the replica to stop gracefully (SIGTERM: drain and exit 0)."""

    def kill(self) -> None:
        """Stop the replica at once (SIGKILL), including anything it started."""

    def owns_port(self, port: int) -> bool:
        """Whether the socket listening on 127.0.0.1:`port` belongs to this replica."""

    def recent_lines(self) -> list[str]:
        """The last lines the replica printed (oldest first), without prefixes or colours."""

    def runner_failure(self) -> MicroforumError | None:
        """Once exited: why the runner itself (a container engine), not the service, failed to
        run it, or None. The supervisor stops the stack on such a failure instead of retrying."""


class Runner(Protocol):
    """Starts replicas of services."""

    async def start(
        self, service: Service, replica_id: str, port: int, env: Mapping[str, str]
    ) -> ReplicaHandle:
        """Launch one replica of `service` told to listen on `port`, with exactly `env` added.

        Raises `MicroforumError` when the replica cannot even be launched (command not found,
        image missing): the message says what was being started and why it failed.
        """

    async def close(self) -> None:
        """Release what the runner holds (log readers, container networks); idempotent."""
