"""The target health state machine of an ALB target group: pure, with an injected clock.

Theory of operation
-------------------
Each registered target has one `HealthTracker`. The I/O shell (balancer.py) asks it when the
next check is due (`due`), runs the check (an HTTP GET of the health-check path that either
answers with a status code, times out, or fails to connect / answers garbage), and feeds the
outcome back with `record`. `deregister` and `expire` drive draining. Every call returns the
transition it caused, if any, so the shell can notify the supervisor.

States and reason codes are those of elbv2 DescribeTargetHealth (docs/alb.md §B). Transitions:

    state      event                                   next       reason
    ---------  --------------------------------------  ---------  ------------------------------
    (none)     register                                initial    Elb.RegistrationInProgress
    initial    check fails, grace not over             initial    Elb.InitialHealthChecking
    initial    check fails, unhealthy_threshold
               normal-cadence checks' time has passed   unhealthy  Target.<failure>
    initial    check passes (one is enough)            healthy    -
    healthy    check passes                            healthy    -
    healthy    unhealthy_threshold failures in a row   unhealthy  Target.<failure>
    unhealthy  check fails                             unhealthy  Target.<failure> (latest)
    unhealthy  healthy_threshold passes in a row       healthy    -
    any        deregister                              draining   Target.DeregistrationInProgress
    draining   delay over / nothing in flight          unused     Target.NotRegistered
    any        the checker itself crashed              unhealthy  Elb.InternalError

Failures: a status outside the matcher is Target.ResponseCodeMismatch ("Health checks failed
with these codes: [503]"); no answer within the timeout is Target.Timeout ("Request timed
out"); refused/reset/malformed is Target.FailedHealthChecks ("Health checks failed")
(docs/alb.md §B).

"After your target is registered, it must pass one health check to be considered healthy";
⚠ the docs do not say how many failures make an `initial` target unhealthy: we use
unhealthy_threshold, and healthy_threshold passes to come back from `unhealthy`.

Local deviation (docs/local-stack.md, spec `local.initial_health_check_interval`): while a
target is `initial` it is checked every `initial_interval` (0.2 s by default) instead of every
`interval` seconds, so `microforum up` is ready in about a second. So that the fast cadence does
not make a slowly booting target unhealthy sooner than ALB would, an `initial` target turns
unhealthy only once unhealthy_threshold x interval seconds have passed since registration with
failing checks (the time ALB would have needed). Outside `initial`, checks run every `interval`
and the schedule does not drift with response time (docs/alb.md §B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from microforum.spec.model import HealthCheck

INITIAL, HEALTHY, UNHEALTHY, DRAINING, UNUSED = "initial", "healthy", "unhealthy", "draining", "unused"

REASONS: dict[str, str] = {
    "Elb.RegistrationInProgress": "Target registration is in progress",
    "Elb.InitialHealthChecking": "Initial health checks in progress",
    "Target.ResponseCodeMismatch": "Health checks failed with these codes: [{code}]",
    "Target.Timeout": "Request timed out",
    "Target.FailedHealthChecks": "Health checks failed",
    "Target.DeregistrationInProgress": "Target deregistration is in progress",
    "Target.NotRegistered": "Target is not registered to the target group",
    "Elb.InternalError": "Health checks failed due to an internal error",
}

Outcome = Literal["ok", "code", "timeout", "error", "internal"]


@dataclass(frozen=True)
class CheckResult:
    """What one health check saw: ok, a wrong status code, a timeout or a connection error."""

    outcome: Outcome
    status: int | None = None
    detail: str = ""


def classify_status(check: HealthCheck, status: int) -> CheckResult:
    """A check that got an HTTP answer: ok when the matcher accepts the code."""
    return CheckResult("ok" if check.accepts(status) else "code", status)


_FAILURE_REASON = {
    "code": "Target.ResponseCodeMismatch",
    "timeout": "Target.Timeout",
    "error": "Target.FailedHealthChecks",
    "internal": "Elb.InternalError",
}


@dataclass(frozen=True)
class Transition:
    old: str
    new: str


class HealthTracker:
    """One target's health in one target group; all times come from the caller's clock."""

    def __init__(self, check: HealthCheck, now: float, initial_interval: float) -> None:
        self.check = check
        self.initial_interval = initial_interval
        self.registered_at = now
        self.state = INITIAL
        self.reason: str | None = "Elb.RegistrationInProgress"
        self.description: str | None = REASONS["Elb.RegistrationInProgress"]
        self.successes = 0  # consecutive
        self.failures = 0  # consecutive
        self.last_failure: str | None = None  # "<reason>: <description> (<detail>)"
        self.last_failure_at: float | None = None
        self.next_check = now  # the first check runs at once
        self.drain_deadline: float | None = None
        self._due_at = now

    def __repr__(self) -> str:
        return (
            f"<HealthTracker {self.state} reason={self.reason} ok={self.successes} "
            f"fail={self.failures} next={self.next_check:g}>"
        )

    @property
    def checking(self) -> bool:
        """Whether health checks still run (not once draining or unused)."""
        return self.state in (INITIAL, HEALTHY, UNHEALTHY)

    def due(self, now: float) -> float:
        """Seconds until the next check should start (0 when it is due)."""
        return max(0.0, self.next_check - now)

    def record(self, result: CheckResult, now: float) -> Transition | None:
        """Feed one check's result; returns the state change it caused, if any."""
        if not self.checking:
            return None
        old = self.state
        self._schedule(now)
        if result.outcome == "ok":
            self._passed()
        else:
            self._failed(result, now)
        self._schedule_after(now)
        return Transition(old, self.state) if self.state != old else None

    def deregister(self, now: float, delay: float) -> Transition | None:
        """Start draining: no new requests; `expire` ends it after `delay` seconds."""
        if self.state in (DRAINING, UNUSED):
            return None
        old = self.state
        self._set(DRAINING, "Target.DeregistrationInProgress")
        self.drain_deadline = now + delay
        return Transition(old, DRAINING)

    def expire(self, now: float, in_flight: int) -> Transition | None:
        """Finish draining once nothing is in flight or the delay has passed."""
        if self.state != DRAINING or self.drain_deadline is None:
            return None
        if in_flight > 0 and now < self.drain_deadline:
            return None
        self._set(UNUSED, "Target.NotRegistered")
        return Transition(DRAINING, UNUSED)

    # Internals

    def _passed(self) -> None:
        self.failures = 0
        self.successes += 1
        if self.state == INITIAL or (
            self.state == UNHEALTHY and self.successes >= self.check.healthy_threshold
        ):
            self._set(HEALTHY, None)

    def _failed(self, result: CheckResult, now: float) -> None:
        self.successes = 0
        self.failures += 1
        reason = _FAILURE_REASON[result.outcome]
        description = REASONS[reason].format(code=result.status)
        self.last_failure = f"{reason}: {description}" + (f" ({result.detail})" if result.detail else "")
        self.last_failure_at = now
        if self.state == INITIAL:
            grace = self.check.unhealthy_threshold * self.check.interval
            if now - self.registered_at < grace:
                self._set(INITIAL, "Elb.InitialHealthChecking")
                return
        elif self.state == HEALTHY and self.failures < self.check.unhealthy_threshold:
            return
        self.state, self.reason, self.description = UNHEALTHY, reason, description

    def _schedule(self, now: float) -> None:
        """Remember when this check was due, so the next one is one interval later."""
        self._due_at = min(self.next_check, now)

    def _schedule_after(self, now: float) -> None:
        step = self.initial_interval if self.state == INITIAL else float(self.check.interval)
        # The schedule does not drift with response time; a check that overran its slot
        # (possible only at the fast initial cadence) is followed by the next one at once.
        self.next_check = max(self._due_at + step, now if self.state == INITIAL else 0.0)

    def _set(self, state: str, reason: str | None) -> None:
        self.state, self.reason = state, reason
        self.description = REASONS[reason] if reason else None
