"""Deciding what happens to a request (the first half of an `Exchange`). Called once per
request from `Exchange.route`, in four stages: `scan` reads each field once; `_judge`
applies ALB's limits and the desync verdict and answers what ALB answers itself; the listener
rule is matched; its action is prepared:

- desync classification and the mode's verdict (desync.py), ALB's limits (head size, 30 XFF
  addresses -> 463, TRACE and CONNECT -> 405, HTTP/2 -> 505, HTTP/1.1 without Host -> 400);
- the listener rule (rules.py), then the action: a fixed response, a redirect, or a forward to
  a target group (weighted, sticky) and a target (targets.py via groups.py), 503 when none;
- the bytes for the target: the client's head as received plus X-Forwarded-For/-Proto/-Port and
  X-Amzn-Trace-Id when nothing else needs rewriting, otherwise a rebuilt head (headers.py).
"""

from __future__ import annotations

import random
import re
import time
from typing import TYPE_CHECKING, Final

from microforum.lb import desync, responses
from microforum.lb import headers as hdr
from microforum.lb.rules import RequestView, redirect_location
from microforum.lb.targets import choose_weighted, sticky_group, sticky_set_cookies
from microforum.spec.model import FixedResponse, Forward, Redirect

if TYPE_CHECKING:
    from microforum.lb.exchange import Exchange
    from microforum.lb.groups import GroupState
    from microforum.lb.reader import RequestHead

# What `route` does with a request header, by lower-case name; absent: passed on untouched.
# (Final ints: compiled, each comparison is a C constant, not a module lookup.)
_HOST: Final = 0
_XFF: Final = 1
_TRACE: Final = 2
_UA: Final = 3
_CONN: Final = 4
_EXPECT: Final = 5
_COOKIE: Final = 6
_CL: Final = 7
_TE: Final = 8
_REWRITE: Final = 9
_PLAIN: Final = 10  # passed on untouched, and made of [-A-Za-z0-9] only
_KIND: Final = {
    **dict.fromkeys(hdr.HOP_BY_HOP, _REWRITE),  # (the hop-by-hop names: headers.HOP_BY_HOP)
    b"host": _HOST, b"x-forwarded-for": _XFF, b"x-amzn-trace-id": _TRACE, b"user-agent": _UA,
    b"connection": _CONN, b"expect": _EXPECT, b"cookie": _COOKIE, b"content-length": _CL,
    b"transfer-encoding": _TE, b"x-forwarded-proto": _REWRITE, b"x-forwarded-port": _REWRITE,
    # Names known to be made of [-A-Za-z0-9] only (spares the check for the usual headers).
    b"accept": _PLAIN, b"accept-encoding": _PLAIN, b"accept-language": _PLAIN,
    b"authorization": _PLAIN, b"cache-control": _PLAIN, b"content-type": _PLAIN,
    b"origin": _PLAIN, b"pragma": _PLAIN, b"referer": _PLAIN, b"if-none-match": _PLAIN,
    b"if-modified-since": _PLAIN, b"sec-fetch-dest": _PLAIN, b"sec-fetch-mode": _PLAIN,
    b"sec-fetch-site": _PLAIN, b"x-requested-with": _PLAIN, b"dnt": _PLAIN,
}  # fmt: skip
# The same, also by the names as clients usually spell them ("Host", "User-Agent"): a name
# found here needs no lower-casing.
_KIND_AS_SENT: Final = {
    **_KIND, **{b"-".join(p.capitalize() for p in n.split(b"-")): k for n, k in _KIND.items()},
    b"DNT": _PLAIN, b"TE": _REWRITE,
}  # fmt: skip
_INVALID_NAME: Final = re.compile(rb"[^-A-Za-z0-9]").search
_METHODS: Final = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"})
_SPACE: Final = 32


class Facts:
    """What `scan` found in a request's fields, for the stages after it."""

    __slots__ = ("check_all", "connection", "cookie", "expect", "host", "length", "raw", "size",
                 "trace_in", "xff", "xff_in")  # fmt: skip

    def __init__(self, raw: bool, check_all: bool, size: int) -> None:
        self.raw, self.check_all, self.size = raw, check_all, size
        self.host: bytes | None = None
        self.xff_in: bytes | None = None
        self.trace_in: bytes | None = None
        self.cookie: bytes | None = None
        self.length: bytes | None = None
        self.connection: list[bytes] | None = None
        self.expect = False
        self.xff = ""


