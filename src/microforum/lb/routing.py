"""Deciding what happens to a request (the first half of an `Exchange`). Called once per
request from `Exchange.route`, it reads the head once and sets the exchange's decision:

- desync classification and the mode's verdict (desync.py), ALB's limits (head size, 30 XFF
  addresses -> 463, TRACE -> 405, HTTP/1.1 without Host -> 400);
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
    b"host": _HOST, b"x-forwarded-for": _XFF, b"x-amzn-trace-id": _TRACE, b"user-agent": _UA,
    b"connection": _CONN, b"expect": _EXPECT, b"cookie": _COOKIE, b"content-length": _CL,
    b"transfer-encoding": _TE, b"keep-alive": _REWRITE, b"proxy-connection": _REWRITE,
    b"te": _REWRITE, b"trailer": _REWRITE, b"upgrade": _REWRITE, b"x-forwarded-proto": _REWRITE,
    b"x-forwarded-port": _REWRITE,
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


def route(ex: Exchange) -> None:
    """Classify, check limits, match a rule and prepare the response or the forward."""
    ctx = ex.client.ctx
    url = ex.url
    host = xff_in = trace_in = cookie = length = None
    connection: list[bytes] | None = None
    expect = chunked = check_all = False
    # The client's head can be forwarded as received (plus our headers) when nothing in it
    # must be removed or rewritten; `raw` tracks that while we look at each header once.
    client = ex.client
    raw = ex.version == "1.1" and client.begin_chunk is client.chunk  # the head starts the read
    # Non-ASCII bytes anywhere in the read (rare) make the URL and every value checked one by one.
    each_ascii = not raw or not client.chunk.isascii()
    size = len(url) + len(ex.method) + 13
    for name, value in ex.headers:
        size += len(name) + len(value) + 4
        if each_ascii and not value.isascii():
            check_all = True
        kind = _KIND_AS_SENT.get(name)
        if kind is None:
            kind = _KIND.get(name.lower())
            if kind is None:
                if _INVALID_NAME(name) is not None:
                    check_all = True  # for the classifier (e.g. Content_Length) and dropping
                    raw = False
                continue
        if kind == _PLAIN:
            continue
        if kind == _HOST:
            if host is None:
                host = value
        elif kind == _UA:
            ex.user_agent = value
        elif kind == _CL:
            length = value if length is None else length
            check_all = True
        elif kind == _TE:
            chunked = check_all = True
            raw = False
        elif kind == _XFF:
            xff_in = value if xff_in is None else xff_in + b", " + value
            raw = False
        elif kind == _TRACE:
            trace_in = trace_in or value
            raw = False
        elif kind == _CONN:
            connection = [*(connection or []), value]
            raw = False
        elif kind == _EXPECT:
            expect = value.strip().lower() == b"100-continue"
            raw = False
        elif kind == _COOKIE:
            cookie = value if cookie is None else cookie + b"; " + value
        else:  # other hop-by-hop headers and X-Forwarded-Proto/-Port: rewritten
            raw = False
    ex.received = size
    if size > hdr.MAX_HEAD:
        ex.close_client = True
        ex.error_reason = "RequestHeaderTooLarge"
        ex._error(400)
        return
    if host is None:
        ex.host = ""
    elif host == client.host_sent:  # as a rule, one Host per connection: decoded once
        ex.host = client.host_text
    else:
        client.host_sent, client.host_text = host, host.decode("latin-1")
        ex.host = client.host_text
    if check_all or (each_ascii and not url.isascii()) or ex.version not in ("1.1", "1.0"):
        ex.classification, ex.class_reason = desync.classify(ex.method, url, ex.version, ex.headers)
    # else: llhttp (strict) already refused CTLs, bad versions and bad names: Compliant.
    # Compliant requests are allowed in every mode: only the others need the mode's table.
    decision = desync.ALLOW
    if ex.classification != desync.COMPLIANT:
        decision = desync.decide(ctx.mode, ex.classification)
    if decision == desync.BLOCK:
        ex.close_client = True
        ex._error(400)
        return
    if decision == desync.ALLOW_THEN_CLOSE:  # defensive Ambiguous: forward, close both after
        ex.close_client = ex.close_backend = True
        raw = False
    if ex.method == b"TRACE":
        ex._error(405)
        return
    if host is None and ex.version == "1.1":  # RFC 9112 §3.2: Host is required
        ex._error(400)
        return
    if xff_in is None:
        xff = ex.client.peer_ip
    else:
        xff, count = hdr.forwarded_for([xff_in], ex.client.peer_ip)
        if count > hdr.MAX_XFF_ADDRESSES:
            ex._error(463)
            return
    router = ctx.router
    view: RequestView | None = None
    group: GroupState | None = None
    if router.path_only:
        ex.priority, action, group = ctx.decide(url)
    else:
        view = _view(ex)
        priority, action = router.match(view)
        ex.priority = str(priority)
    if isinstance(action, Forward):
        framing = (b"Transfer-Encoding: chunked\r\n" if chunked
                   else b"Content-Length: %s\r\n" % length.strip() if length is not None
                   else b"")  # fmt: skip
        ex.req_chunked = chunked
        ex.expect_continue = expect and ex.version == "1.1"
        _prepare_forward(ex, action, group, xff, trace_in, cookie, connection, framing, raw, size)
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


def _prepare_forward(ex: Exchange, action: Forward, group: GroupState | None, xff: str,
                     trace_in: bytes | None, cookie: bytes | None,
                     connection: list[bytes] | None, framing: bytes, raw: bool,
                     size: int) -> None:  # fmt: skip
    """Pick the target and prepare the head for it; `group` is the target group when the
    decision already knows it (a forward to one group, on a path-only listener)."""
    ctx = ex.client.ctx
    ex.action_name = "forward"
    if group is None:
        # A forward to one target group (the usual kind) is looked up by the action's
        # identity: spec objects are frozen, and reading their fields costs more than this.
        group = ctx.single_forwards.get(id(action))
    if group is None:
        group = _forward_group(ex, action, cookie)
    ex.group = group
    picked = group.pick()
    if picked is None:  # "The target groups for the load balancer have no registered targets."
        ex._error(503)
        return
    ex.slot, ex.pool = picked
    ex.slot.outstanding += 1
    if trace_in is None:
        ex.trace = trace = ctx.trace_ids.root(int(ex.created))
    else:
        new_id = ctx.trace_ids.new(int(ex.created)).decode()
        ex.trace = trace = hdr.trace_id(trace_in.decode("latin-1"), new_id, size).encode("latin-1")
    if raw:  # forward the client's head bytes as they came (no X-Forwarded-For), ours appended
        ex.out.append(hdr.forward_raw(ex.client.chunk, ex.client.forwarded, trace))
        return
    extra = b"X-Forwarded-For: %s\r\n%sX-Amzn-Trace-Id: %s\r\n%s\r\n" % (
        xff.encode("latin-1"), ctx.forwarded_static, trace, framing,
    )  # fmt: skip
    drop = hdr.connection_tokens(connection) if connection else frozenset()
    line = b"%s %s HTTP/1.1\r\n" % (ex.method, ex.url)
    ex.out.append(hdr.request_head(line, ex.headers, extra, drop_invalid=ctx.drop_invalid,
                                     also_drop=drop))  # fmt: skip
