"""Socket-free stand-ins for the load balancer's transports, and a rig that wires a client
connection and one keep-alive target connection through a real `LoadBalancer` in memory
(also what bench/lb_loop.py drives to count instructions per request)."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path
from typing import Any

from microforum.lb.balancer import LoadBalancer
from microforum.lb.health import CheckResult
from microforum.lb.pool import BackendConnection
from microforum.lb.proxy import ClientConnection
from microforum.lb.targets import Target
from microforum.spec.load import parse_stack


class FakeTransport:
    """What the protocols use of a transport. With `keep`, what is written is kept in
    `written` and the calls made are recorded; without, `write` is a C call that drops the
    bytes, as cheap as uvloop's (for the benchmark)."""

    def __init__(self, peer: tuple[str, int], *, keep: bool = True) -> None:
        self.peer = peer
        self.written: list[bytes] = []
        self.events: list[str] = []
        self.write = self.written.append if keep else collections.deque(maxlen=0).append
        self.closed = False

    def data(self) -> bytes:
        """Everything written so far, then forgotten."""
        data = b"".join(self.written)
        self.written.clear()
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.events.append("close")

    def abort(self) -> None:
        self.closed = True
        self.events.append("abort")

    def pause_reading(self) -> None:
        self.events.append("pause")

    def resume_reading(self) -> None:
        self.events.append("resume")


class Rig:
    """A load balancer with one healthy target and one idle connection to it, and one client
    connection: bytes go in with `client_sends` / `target_sends`, come out of the fakes."""

    def __init__(self, data_dir: str | Path, *, keep: bool = True, extra: dict | None = None) -> None:
        spec = {
            "name": "rig", "services": {"backend": {"command": ["true"], "desired_count": 1}},
            "listener": {"default_action": {"forward": "backend"}, "rules": []},
            "local": {"port": 8080, "data_dir": str(data_dir)}, **(extra or {}),
        }  # fmt: skip
        self.access_log_path = Path(os.path.join(data_dir, "access.log"))
        self.lb = LoadBalancer(parse_stack(spec), access_log=self.access_log_path)
        self.lb.ctx.bound(8080)
        target = Target("127.0.0.1", 9999, "backend-1")
        self.lb.register("backend", target)
        group = self.lb.groups["backend"]
        _slot, tracker, self.pool = group.by_target[target]
        for _ in range(tracker.check.healthy_threshold):
            tracker.record(CheckResult("ok"), time.monotonic() + 3600)
        group.sync_health(target)
        self.backend = BackendConnection(self.pool)
        self.target = FakeTransport(("127.0.0.1", 9999), keep=keep)
        self.backend.connection_made(self.target)  # type: ignore[arg-type]
        self.pool.conns.add(self.backend)
        self.pool.give_back(self.backend)
        self.client = ClientConnection(self.lb.ctx)
        self.peer = FakeTransport(("127.0.0.1", 5555), keep=keep)
        self.client.connection_made(self.peer)  # type: ignore[arg-type]

    def client_sends(self, data: bytes) -> None:
        self.client.data_received(data)

    def target_sends(self, data: bytes) -> None:
        self.backend.data_received(data)

    def access_log(self) -> list[str]:
        self.lb.ctx.log.flush()
        if self.lb.ctx.log.stream is not None:
            self.lb.ctx.log.stream.flush()  # the writer thread has written what it was handed
        path = self.access_log_path
        return path.read_text("latin-1").split("\n")[:-1] if path.exists() else []