def route(ex: Exchange, head: RequestHead) -> None:
    """Classify, check limits, match a rule and prepare the response or the forward, in the
    four stages the module docstring names: scan the fields, judge (limits, desync), match
    a rule, act on it."""
    facts = scan(ex, head)
    if _judge(ex, head, facts):
        return  # answered by the load balancer itself
    ctx = ex.client.ctx
    router = ctx.router
    view: RequestView | None = None
    group: GroupState | None = None
    if router.path_only:
        ex.priority, action, group = ctx.decide(ex.url)
    else:
        view = _view(ex)
        priority, action = router.match(view)
        ex.priority = str(priority)
    if isinstance(action, Forward):
        # The framing the reader read the body by (reader.frame), never the client's fields.
        framing = (b"Transfer-Encoding: chunked\r\n" if head.chunked
                   else b"Content-Length: %d\r\n" % head.length if facts.length is not None and head.framed
                   else b"")  # fmt: skip
        ex.req_chunked = head.chunked
        ex.expect_continue = facts.expect and ex.version == "1.1"
        _prepare_forward(ex, action, group, facts, framing, head.raw if facts.raw else None)
    elif isinstance(action, FixedResponse):
        ex.action_name = "fixed-response"
        data = responses.fixed(action, ctx.date(), close=ex.close_client, head_only=ex.is_head)
        ex._local(data, action.status_code)
    elif isinstance(action, Redirect):
        ex.action_name = "redirect"
        ex.redirect_url = redirect_location(action, view or _view(ex))
        status = 301 if action.status_code == "HTTP_301" else 302
        data = responses.redirect(status, ex.redirect_url, ctx.date(), close=ex.close_client,
                                  head_only=ex.is_head)  # fmt: skip
        ex._local(data, status)


def scan(ex: Exchange, head: RequestHead) -> Facts:
    """Look at each field once: the ones the load balancer uses or rewrites, whether the head
    can be forwarded as read (`raw`), whether it needs the full desync classification."""
    # Anything but a plain head (visible ASCII, CRLFs, HTTP/1.x, a known method, no space in
    # the target) gets the full classification.
    check_all = (not head.plain or (head.version != b"HTTP/1.1" and head.version != b"HTTP/1.0")
                 or ex.method not in _METHODS or _SPACE in head.target)  # fmt: skip
    facts = Facts(head.plain and ex.version == "1.1", check_all, len(ex.url) + len(ex.method) + 13)
    size = facts.size
    for name, value in ex.headers:
        size += len(name) + len(value) + 4
        kind = _KIND_AS_SENT.get(name)
        if kind is None:
            lower = name.lower()
            kind = _KIND.get(lower)
            if kind is None:
                if _INVALID_NAME(name) is not None:
                    facts.check_all = True  # for the classifier (e.g. Content_Length), dropping
                    facts.raw = False
                elif len(name) >= 14 and (b"ength" in lower or b"ncod" in lower):
                    facts.check_all = True  # maybe a look-alike (Transfer---Encoding)
                continue
        if kind == _HOST:  # (the one field nearly every request has: no call for it)
            if facts.host is None:
                facts.host = value
        elif kind != _PLAIN:
            _note(ex, facts, kind, value)
    facts.size = size
    return facts


def _note(ex: Exchange, facts: Facts, kind: int, value: bytes) -> None:
    """One field the load balancer uses or rewrites (Host aside: `scan` takes it)."""
    if kind == _UA:
        ex.user_agent = value
        return
    if kind == _COOKIE:
        facts.cookie = value if facts.cookie is None else facts.cookie + b"; " + value
        return
    if kind == _CL:
        facts.length = value if facts.length is None else facts.length
        facts.check_all = True
        return
    facts.raw = False  # the rest are rewritten: the head is rebuilt
    if kind == _TE:
        facts.check_all = True
    elif kind == _XFF:
        facts.xff_in = value if facts.xff_in is None else facts.xff_in + b", " + value
    elif kind == _TRACE:
        facts.trace_in = facts.trace_in or value
    elif kind == _CONN:
        facts.connection = [*(facts.connection or []), value]
    elif kind == _EXPECT:
        facts.expect = value.strip().lower() == b"100-continue"


def _judge(ex: Exchange, head: RequestHead, facts: Facts) -> bool:
    """ALB's limits, the desync verdict and the requests ALB answers itself; True when the
    load balancer answered (`ex` holds the answer)."""
    client = ex.client
    ctx = client.ctx
    ex.received = facts.size
    if facts.size > hdr.MAX_HEAD:
        ex.close_client = True
        ex.error_reason = "RequestHeaderTooLarge"
        ex._error(400)
        return True
    _take_host(ex, facts)
    if facts.check_all:
        ex.classification, ex.class_reason = desync.classify(head)
        facts.raw = facts.raw and ex.classification == desync.COMPLIANT
    # else: a plain head with usual names and no framing field: Compliant, allowed in any mode.
    if ex.classification != desync.COMPLIANT:
        decision = desync.decide(ctx.mode, ex.classification)
        if decision == desync.BLOCK:
            ex.close_client = True
            ex._error(400)
            return True
        if decision == desync.ALLOW_THEN_CLOSE:  # defensive Ambiguous: forward, close both after
            ex.close_client = ex.close_backend = True
            facts.raw = False
    status = _refused_status(ex, head, facts)
    if status:
        ex._error(status)
        return True
    return False


