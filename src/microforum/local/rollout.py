"""A deployment in progress (`restart`), as ECS runs its strategies, as a state table; no I/O.

* rolling: the reconciler replaces replicas (minimum healthy / maximum percent); the rollout only
  watches the alarms until the service settles.
* canary: every new replica starts beside the old ones and gets no traffic (`launching`); once
  all are healthy they get `canary_percent` of the service's requests through the load
  balancer's weighted choice (`canary`), for the bake time; then all of it (`shifted`), and the
  old replicas drain.
* linear: the same, `step_percent` more at each step, a bake after each step but the last.

Any alarm of the service in ALARM during the rollout rolls it back (`rolled_back`): the old
replicas take all the traffic again and the new ones drain. Times are AWS seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from microforum.spec.model import Deployment

# (phase, event) -> next phase; events: ready (every new replica healthy), baked (bake time
# over), alarm (an alarm in ALARM), settled (the reconciler finished a rolling replacement).
TRANSITIONS: dict[tuple[str, str], str] = {
    ("launching", "ready"): "shifting",  # to canary, the first linear step, or (rolling) stays
    ("canary", "baked"): "shifted",
    ("step", "baked"): "shifting",
    ("launching", "settled"): "shifted",
    ("launching", "alarm"): "rolled_back",
    ("canary", "alarm"): "rolled_back",
    ("step", "alarm"): "rolled_back",
}
DONE = ("shifted", "rolled_back")


@dataclass
class Rollout:
    service: str
    deployment: Deployment
    started: float
    phase: str = "launching"
    share: float = 0.0  # the new replicas' percent of the service's requests
    until: float | None = None  # the end of the current bake

    @property
    def weighted(self) -> bool:
        """Whether the load balancer splits traffic between old and new replicas."""
        return self.deployment.strategy != "rolling" and self.phase not in DONE

    @property
    def done(self) -> bool:
        return self.phase in DONE

    def on(self, event: str, now: float) -> str | None:
        """Apply an event; a line saying what changed, or None (the event means nothing now)."""
        target = TRANSITIONS.get((self.phase, event))
        if target is None or (event == "ready" and self.deployment.strategy == "rolling"):
            return None
        if target == "shifting":
            target = self._next_share()
        if target in DONE:
            self.share = 100.0 if target == "shifted" else 0.0
        if target in ("canary", "step"):
            self.until = now + self.deployment.bake_minutes * 60
        self.phase = target
        return self._say()

    def tick(self, now: float) -> str | None:
        """The bake's end, when it came."""
        if self.until is not None and now >= self.until and self.phase in ("canary", "step"):
            self.until = None
            return self.on("baked", now)
        return None

    def _next_share(self) -> str:
        strategy = self.deployment.strategy
        if strategy == "canary" and self.phase == "launching":
            self.share = self.deployment.canary_percent
            return "canary"
        # linear (a canary goes from `canary` straight to `shifted`); `shifted` makes it 100
        self.share = round(self.share + self.deployment.step_percent, 1)
        return "shifted" if self.share >= 100.0 else "step"

    def _say(self) -> str:
        bake = f", baking {self.deployment.bake_minutes} min"
        return {
            "canary": f"canary: new replicas get {self.share:g} % of requests{bake}",
            "step": f"linear: new replicas get {self.share:g} % of requests{bake}",
            "shifted": "new replicas get all requests; the old ones drain",
            "rolled_back": "rolled back: the old replicas get all requests; the new ones drain",
        }[self.phase]
