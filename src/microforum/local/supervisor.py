"""The supervisor: one asyncio loop carrying out the reconciler's decisions.

Everything that happens — a replica listening or exiting, a target's health changing, a
`restart` from the control channel, SIGINT/SIGTERM — becomes an event on one queue. Signal
handlers and callbacks only enqueue (as uvicorn's multiprocess supervisor does); the loop
feeds each event to the pure `Reconciler`, asks it what to do, and does it: start a replica on a
fresh port, register it when its own socket is listening, deregister (drain) before stopping,
report crash loops. Slow work (draining, waiting for a process) runs in tasks that report back
through the same queue, so the loop never blocks on one replica.

Shutdown: first the `on_shutdown` hook runs (`up` closes the load balancer's listener there:
no new requests, in-flight ones finish), then the reconciler drains every registered replica
and stops the rest; the loop ends when no replica is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from microforum.errors import MicroforumError
from microforum.lb.targets import Target
from microforum.local import reconcile as rc
from microforum.local.cpu import CpuMeter
from microforum.local.events import (
    Event,
    Exited,
    HealthChanged,
    Listening,
    RestartRequested,
    ShutdownRequested,
)
from microforum.local.policies import Policies
from microforum.local.ports import PortAllocator, is_port_conflict
from microforum.local.processes import SUPERVISOR as SUPERVISOR  # re-exported (stack.py)
from microforum.local.processes import LogStream
from microforum.local.runner import ReplicaHandle, Runner
from microforum.spec.model import Service, Stack

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0  # SIGTERM, then SIGKILL after this many seconds (ECS stopTimeout is 30)
PROBE_INTERVAL = 0.02  # how often a starting replica's port is tried
TICK = 1.0  # the loop wakes at least this often
# A rolling replacement is reported failed after this many failed new replicas in a row: the
# lower bound of ECS's deployment circuit breaker threshold (docs/ecs.md §F.6). The old replicas keep
# serving (they drain only once new ones are healthy) and new ones keep being tried, backing off.
RESTART_FAILURES = 3


class Balancer(Protocol):
    """What the supervisor needs of `microforum.lb.balancer.LoadBalancer`."""

    def register(self, target_group: str, target: Target) -> None: ...
    async def deregister(self, target_group: str, target: Target) -> None: ...
    def on_health_change(self, cb: Callable[[str, Target, str, str], None]) -> None: ...
    def target_health(self, target_group: str) -> list[Any]: ...
    def figures(self, target_group: str) -> dict[str, Any]: ...
    def set_split(self, target_group: str, new_ids: frozenset[str] | None, percent: float = 0.0) -> None: ...


@dataclass
class _Live:
    handle: ReplicaHandle
    service: Service
    target: Target


def _restart_failed(service: str, failures: int) -> MicroforumError:
    return MicroforumError(
        f"restart service '{service}': its new replicas keep failing ({failures} failures in a "
        "row); the healthy old replicas keep serving",
        hint="the stack's log shows each failure's last lines; fix it and run restart again",
    )


def _rolled_back(service: str, why: str) -> MicroforumError:
    return MicroforumError(
        f"restart service '{service}': rolled back ({why}); the previous replicas serve",
        hint="`microforum logs` shows what the new replicas printed; fix it and run restart again",
    )


def service_env(service: Service, port: int, data_dir: Path, api_url: str) -> dict[str, str]:
    """The environment a replica gets: PORT (+ HOST, DATA_DIR, API_URL for built-ins) + its own.

    Built-ins listen on loopback only (HOST), keep their SQLite files under the stack's data
    directory, and reach each other through the load balancer (API_URL), as on ECS.
    """
    env = {"PORT": str(port)}
    if service.builtin:
        env |= {"HOST": HOST, "DATA_DIR": str(data_dir / "data"), "API_URL": api_url}
    return env | dict(service.environment)


def policy_of(service: Service) -> rc.ServicePolicy:
    """The scheduler's view of a service."""
    deployment = service.deployment
    return rc.ServicePolicy(
        name=service.name,
        desired_count=service.desired_count,
        minimum_healthy_percent=deployment.minimum_healthy_percent,
        maximum_percent=deployment.maximum_percent,
        health_check_grace_period=float(deployment.health_check_grace_period),
    )


