"""The production policies under `up`: autoscaling, alarms and deployment strategies.

A thin shell over the pure deciders: every alarm period it reads each target group's counters
from the load balancer (`datapoints`), evaluates the service's alarms (`alarms`), lets target
tracking change the desired count (`scaling`) and moves a deployment in progress along
(`rollout`): the load balancer's split for canary and linear, the reconciler's hold, release
and rollback. Times given to the deciders are AWS seconds: the local clock times
`local.time_scale`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from microforum.local import reconcile as rc
from microforum.local.alarms import AlarmState, evaluate, firing
from microforum.local.datapoints import Datapoint, PeriodSampler, Reading
from microforum.local.rollout import Rollout
from microforum.local.scaling import Scaler
from microforum.spec import defaults as d
from microforum.spec.model import Service, Stack

KEEP_POINTS = max(d.SCALE_IN_DATAPOINTS, d.ALARM_EVALUATION_PERIODS_RANGE[1])


class Figures(Protocol):
    """What the policies need of the load balancer."""

    def figures(self, target_group: str) -> dict[str, Any]: ...
    def set_split(self, target_group: str, new_ids: frozenset[str] | None, percent: float = 0.0) -> None: ...


@dataclass
class _ServicePolicies:
    service: Service
    sampler: PeriodSampler
    scaler: Scaler | None
    points: list[Datapoint] = field(default_factory=list)
    alarms: list[AlarmState] = field(default_factory=list)
    rollout: Rollout | None = None
    last_rollout: str = ""  # how the last deployment ended
    rolled_back: str | None = None  # why, when the last one was rolled back


class Policies:
    """Runs every service's policies; see the module docstring."""

    def __init__(
        self,
        stack: Stack,
        reconciler: rc.Reconciler,
        lb: Figures,
        say: Callable[[str, str], None],
        now: float,
        cpu: Callable[[str, float], float | None] = lambda service, now: None,
    ) -> None:
        self._scale = stack.local.time_scale
        self._rec, self._lb, self._say, self._cpu = reconciler, lb, say, cpu
        self.period = d.ALARM_PERIOD / self._scale  # local seconds
        self._due = now + self.period
        self._services = {
            s.name: _ServicePolicies(
                s,
                PeriodSampler(d.ALARM_PERIOD, self._aws(now), self._reading(s, now)),
                Scaler(s.autoscaling, s.desired_count) if s.autoscaling else None,
            )
            for s in stack.services
        }
        for s in stack.services:  # like register_scalable_target: the count within min..max at once
            if s.autoscaling and not s.autoscaling.min <= s.desired_count <= s.autoscaling.max:
                bounded = min(max(s.desired_count, s.autoscaling.min), s.autoscaling.max)
                reconciler.set_desired(s.name, bounded)
                scaler = self._services[s.name].scaler
                assert scaler is not None
                scaler.desired = bounded
                scaler.reason = f"desired_count {s.desired_count} outside min..max: {bounded}"

    def _aws(self, now: float) -> float:
        return now * self._scale

    def next_wakeup(self) -> float:
        """When `tick` next has something to do (local time)."""
        bakes = [
            p.rollout.until / self._scale for p in self._services.values() if p.rollout and p.rollout.until
        ]
        return min([self._due, *bakes])

    # Deployments ------------------------------------------------------------------------------

    def begin(self, name: str, now: float) -> int:
        """A restart: start the service's deployment strategy; the new generation."""
        policy = self._services[name]
        deployment = policy.service.deployment
        generation = self._rec.restart(name, hold=deployment.strategy != "rolling")
        policy.rollout = Rollout(name, deployment, self._aws(now))
        policy.rolled_back = None
        if policy.rollout.weighted:
            self._split(policy)
        return generation

    def rolled_back(self, name: str) -> str | None:
        """Why the service's last deployment was rolled back (None: it was not)."""
        return self._services[name].rolled_back

    # The tick ---------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Sample when a period ended, then evaluate alarms, scaling and deployments."""
        sampled = now >= self._due
        if sampled:
            self._due = now + self.period
        for policy in self._services.values():
            if sampled:
                self._sample(policy, now)
            if policy.rollout is not None:
                self._advance(policy, now)

    def _sample(self, policy: _ServicePolicies, now: float) -> None:
        point = policy.sampler.observe(self._aws(now), self._reading(policy.service, now))
        if point is None:
            return
        policy.points = [*policy.points[-(KEEP_POINTS - 1) :], point]
        since = policy.rollout.started if policy.rollout else None
        points = [p for p in policy.points if since is None or p.end > since]
        policy.alarms = evaluate(policy.service.alarms, points if since is not None else policy.points)
        if policy.scaler is not None and policy.rollout is None:
            change = policy.scaler.observe(point, self._aws(now))
            if change is not None:
                self._rec.set_desired(policy.service.name, change.desired)
                self._say(policy.service.name, f"autoscaling: desired {change.desired} ({change.reason})")

    def _advance(self, policy: _ServicePolicies, now: float) -> None:
        rollout, name, aws = policy.rollout, policy.service.name, self._aws(now)
        assert rollout is not None
        if rollout.done:
            if self._rec.settled(name):
                self._lb.set_split(policy.service.target_group.name, None)
                policy.rollout = None
            return
        alarms = firing(policy.alarms) if rollout.phase != "shifted" else []
        if alarms:
            why = "; ".join(f"alarm {a.name}: {a.reason}" for a in alarms)
            policy.rolled_back = why
            self._report(policy, rollout.on("alarm", aws), why)
            self._rec.rollback(name)
            self._split(policy)
            return
        # (a rolling replacement keeps trying instead, reported failed by the supervisor)
        if rollout.weighted and self._rec.failures(name) >= FAILED_REPLICAS:
            policy.rolled_back = f"{FAILED_REPLICAS} new replicas failed in a row"
            self._report(policy, rollout.on("alarm", aws), policy.rolled_back)
            self._rec.rollback(name)
            return
        message = rollout.tick(aws)
        if rollout.phase == "launching":
            event = "settled" if self._rec.settled(name) else "ready" if self._new_ready(name) else ""
            message = rollout.on(event, aws) if event else None
        if message is not None:
            self._report(policy, message, "")
            if rollout.phase == "shifted":
                self._rec.release(name)
            self._split(policy)

    def _report(self, policy: _ServicePolicies, message: str | None, why: str) -> None:
        if message is not None:
            policy.last_rollout = message + (f" ({why})" if why else "")
            self._say(policy.service.name, "deployment: " + policy.last_rollout)

    def _new_ready(self, name: str) -> bool:
        generation = self._rec.generation(name)
        new = [r for r in self._rec.replicas(name) if r.generation == generation]
        return len(new) >= self._rec.desired(name) and all(
            r.phase is rc.Phase.REGISTERED and r.health == "healthy" for r in new
        )

    def _split(self, policy: _ServicePolicies) -> None:
        rollout, name = policy.rollout, policy.service.name
        if rollout is None or rollout.deployment.strategy == "rolling":
            return
        # The new replicas: the latest generation's, also after a rollback made the old current.
        newest = max((r.generation for r in self._rec.replicas(name)), default=0)
        ids = frozenset(r.id for r in self._rec.replicas(name) if r.generation == newest)
        self._lb.set_split(policy.service.target_group.name, ids, rollout.share)

    def _reading(self, service: Service, now: float) -> Reading:
        f = self._lb.figures(service.target_group.name)
        return Reading(
            requests=int(f["RequestCount"]),
            target_4xx=int(f["HTTPCode_Target_4XX_Count"]),
            target_5xx=int(f["HTTPCode_Target_5XX_Count"]),
            p99=f["TargetResponseTime_p99"],
            unhealthy=int(f["unhealthy"]),
            running=int(f["running"]),
            cpu_percent=self._cpu(service.name, now),
        )

    # Status -----------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """JSON-able: per service its desired count and why, alarms, the deployment."""
        out = {}
        for name, p in self._services.items():
            scaling = p.service.autoscaling
            rollout = p.rollout
            out[name] = {
                "desired": self._rec.desired(name),
                "desired_reason": p.scaler.reason if p.scaler else "the stack's desired_count",
                "autoscaling": None if scaling is None else {"min": scaling.min, "max": scaling.max},
                "strategy": p.service.deployment.strategy,
                "alarms": [{"name": a.name, "state": a.state, "reason": a.reason} for a in p.alarms],
                "rollout": None
                if rollout is None
                else {"phase": rollout.phase, "new_percent": rollout.share},
                "last_rollout": p.last_rollout,
                "last_datapoint": None if not p.points else _show(p.points[-1]),
            }
        return out


def _show(point: Datapoint) -> dict[str, Any]:
    return {
        "requests": point.requests,
        "requests_per_target": point.requests_per_target,
        "error_percent": point.error_percent,
        "cpu_percent": point.cpu_percent,
        "running": point.running,
    }


# A deployment whose new replicas fail this many times in a row is rolled back (ECS's deployment
# circuit breaker; the same count the supervisor reports a failed restart at).
FAILED_REPLICAS = 3
