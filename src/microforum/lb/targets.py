"""Targets and target selection: pure functions over a target group's current table.

ALB facts reproduced (docs/alb.md §A, A.4, B.5):
- a target group routes only to healthy targets, with its algorithm (`round_robin` or
  `least_outstanding_requests`);
- when no target is healthy the group *fails open*: every registered, non-draining target is
  used with the same algorithm (docs/alb.md §B);
- draining targets never get new requests; no target at all gives the caller a 503;
- a forward to several target groups picks one in proportion to the weights; with target-group
  stickiness the choice is remembered in the `AWSALBTG` cookie.

⚠ Not documented: a group whose targets are all still `initial` (never checked). We treat it
like the documented all-unhealthy case and fail open, so the first requests after `up` are
served rather than refused (tested in tests/lb/test_targets.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from microforum.spec.model import WeightedTargetGroup

STICKY_COOKIE = "AWSALBTG"
STICKY_CORS_COOKIE = "AWSALBTGCORS"


@dataclass(frozen=True)
class Target:
    """One registered endpoint of a target group (ECS: instance + dynamic host port)."""

    host: str  # "127.0.0.1"
    port: int
    id: str  # replica name shown in status, e.g. "users-2"


class Slot:
    """A target's routing facts inside one target group: health, draining, load."""

    __slots__ = ("addr", "draining", "healthy", "outstanding", "target")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.addr = f"{target.host}:{target.port}"  # as the access log writes it
        self.healthy = False
        self.draining = False
        self.outstanding = 0  # requests sent and not yet answered (for LOR and draining)

    def __repr__(self) -> str:
        flags = "healthy" if self.healthy else "not-healthy"
        if self.draining:
            flags += ",draining"
        return f"<Slot {self.target.id} {self.target.host}:{self.target.port} {flags} out={self.outstanding}>"


def candidates(slots: Sequence[Slot]) -> list[Slot]:
    """The slots a new request may go to: healthy ones, or every live one (fail open)."""
    live = [s for s in slots if not s.draining]
    healthy = [s for s in live if s.healthy]
    return healthy or live


def round_robin(pool: Sequence[Slot], counter: int) -> Slot:
    """The `counter`-th slot, cycling; the caller increments the counter per request."""
    return pool[counter % len(pool)]


def least_outstanding(pool: Sequence[Slot], counter: int) -> Slot:
    """The slot with the fewest outstanding requests; ties go round robin from `counter`."""
    n = len(pool)
    best = pool[counter % n]
    for i in range(1, n):
        slot = pool[(counter + i) % n]
        if slot.outstanding < best.outstanding:
            best = slot
    return best


Algorithm = Callable[[Sequence[Slot], int], Slot]
ALGORITHMS: dict[str, Algorithm] = {
    "round_robin": round_robin, "least_outstanding_requests": least_outstanding,
}  # fmt: skip


def pick_from(pool: Sequence[Slot], algorithm: Algorithm, counter: int) -> Slot | None:
    """The slot for a new request among `pool` (the candidates), None when it is empty (503)."""
    if not pool:
        return None
    return pool[0] if len(pool) == 1 else algorithm(pool, counter)


def choose(slots: Sequence[Slot], algorithm: str, counter: int) -> Slot | None:
    """Pick the slot for a new request, or None when the group has no live target (503)."""
    return pick_from(candidates(slots), ALGORITHMS[algorithm], counter)


def choose_weighted(groups: Sequence[WeightedTargetGroup], point: float) -> str:
    """The target group for a weighted forward; `point` is uniform in [0, 1).

    Weights are proportional (10/20 sends twice as much to the second); a weight of 0 never
    receives traffic unless every weight is 0, in which case the first group is used.
    """
    total = sum(g.weight for g in groups)
    if total <= 0:
        return groups[0].name
    mark = point * total
    for group in groups:
        mark -= group.weight
        if mark < 0 and group.weight > 0:
            return group.name
    return next(g.name for g in reversed(groups) if g.weight > 0)


def sticky_value(target_group: str) -> str:
    """The AWSALBTG cookie value naming `target_group` (ALB's is encrypted; ours is opaque)."""
    return base64.urlsafe_b64encode(target_group.encode()).decode().rstrip("=")


def sticky_group(cookie_header: str | None, groups: Sequence[WeightedTargetGroup]) -> str | None:
    """The target group an AWSALBTG cookie names, if it is one of `groups` (else None).

    An undecodable or stale cookie is ignored: the caller picks by weight and resets the
    cookie, as ALB does for a target-level cookie it cannot use (docs/alb.md §B).
    """
    if not cookie_header:
        return None
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name != STICKY_COOKIE:
            continue
        try:
            padded = value + "=" * (-len(value) % 4)
            decoded = base64.urlsafe_b64decode(padded.encode()).decode()
        except (binascii.Error, ValueError):
            return None
        return decoded if any(g.name == decoded for g in groups) else None
    return None


def sticky_set_cookies(target_group: str, duration: int, expires_http_date: str) -> list[str]:
    """Set-Cookie values for TG stickiness: AWSALBTG and its CORS twin (docs/alb.md §A).

    ALB uses `Expires`, not `Max-Age`; `duration` is kept for callers that compute the date.
    """
    del duration
    value = sticky_value(target_group)
    return [
        f"{STICKY_COOKIE}={value}; Expires={expires_http_date}; Path=/",
        f"{STICKY_CORS_COOKIE}={value}; Expires={expires_http_date}; Path=/; SameSite=None; Secure",
    ]
