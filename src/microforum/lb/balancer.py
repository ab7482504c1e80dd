"""The local ALB's facade: the API the supervisor uses, health checks, draining, the sweeper.

    lb = LoadBalancer(stack, access_log=path)
    port = await lb.start()                # listens; health checks begin
    lb.register("users", Target("127.0.0.1", 41234, "users-1"))
    await lb.deregister("users", target)   # draining, then gone
    lb.target_health("users"); lb.describe(); lb.on_health_change(callback)
    await lb.close()

Run it on uvloop (`run` below does) for the per-request cost the benchmarks assume.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from microforum.lb.accesslog import AccessLog, target_group_arn
from microforum.lb.context import ProxyContext
from microforum.lb.groups import GroupState
from microforum.lb.health import CheckResult, HealthTracker, Transition, classify_status
from microforum.lb.metrics import Metrics
from microforum.lb.proxy import protocol_factory
from microforum.lb.rules import Router
from microforum.lb.targets import Target
from microforum.logfiles import RotatingFile
from microforum.logwriter import LogWriter
from microforum.spec.model import HealthCheck, Stack

TICK = 0.25  # seconds between sweeps (idle timeouts are enforced to this precision)
CHECK_SLICE = 0.5  # seconds; longest uninterrupted sleep of a health-check loop
HEALTH_USER_AGENT = "ELB-HealthChecker/2.0"  # docs/alb.md §B
# Access-log bytes waiting for the disk at most (about 14,000 lines): a disk that stalls for a
# moment loses nothing, one that stops loses lines, never requests (docs/operations.md).
ACCESS_LOG_BACKLOG = 4 << 20
T = TypeVar("T")

HealthCallback = Callable[[str, Target, str, str], None]


@dataclass(frozen=True)
class TargetHealth:
    """One row of describe-target-health."""

    target: Target
    state: str
    reason: str | None
    description: str | None


def run(main: Awaitable[T]) -> T:
    """Run `main` on uvloop when it is installed (asyncio's loop otherwise)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without it
        return asyncio.run(main)  # type: ignore[arg-type]
    return uvloop.run(main)  # type: ignore[arg-type,no-any-return]


async def probe(target: Target, check: HealthCheck) -> CheckResult:
    """One ALB health check: GET the path, read the status line, close (docs/alb.md §B)."""
    request = (
        f"GET {check.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        f"User-Agent: {HEALTH_USER_AGENT}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")
    writer: asyncio.StreamWriter | None = None

    async def exchange() -> bytes:
        nonlocal writer
        reader, writer = await asyncio.open_connection(target.host, target.port)
        writer.write(request)
        return await reader.readline()

    try:
        # (asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result of an
        # answer that arrives as the check is cancelled, and the cancellation is lost)
        async with asyncio.timeout(check.timeout):
            line = await exchange()
    except TimeoutError:
        return CheckResult("timeout")
    except OSError as exc:
        return CheckResult("error", detail=(exc.strerror or str(exc)).lower())
    finally:
        if writer is not None:
            writer.close()
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        return CheckResult("error", detail="malformed response" if line else "connection closed")
    return classify_status(check, int(parts[1]))


class LoadBalancer:
    """A local Application Load Balancer for one stack's listener and target groups."""

    def __init__(self, stack: Stack, *, access_log: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.stack = stack
        self.clock = clock
        self.groups = {
            tg.name: GroupState(tg, target_group_arn(stack.name, tg.name)) for tg in stack.target_groups
        }
        self._file = None if access_log is None else RotatingFile(
            Path(access_log), stack.local.access_log.max_size_mib << 20,
            stack.local.access_log.max_files,
        )  # fmt: skip
        stream = (
            None
            if self._file is None
            else LogWriter(self._file.write, name="access log", limit=ACCESS_LOG_BACKLOG)
        )
        self.ctx = ProxyContext(
            Router(stack.listener), self.groups, mode=stack.load_balancer.desync_mitigation_mode,
            drop_invalid=stack.load_balancer.drop_invalid_header_fields,
            idle_timeout=stack.load_balancer.idle_timeout, log=AccessLog(stream),
            metrics=Metrics(), elb=f"app/{stack.name}/local", stack_name=stack.name,
        )  # fmt: skip
        self._callbacks: list[HealthCallback] = []
        self._checks: dict[tuple[str, Target], asyncio.Task[None]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False  # set by `close`: health-check loops end even if a cancel is lost

    def __repr__(self) -> str:
        port = self.ctx.port or "-"
        return f"<LoadBalancer port={port} groups={sorted(self.groups)}>"

    async def start(self, host: str = "127.0.0.1", port: int | None = None) -> int:
        """Listen (port None: stack.local.port; 0: ephemeral); return the bound port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol_factory(self.ctx), host, self.stack.local.port if port is None else port,
            reuse_address=True, backlog=1024,
        )  # fmt: skip
        bound: int = self._server.sockets[0].getsockname()[1]
        self.ctx.bound(bound)
        self._sweeper = loop.create_task(self._sweep())
        for group in self.groups.values():
            for target, (_slot, tracker, _pool) in group.by_target.items():
                self._start_checks(group, target, tracker)
        return bound

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish (briefly), close everything."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + max(2.0, self.stack.local.max_deregistration_delay)
        for conn in list(self.ctx.connections):
            if not conn.queue:
                conn.close()
        while any(c.queue for c in self.ctx.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.ctx.connections):
            conn.close()
        tasks = [t for t in (*self._checks.values(), self._sweeper) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._checks.clear()
        for group in self.groups.values():
            for _slot, _tracker, pool in group.by_target.values():
                pool.close(abort_busy=True)
        self.ctx.log.close()
        if self._file is not None:
            self._file.close()

    def register(self, target_group: str, target: Target) -> None:
        """Add `target` to `target_group` in state `initial`; health checks start."""
        group = self._group(target_group)
        tracker = HealthTracker(group.spec.health_check, self.clock(),
                                self.stack.local.initial_health_check_interval)  # fmt: skip
        old = self._checks.pop((target_group, target), None)
        if old is not None:
            old.cancel()
        group.add(target, tracker)
        if self._server is not None:
            self._start_checks(group, target, tracker)

    async def deregister(self, target_group: str, target: Target) -> None:
        """Drain `target`: no new requests; return once its in-flight requests finished or the
        deregistration delay (capped by stack.local.max_deregistration_delay) passed. Requests
        still in flight then are cut (their clients get 502, as ALB does); the target is gone."""
        group = self._group(target_group)
        entry = group.by_target.get(target)
        if entry is None:
            return
        slot, tracker, pool = entry
        delay = min(float(group.spec.deregistration_delay), self.stack.local.max_deregistration_delay)
        change = tracker.deregister(self.clock(), delay)
        group.drain(slot)
        self._notify(target_group, target, change)
        check = self._checks.pop((target_group, target), None)
        if check is not None:
            check.cancel()
        pool.close()  # idle keep-alive connections go now; busy ones finish their request
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while slot.outstanding > 0 and loop.time() < end:
            await asyncio.sleep(0.02)
        now = self.clock() if slot.outstanding == 0 else max(self.clock(), end, tracker.drain_deadline or 0.0)
        change = tracker.expire(now, slot.outstanding) or tracker.expire(math.inf, 0)
        if group.by_target.get(target, (None,))[0] is slot:
            group.remove(target)
        self._notify(target_group, target, change)

    def target_health(self, target_group: str) -> list[TargetHealth]:
        """Each target's state, reason and description, like elbv2 describe-target-health."""
        group = self._group(target_group)
        return [
            TargetHealth(target, tracker.state, tracker.reason, tracker.description)
            for target, (_slot, tracker, _pool) in group.by_target.items()
        ]

    def describe(self) -> dict[str, Any]:
        """JSON-able status: per target group, its targets and its CloudWatch-like figures."""
        return {name: group.describe() for name, group in self.groups.items()}

    def set_split(self, target_group: str, new_ids: frozenset[str] | None, percent: float = 0.0) -> None:
        """A deployment's traffic split: `percent` of new requests to the targets `new_ids`."""
        self._group(target_group).set_split(new_ids, percent)

    def figures(self, target_group: str) -> dict[str, Any]:
        """The group's running counters, its unhealthy and its serving target counts."""
        group = self._group(target_group)
        states = [tracker.state for _slot, tracker, _pool in group.by_target.values()]
        return {
            **group.metrics.snapshot(),
            "unhealthy": sum(1 for s in states if s == "unhealthy"),
            "running": sum(1 for s in states if s in ("healthy", "initial", "unhealthy")),
        }

    def log_counts(self) -> dict[str, int]:
        """Access-log lines written and dropped (the disk did not keep up, or failed)."""
        return self.ctx.log.counts()

    def on_health_change(self, callback: HealthCallback) -> None:
        """Call `callback(target_group, target, old_state, new_state)` on every change."""
        self._callbacks.append(callback)

    @property
    def port(self) -> int:
        """The bound listener port (0 before `start`)."""
        return self.ctx.port

    # Internals

    def _group(self, name: str) -> GroupState:
        try:
            return self.groups[name]
        except KeyError:
            raise KeyError(f"no target group {name!r} (have: {', '.join(sorted(self.groups))})") from None

    def _notify(self, group: str, target: Target, change: Transition | None) -> None:
        if change is None:
            return
        for callback in list(self._callbacks):
            callback(group, target, change.old, change.new)

    def _start_checks(self, group: GroupState, target: Target, tracker: HealthTracker) -> None:
        key = (group.name, target)
        if key not in self._checks and tracker.checking:
            self._checks[key] = asyncio.get_running_loop().create_task(
                self._check_loop(group, target, tracker)
            )

    async def _check_loop(self, group: GroupState, target: Target, tracker: HealthTracker) -> None:
        check = group.spec.health_check
        while tracker.checking and not self._closing:
            delay = tracker.due(self.clock())
            if delay > 0:
                # Sleep in slices of at most CHECK_SLICE so an injected clock that jumps
                # (tests) is noticed; the tracker, not this loop, decides when a check is due.
                await asyncio.sleep(min(delay, CHECK_SLICE))
                continue
            try:
                result = await probe(target, check)
            except Exception as exc:  # a bug in the checker must not look like a healthy target
                result = CheckResult("internal", detail=type(exc).__name__)
            change = tracker.record(result, self.clock())
            group.sync_health(target)
            self._notify(group.name, target, change)

    async def _sweep(self) -> None:
        idle_ticks = max(1, math.ceil(self.ctx.idle_timeout / TICK))
        while True:
            await asyncio.sleep(TICK)
            self.ctx.tick += 1
            for conn in list(self.ctx.connections):
                conn.sweep(idle_ticks)
            if self.ctx.tick % 4 == 0:
                self.ctx.log.flush()
