"""What a forward needs once `decide` chose it: the target group of a weighted (or sticky)
forward, the trace id, and the head the target receives. Not pure (a random draw, the trace
ids' random part, a cache in the context), but no I/O; called by exchange.py.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from microforum.lb import desync, responses
from microforum.lb import headers as hdr
from microforum.lb.targets import choose_weighted, sticky_group, sticky_set_cookies

if TYPE_CHECKING:
    from microforum.lb.context import ProxyContext
    from microforum.lb.decide import Decision
    from microforum.lb.groups import GroupState
    from microforum.spec.model import Forward


def target_group(
    ctx: ProxyContext, action: Forward, cookie: bytes | None
) -> tuple[GroupState, list[str] | None]:
    """The target group a forward sends this request to (weighted, sticky), and the cookies
    that keep the client on it (stickiness)."""
    groups = action.target_groups
    if len(groups) == 1:
        group = ctx.single_forwards[id(action)] = ctx.groups[groups[0].name]
        return group, None
    sticky = None
    if action.stickiness_duration:
        sticky = sticky_group(cookie.decode("latin-1") if cookie else None, groups)
    name = sticky or choose_weighted(groups, random.random())
    cookies = None
    if action.stickiness_duration:
        expires = responses.http_date(time.time() + action.stickiness_duration)
        cookies = sticky_set_cookies(name, action.stickiness_duration, expires)
    return ctx.groups[name], cookies


def trace(ctx: ProxyContext, d: Decision, created: float) -> bytes:
    """The X-Amzn-Trace-Id the target gets: a new one, or the client's with ours."""
    if d.trace_in is None:
        return ctx.trace_ids.root(int(created))
    new_id = ctx.trace_ids.new(int(created)).decode()
    return hdr.trace_id(d.trace_in.decode("latin-1"), new_id, d.size).encode("latin-1")


def target_head(ctx: ProxyContext, d: Decision, forwarded: bytes, trace_id: bytes) -> bytes:
    """The head the target receives: the client's as read with ours appended when nothing in
    it is rewritten (`d.raw`), else rebuilt (headers.py)."""
    if d.raw is not None:  # `forwarded`: the client connection's X-Forwarded-* lines
        return hdr.forward_raw(d.raw, forwarded, trace_id)
    extra = b"X-Forwarded-For: %s\r\n%sX-Amzn-Trace-Id: %s\r\n%s\r\n" % (
        d.xff.encode("latin-1"), ctx.forwarded_static, trace_id, d.framing,
    )  # fmt: skip
    drop = hdr.connection_tokens(d.connection) if d.connection else frozenset()
    line = hdr.request_line(d.method, d.url)
    sanitize = d.classification != desync.COMPLIANT
    return hdr.request_head(line, d.headers, extra, drop_invalid=ctx.drop_invalid, also_drop=drop,
                            sanitize=sanitize)  # fmt: skip