class Supervisor:
    """Keeps the stack's replicas running and registered; see the module docstring."""

    def __init__(
        self,
        stack: Stack,
        lb: Balancer,
        runner: Runner,
        log: LogStream,
        *,
        data_dir: Path,
        api_url: str,
        clock: Callable[[], float] = time.monotonic,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.stack = stack
        self._lb, self._runner, self._log = lb, runner, log
        self._data_dir, self._api_url, self._clock = data_dir, api_url, clock
        self._services = {s.name: s for s in stack.services}
        self.reconciler = rc.Reconciler(policy_of(s) for s in stack.services)
        self._ports = PortAllocator(HOST)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._live: dict[str, _Live] = {}
        self._gone: dict[str, Target] = {}  # targets of exited replicas, until deregistered
        self._tasks: set[asyncio.Task[None]] = set()
        self._restarts: list[RestartRequested] = []
        self._ready_callbacks: list[Callable[[], None]] = []
        self._ready = False
        self._on_shutdown = on_shutdown
        self._cpu = CpuMeter()
        self.policies = Policies(stack, self.reconciler, lb, self._say_service, clock(), self._cpu_percent)
        self.failure: MicroforumError | None = None  # the runner's own failure that stopped the stack
        lb.on_health_change(self._on_health_change)

    def __repr__(self) -> str:
        return f"<Supervisor {self.stack.name} live={sorted(self._live)} {self.reconciler!r}>"

    # Requests from outside (signal handlers, control channel): enqueue only ------------------

    def request_shutdown(self, reason: str) -> None:
        """Ask the loop to drain and stop everything (safe from a signal handler)."""
        self._queue.put_nowait(ShutdownRequested(reason))

    def request_restart(self, service: str) -> asyncio.Future[list[str]]:
        """Ask for a rolling replacement of `service`; the future gets the new replica ids."""
        if service not in self._services:
            raise MicroforumError(
                f"restart service '{service}': no such service in {self.stack.source}",
                hint=f"services: {', '.join(self._services)}",
            )
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(RestartRequested(service, done))
        return done

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, when every service first runs its desired healthy replicas."""
        self._ready_callbacks.append(callback)

    def snapshot(self) -> list[dict[str, Any]]:
        """The replicas as the supervisor sees them (for `microforum status`)."""
        out = []
        for replica in self.reconciler.replicas():
            live = self._live.get(replica.id)
            out.append(
                {
                    "id": replica.id,
                    "service": replica.service,
                    "generation": replica.generation,
                    "phase": replica.phase.value,
                    "health": replica.health,
                    "pid": live.handle.pid if live else None,
                    "port": live.target.port if live else None,
                }
            )
        return out

    async def kill_all(self) -> None:
        """Kill every replica still alive, with its process group, and wait for them."""
        handles = [live.handle for live in self._live.values()]
        for handle in handles:
            handle.kill()
        if handles:
            await asyncio.wait([asyncio.ensure_future(h.wait()) for h in handles], timeout=STOP_TIMEOUT)
        for task in list(self._tasks):
            task.cancel()

    # The loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until a shutdown was requested and every replica has stopped."""
        event: Event = None  # the first round decides at once: start every replica
        while True:
            if isinstance(event, ShutdownRequested) and self._on_shutdown is not None:
                hook, self._on_shutdown = self._on_shutdown, None
                await hook()  # stop accepting requests before the targets drain
            self._apply(event)
            if not self.reconciler.shutting_down:
                self.policies.tick(self._clock())
            for action in self.reconciler.decide(self._clock()):
                await self._execute(action)
            self._check_progress()
            if self.reconciler.shutting_down and self.reconciler.all_stopped():
                break
            event = await self._next_event()
        await self._finish_tasks()

    async def _next_event(self) -> Event:
        if not self._queue.empty():
            return self._queue.get_nowait()
        wakes = [self.reconciler.next_wakeup()]
        if not self.reconciler.shutting_down:  # (the policies stop with the stack)
            wakes.append(self.policies.next_wakeup())
        wake = min((w for w in wakes if w is not None), default=None)
        timeout = TICK if wake is None else min(TICK, wake - self._clock())
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def _apply(self, event: Event) -> None:
        now, rec = self._clock(), self.reconciler
        match event:
            case Listening(rid):
                rec.listening(rid)
            case HealthChanged(rid, state):
                rec.health_changed(rid, state, now)
            case Exited(rid, code, lines, conflict):
                self._forget(rid)
                if conflict:
                    self._say(f"replica {rid} could not bind its port; starting it on another")
                    rec.port_conflict(rid)
                else:
                    rec.exited(rid, code, lines, now)
            case RestartRequested(service, _):
                generation = self.policies.begin(service, now)
                strategy = self._services[service].deployment.strategy
                self._say(f"service '{service}': {strategy} deployment, generation {generation}")
                self._restarts.append(event)
            case ShutdownRequested(reason):
                if rec.shutting_down:  # a second Ctrl-C: the user will not wait for draining
                    self._say(f"{reason} again: killing every replica now")
                    for live in self._live.values():
                        live.handle.kill()
                    return
                self._say(f"{reason}: draining and stopping every replica")
                rec.shutdown()
                self._cancel_restarts()

    def _check_progress(self) -> None:
        if not self._ready and self.reconciler.settled():
            self._ready = True
            for callback in self._ready_callbacks:
                callback()
        for request in list(self._restarts):
            failures = self.reconciler.failures(request.service)
            rolled_back = self.policies.rolled_back(request.service)
            if rolled_back and self.reconciler.settled(request.service):
                self._restarts.remove(request)
                if not request.done.done():
                    request.done.set_exception(_rolled_back(request.service, rolled_back))
            elif self.reconciler.settled(request.service):
                self._restarts.remove(request)
                ids = [r.id for r in self.reconciler.replicas(request.service)]
                if not request.done.done():
                    request.done.set_result(ids)
            elif failures >= RESTART_FAILURES:
                self._restarts.remove(request)
                if not request.done.done():
                    request.done.set_exception(_restart_failed(request.service, failures))

    def _cancel_restarts(self) -> None:
        for request in self._restarts:
            if not request.done.done():
                request.done.set_exception(
                    MicroforumError(f"restart service '{request.service}': the stack is stopping")
                )
        self._restarts.clear()

    # Actions ----------------------------------------------------------------------------------

    async def _execute(self, action: rc.Action) -> None:
        match action:
            case rc.Start(service, rid):
                await self._start(self._services[service], rid)
            case rc.Register(service, rid):
                live = self._live[rid]
                self._lb.register(live.service.target_group.name, live.target)
            case rc.Drain(_, rid, reason, fault):
                self._explain(rid, reason, fault, drain=True)
                self._spawn(self._drain_and_stop(rid))
            case rc.Stop(_, rid, reason, fault):
                self._explain(rid, reason, fault, drain=False)
                self._spawn(self._stop(rid))
            case rc.Remove(service, rid):
                self._spawn(self._remove(service, rid))
            case rc.Report(service, message):
                self._say(f"service '{service}': {message}")

    async def _start(self, service: Service, rid: str) -> None:
        port = self._ports.allocate()
        env = service_env(service, port, self._data_dir, self._api_url)
        try:
            handle = await self._runner.start(service, rid, port, env)
        except MicroforumError as exc:
            self._ports.release(port)
            self._queue.put_nowait(Exited(rid, 127, (exc.message,)))
            return
        self._live[rid] = _Live(handle, service, Target(HOST, port, rid))
        self._spawn(self._watch(rid, handle))

    async def _watch(self, rid: str, handle: ReplicaHandle) -> None:
        """Report when the replica listens on its own port, then when it exits."""
        waiter = asyncio.ensure_future(handle.wait())
        listening = await self._probe(handle, waiter)
        if listening is True:
            self._queue.put_nowait(Listening(rid))
        elif listening is False:  # somebody else listens on our port: ours cannot bind
            handle.kill()
        code = await waiter
        failure = handle.runner_failure() if listening is not True else None
        if failure is not None and self.failure is None:  # retrying would fail the same way
            self.failure = failure
            self.request_shutdown(failure.message)
        lines = tuple(handle.recent_lines())
        conflict = listening is not True and (listening is False or is_port_conflict(lines))
        self._queue.put_nowait(Exited(rid, code, lines, conflict))

    async def _probe(self, handle: ReplicaHandle, waiter: asyncio.Future[int]) -> bool | None:
        """True: listening and ours; False: listening but not ours; None: it exited first."""
        while not waiter.done():
            try:
                _, writer = await asyncio.open_connection(HOST, handle.port)
            except OSError:
                await asyncio.wait([waiter], timeout=PROBE_INTERVAL)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return handle.owns_port(handle.port)
        return None

    async def _drain_and_stop(self, rid: str) -> None:
        live = self._live.get(rid)
        if live is None:
            return
        await self._lb.deregister(live.service.target_group.name, live.target)
        await self._stop(rid)

    async def _stop(self, rid: str) -> None:
        live = self._live.get(rid)
        if live is None:
            return
        live.handle.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(live.handle.wait()), STOP_TIMEOUT)
        except TimeoutError:
            self._say(f"replica {rid} did not stop within {STOP_TIMEOUT:g} s; killing it")
            live.handle.kill()

    async def _remove(self, service: str, rid: str) -> None:
        target_group = self._services[service].target_group.name
        target = self._gone.pop(rid, None)
        if target is not None:
            await self._lb.deregister(target_group, target)

    # Helpers ----------------------------------------------------------------------------------

    def _forget(self, rid: str) -> None:
        live = self._live.pop(rid, None)
        if live is not None:
            self._ports.release(live.target.port)
            self._gone[rid] = live.target

    def _explain(self, rid: str, reason: str, fault: bool, *, drain: bool) -> None:
        live = self._live.get(rid)
        if not fault:
            self._say(f"replica {rid}: {'draining, then ' if drain else ''}stopping ({reason})")
            return
        lines = live.handle.recent_lines()[-rc.REPORT_LINES :] if live else []
        tail = "".join(f"\n    {line}" for line in lines)
        why = f" ({self._health_reason(live)})" if live else ""
        self._say(f"replica {rid}: {reason}{why}; replacing it; its last lines:{tail or ' (none)'}")

    def _health_reason(self, live: _Live) -> str:
        """The target's ALB reason code and description, e.g. for an unhealthy target."""
        for row in self._lb.target_health(live.service.target_group.name):
            if row.target == live.target and row.reason:
                return f"{row.reason}: {row.description}"
        return "no reason reported"

    def _on_health_change(self, target_group: str, target: Target, old: str, new: str) -> None:
        self._queue.put_nowait(HealthChanged(target.id, new))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._say(f"internal error: {task.exception()!r}")

    async def _finish_tasks(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=STOP_TIMEOUT)

    def _say_service(self, service: str, message: str) -> None:
        self._say(f"service '{service}': {message}")

    def _cpu_percent(self, service: str, now: float) -> float | None:
        pids = [
            live.handle.pid
            for live in self._live.values()
            if live.service.name == service and live.handle.pid
        ]
        return self._cpu.percent(service, pids, self._services[service].cpu, now)

    def _say(self, message: str) -> None:
        for line in message.splitlines():
            self._log.line(SUPERVISOR, line)
