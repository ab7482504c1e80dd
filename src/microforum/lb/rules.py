"""Listener rules compiled into matchers: `Router.match(request) -> (priority, action)`. Pure.

ALB semantics reproduced (docs/alb.md §A, with their sources):
- rules are tried by priority, lowest first; the first whose conditions *all* match wins (AND);
  a condition matches when *any* of its values does (OR); no match runs the default action,
  reported as priority 0 (the access log's `matched_rule_priority`);
- `*` matches zero or more characters and `?` exactly one; patterns match the whole value;
- path-pattern is case-sensitive and sees the path only, never the query string;
- host-header, http-header (name and value) and query-string are case-insensitive;
- http-request-method is exact and case-sensitive; source-ip is the TCP peer, never XFF.

Choices where ALB's docs are silent (⚠, tested in tests/lb/test_rules.py):
- a `:port` in the Host header is ignored for host-header matching;
- the path is matched as sent (not percent-decoded);
- query-string keys and values are matched after percent-decoding (`%20` and `+` as space);
- a redirect whose query ends up empty has no `?`; a port equal to the protocol's default
  (80 for http, 443 for https) is left out of the Location.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from urllib.parse import unquote_plus

from microforum.spec.model import Action, Condition, Listener, Redirect

Matcher = Callable[["RequestView"], bool]


class RequestView:
    """The parts of a request that rules look at (str fields, raw header pairs)."""

    __slots__ = ("headers", "host", "method", "path", "port", "protocol", "query", "source_ip")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        host: str | None,
        headers: Sequence[tuple[bytes, bytes]] = (),
        source_ip: str = "127.0.0.1",
        protocol: str = "http",
        port: int = 80,
    ) -> None:
        self.method, self.path, self.query, self.host = method, path, query, host
        self.headers, self.source_ip, self.protocol, self.port = headers, source_ip, protocol, port

    def header_values(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in the order received."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == key]


def wildcard(pattern: str, *, ignore_case: bool, escapes: bool = False) -> re.Pattern[str]:
    """An anchored regex for an ALB wildcard value (`*` any run, `?` one character).

    With `escapes` (query-string values), `\\*` and `\\?` stand for a literal `*` and `?`.
    """
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escapes and ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*?":
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any(patterns: Sequence[re.Pattern[str]], value: str) -> bool:
    return any(p.match(value) for p in patterns)


def _path(cond: Condition) -> Matcher:
    patterns = [wildcard(v, ignore_case=False) for v in cond.values]
    if len(patterns) == 1:
        only = patterns[0].match
        return lambda r: only(r.path) is not None
    return lambda r: _any(patterns, r.path)


def host_without_port(host: str | None) -> str:
    """The host name of a Host header value: port removed, IPv6 brackets kept."""
    if not host:
        return ""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _host(cond: Condition) -> Matcher:
    patterns = [wildcard(v, ignore_case=True) for v in cond.values]
    return lambda r: _any(patterns, host_without_port(r.host))


def _header(cond: Condition) -> Matcher:
    patterns = [wildcard(v, ignore_case=True) for v in cond.values]
    name = cond.header_name or ""
    # "If the same header appears multiple times in the request, we search them in order"
    return lambda r: any(_any(patterns, value) for value in r.header_values(name))


def _method(cond: Condition) -> Matcher:
    methods = frozenset(cond.values)
    return lambda r: r.method in methods


def parse_query(query: str) -> list[tuple[str, str]]:
    """Key/value pairs of a query string, percent-decoded (`a=1&b` -> [(a, 1), (b, '')])."""
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((unquote_plus(key), unquote_plus(value)))
    return pairs


def _query(cond: Condition) -> Matcher:
    compiled = [
        (None if q.key is None else wildcard(q.key, ignore_case=True, escapes=True),
         wildcard(q.value, ignore_case=True, escapes=True))
        for q in cond.query
    ]  # fmt: skip

    def match(r: RequestView) -> bool:
        pairs = parse_query(r.query)
        return any(
            (key is None or key.match(k)) and value.match(v) for key, value in compiled for k, v in pairs
        )

    return match


def _source(cond: Condition) -> Matcher:
    networks = [ipaddress.ip_network(v, strict=False) for v in cond.values]

    def match(r: RequestView) -> bool:
        try:
            address = ipaddress.ip_address(r.source_ip)
        except ValueError:
            return False
        return any(address in n for n in networks)

    return match


_COMPILERS: dict[str, Callable[[Condition], Matcher]] = {
    "path-pattern": _path,
    "host-header": _host,
    "http-header": _header,
    "http-request-method": _method,
    "query-string": _query,
    "source-ip": _source,
}


def compile_condition(cond: Condition) -> Matcher:
    """A predicate over `RequestView` for one condition (its values OR-ed)."""
    return _COMPILERS[cond.field](cond)


class Router:
    """A listener's rules, compiled once; `match` is the per-request decision."""

    def __init__(self, listener: Listener) -> None:
        self.default = listener.default_action
        self.rules: list[tuple[int, tuple[Matcher, ...], Action]] = [
            (rule.priority, tuple(compile_condition(c) for c in rule.conditions), rule.action)
            for rule in sorted(listener.rules, key=lambda r: r.priority)
        ]

        # The usual listener (path patterns only) is matched on the path string alone.
        self.path_only = all(c.field == "path-pattern" for rule in listener.rules for c in rule.conditions)
        self._paths = [
            (rule.priority, [wildcard(v, ignore_case=False).match for c in rule.conditions
                             for v in c.values], rule.action)
            for rule in sorted(listener.rules, key=lambda r: r.priority)
        ] if self.path_only else []  # fmt: skip

    def match_url(self, url: bytes) -> tuple[int, Action]:
        """`match_path` for a request target (the query is never matched)."""
        return self.match_path(url.partition(b"?")[0].decode("latin-1"))

    def match_path(self, path: str) -> tuple[int, Action]:
        """`match` for a listener whose rules only have path-pattern conditions."""
        for priority, patterns, action in self._paths:
            for pattern in patterns:
                if pattern(path) is not None:
                    return priority, action
        return 0, self.default

    def __repr__(self) -> str:
        return f"<Router rules={[p for p, _, _ in self.rules]} default={self.default!r}>"

    def match(self, request: RequestView) -> tuple[int, Action]:
        """The winning rule's priority and action; (0, default action) when none matches."""
        for priority, matchers, action in self.rules:
            for matcher in matchers:
                if not matcher(request):
                    break
            else:
                return priority, action
        return 0, self.default


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def redirect_location(redirect: Redirect, request: RequestView) -> str:
    """The Location of a redirect action, with ALB's `#{...}` placeholders filled in.

    `#{path}` is the request path without its leading "/" (write `/#{path}`); components left
    at their placeholder keep the request's value (docs/alb.md §A).
    """
    host = host_without_port(request.host)
    values = {
        "#{protocol}": request.protocol,
        "#{host}": host,
        "#{port}": str(request.port),
        "#{path}": request.path[1:] if request.path.startswith("/") else request.path,
        "#{query}": request.query,
    }

    def fill(template: str, allowed: tuple[str, ...]) -> str:
        for key in allowed:
            template = template.replace(key, values[key])
        return template

    protocol = fill(redirect.protocol, ("#{protocol}",)).lower()
    new_host = fill(redirect.host, ("#{host}",))
    port = fill(redirect.port, ("#{port}",))
    path = fill(redirect.path, ("#{host}", "#{port}", "#{path}"))
    query = fill(redirect.query, ("#{protocol}", "#{host}", "#{port}", "#{path}", "#{query}"))
    netloc = new_host if port == _DEFAULT_PORTS.get(protocol) else f"{new_host}:{port}"
    return f"{protocol}://{netloc}{path}" + (f"?{query}" if query else "")
