"""What every client connection of a listener shares (`ProxyContext`): the router and target
groups, the desync mode, the access log and figures, the clock tick, the Date header.

The request path reads it (decide.py, exchange.py, proxy.py); nothing here knows about
connections or exchanges, so every module of the path may import it.
"""

from __future__ import annotations

import time
from collections.abc import Sized
from typing import TYPE_CHECKING, Final, Protocol

from microforum.lb import responses
from microforum.lb.headers import TraceIds
from microforum.lb.pool import Ticking
from microforum.spec.model import Forward

if TYPE_CHECKING:
    from microforum.lb.accesslog import AccessLog
    from microforum.lb.groups import GroupState
    from microforum.lb.metrics import Metrics
    from microforum.lb.rules import Router
    from microforum.spec.model import Action

    # (priority as logged, action, the target group of a forward to one group)
    RuleMatch = tuple[str, Action, GroupState | None]

URL_CACHE_SIZE: Final = 4096  # rule matches remembered per request target on a path-only listener


class OpenConnection(Protocol):
    """What the balancer does with a client connection (proxy.ClientConnection) on a tick
    and when it stops."""

    @property
    def queue(self) -> Sized: ...
    def close(self) -> None: ...
    def sweep(self, idle_ticks: int) -> None: ...


class ProxyContext(Ticking):
    """What every connection shares: routing, groups, modes, log, figures, the clock tick."""

    def __init__(self, router: Router, groups: dict[str, GroupState], *, mode: str,
                 drop_invalid: bool, idle_timeout: float, log: AccessLog, metrics: Metrics,
                 elb: str, stack_name: str) -> None:  # fmt: skip
        self.router, self.groups, self.mode = router, groups, mode
        self.drop_invalid, self.idle_timeout = drop_invalid, idle_timeout
        self.log, self.metrics, self.elb, self.stack_name = log, metrics, elb, stack_name
        self.port = 0
        self.forwarded_static = b""  # X-Forwarded-Proto/-Port lines, set once the port is bound
        self.tick = 0  # advanced by the balancer's sweeper every TICK seconds
        self.trace_ids = TraceIds()
        # Forward actions with one target group, by id(): the router keeps the actions alive.
        self.single_forwards: dict[int, GroupState] = {}
        # A path-only listener's rule matches by request target (see `rule_for`).
        self.matches: dict[bytes, RuleMatch] = {}
        self.connections: set[OpenConnection] = set()  # (proxy.ClientConnection)
        self.accepting = True
        self._date_second, self._date = -1, ""

    def rule_for(self, url: bytes) -> RuleMatch:
        """(priority as logged, action, its target group if it forwards to one) for a request
        target on a path-only listener (`router.path_only`).

        The answer depends on the path alone, so it is remembered per request target: most
        requests repeat a few URLs. The cache is emptied when full, so that clients sending
        endless distinct URLs cost memory bounded by `URL_CACHE_SIZE` entries.
        """
        found = self.matches.get(url)
        if found is None:
            priority, action = self.router.match_url(url)
            group = None
            if isinstance(action, Forward) and len(action.target_groups) == 1:
                group = self.groups[action.target_groups[0].name]
            found = (str(priority), action, group)
            if len(self.matches) >= URL_CACHE_SIZE:
                self.matches.clear()
            self.matches[url] = found
        return found

    def date(self) -> str:
        """The Date header value, formatted once per second."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, responses.http_date(now)
        return self._date

    def bound(self, port: int) -> None:
        self.port = port
        self.forwarded_static = b"X-Forwarded-Proto: http\r\nX-Forwarded-Port: %d\r\n" % port