def _take_host(ex: Exchange, facts: Facts) -> None:
    client = ex.client
    host = facts.host
    if host is None and ex.version != "1.1":  # ALB names itself in a Host it adds (HTTP/1.0)
        host = facts.host = b"localhost:%d" % client.ctx.port
        ex.headers = [*ex.headers, (b"Host", host)]
        facts.raw = False
    if host is None:
        ex.host = ""
    elif host == client.host_sent:  # as a rule, one Host per connection: decoded once
        ex.host = client.host_text
    else:
        client.host_sent, client.host_text = host, host.decode("latin-1")
        ex.host = client.host_text


def _refused_status(ex: Exchange, head: RequestHead, facts: Facts) -> int:
    """The status ALB answers a request with itself (docs/alb.md §C), or 0; sets `facts.xff`."""
    if ex.method == b"TRACE" or ex.method == b"CONNECT":
        return 405
    if head.version >= b"HTTP/2":  # "an HTTP/2 request on an HTTP/1 connection"
        ex.close_client = True
        return 505
    if facts.host is None and ex.version == "1.1":  # RFC 9112 §3.2: Host is required
        return 400
    if facts.xff_in is None:
        facts.xff = ex.client.peer_ip
    else:
        facts.xff, count = hdr.forwarded_for([facts.xff_in], ex.client.peer_ip)
        if count > hdr.MAX_XFF_ADDRESSES:
            return 463
    return 0


def _view(ex: Exchange) -> RequestView:
    path, _, query = ex.url.partition(b"?")
    return RequestView(
        ex.method.decode("latin-1"), path.decode("latin-1"), query.decode("latin-1"),
        ex.host or None, ex.headers, ex.client.peer_ip, "http", ex.client.ctx.port,
    )  # fmt: skip


def _forward_group(ex: Exchange, action: Forward, cookie: bytes | None) -> GroupState:
    """The target group a forward sends this request to (weighted, sticky)."""
    ctx = ex.client.ctx
    groups = action.target_groups
    if len(groups) == 1:
        group = ctx.groups[groups[0].name]
        ctx.single_forwards[id(action)] = group
        return group
    sticky = None
    if action.stickiness_duration:
        sticky = sticky_group(cookie.decode("latin-1") if cookie else None, groups)
    name = sticky or choose_weighted(groups, random.random())
    if action.stickiness_duration:
        expires = responses.http_date(time.time() + action.stickiness_duration)
        ex.sticky = sticky_set_cookies(name, action.stickiness_duration, expires)
    return ctx.groups[name]


def _prepare_forward(ex: Exchange, action: Forward, group: GroupState | None, facts: Facts,
                     framing: bytes, raw: bytes | None) -> None:  # fmt: skip
    """Pick the target and prepare the head for it; `group` is the target group when the
    decision already knows it (a forward to one group, on a path-only listener)."""
    ctx = ex.client.ctx
    ex.action_name = "forward"
    if group is None:
        # A forward to one target group (the usual kind) is looked up by the action's
        # identity: spec objects are frozen, and reading their fields costs more than this.
        group = ctx.single_forwards.get(id(action))
    if group is None:
        group = _forward_group(ex, action, facts.cookie)
    ex.group = group
    picked = group.pick()
    if picked is None:  # "The target groups for the load balancer have no registered targets."
        ex._error(503)
        return
    ex.slot, ex.pool = picked
    ex.slot.outstanding += 1
    if facts.trace_in is None:
        ex.trace = trace = ctx.trace_ids.root(int(ex.created))
    else:
        new_id = ctx.trace_ids.new(int(ex.created)).decode()
        incoming = facts.trace_in.decode("latin-1")
        ex.trace = trace = hdr.trace_id(incoming, new_id, facts.size).encode("latin-1")
    if raw is not None:  # the client's head as read (no X-Forwarded-For), ours appended
        ex.out.append(hdr.forward_raw(raw, ex.client.forwarded, trace))
        return
    extra = b"X-Forwarded-For: %s\r\n%sX-Amzn-Trace-Id: %s\r\n%s\r\n" % (
        facts.xff.encode("latin-1"), ctx.forwarded_static, trace, framing,
    )  # fmt: skip
    drop = hdr.connection_tokens(facts.connection) if facts.connection else frozenset()
    line = hdr.request_line(ex.method, ex.url)
    sanitize = ex.classification != desync.COMPLIANT
    ex.out.append(hdr.request_head(line, ex.headers, extra, drop_invalid=ctx.drop_invalid,
                                   also_drop=drop, sanitize=sanitize))  # fmt: skip
