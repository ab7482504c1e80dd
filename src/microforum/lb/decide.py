"""What the load balancer does with a request head: `decide(head, peer_ip, ctx) -> Decision`.

Pure: it reads the head, the listener's rules and the desync mode, and writes nothing but the
`Decision` it returns (the shell, exchange.py, acts on it: writes the answer, or picks a target
and sends it the head). Four stages, in this order, each in its own function:

1. `_read`: the request target in origin form (an absolute-form target's path, its authority
   as Host: docs/alb.md, "Request target"), then each field once: the ones the load balancer
   uses or rewrites, whether the head can be forwarded as read, whether it needs the full
   desync classification;
2. `_judge`: ALB's limits and the desync verdict (desync.py), and the requests ALB answers
   itself (docs/alb.md §C): head over 64 KB 400, Severe 400 then close, TRACE and CONNECT
   405, HTTP/2 505, HTTP/1.1 without Host 400, more than 30 X-Forwarded-For addresses 463;
3. `_match`: the listener rule (rules.py) and its action: a fixed response, a redirect (its
   Location filled in here), or a forward (the framing the reader read the body by, never the
   client's fields);
4. what is left to the shell: the target group of a weighted forward (a random draw), the
   target (round robin or least outstanding: state), the trace id (random) and the head bytes.

The answer kinds are Final ints (compiled, C constants): FORWARD, ERROR (the load balancer's
own 4xx/5xx, `status`), FIXED (the rule's fixed response, `action`), REDIRECT (`status`,
`redirect_url`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from microforum.lb import desync
from microforum.lb import headers as hdr
from microforum.lb.rules import RequestView, redirect_location
from microforum.spec.model import FixedResponse, Forward, Redirect

if TYPE_CHECKING:
    from microforum.lb.context import ProxyContext
    from microforum.lb.groups import GroupState
    from microforum.lb.reader import RequestHead
    from microforum.spec.model import Action

FORWARD: Final = 0
ERROR: Final = 1
FIXED: Final = 2
REDIRECT: Final = 3
ANSWERS: Final = ("FORWARD", "ERROR", "FIXED", "REDIRECT")

# What `_read` does with a request header, by lower-case name; absent: passed on untouched.
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
_SLASH: Final = 47


class Decision:
    """A request as the load balancer read it, and what it decided to do with it."""

    __slots__ = (
        "action", "action_name", "answer", "check_all", "chunked", "class_reason", "classification",
        "close_backend", "close_client", "connection", "cookie", "error_reason", "expect_continue",
        "framing", "group", "headers", "host", "host_field", "length", "method", "priority", "raw",
        "redirect_url", "size", "status", "trace_in", "url", "user_agent", "version", "xff", "xff_in",
    )  # fmt: skip

    def __init__(self, method: bytes, url: bytes, version: str, headers: list[tuple[bytes, bytes]],
                 keep_alive: bool) -> None:  # fmt: skip
        # The request as read: the target in origin form, the version as text ("1.1").
        self.method, self.url, self.version, self.headers = method, url, version, headers
        self.size = len(url) + len(method) + 13  # the head's size as ALB counts it
        self.host = ""  # the Host field, as text
        self.user_agent = b""
        # The verdict
        self.answer = FORWARD
        self.status = 0  # of an answer of the load balancer's own
        self.error_reason = "-"
        self.classification, self.class_reason = desync.COMPLIANT, "-"
        self.close_client, self.close_backend = not keep_alive, False
        # The rule and its action
        self.priority, self.action_name, self.redirect_url = "-", "-", "-"
        self.action: Action | None = None
        self.group: GroupState | None = None  # a forward's target group when known
        # What a forward needs: the fields the load balancer rewrites, the framing, and the
        # head as read when it can be forwarded as such (`raw`).
        self.raw: bytes | None = None
        self.framing = b""
        self.chunked = self.expect_continue = False
        self.xff = ""
        self.xff_in: bytes | None = None
        self.trace_in: bytes | None = None
        self.cookie: bytes | None = None
        self.connection: list[bytes] | None = None
        # Seen by `_read`, for the stages after it
        self.host_field: bytes | None = None
        self.length: bytes | None = None
        self.check_all = False

    def __repr__(self) -> str:
        what = {FORWARD: f"forward {self.group.name if self.group else '?'}",
                FIXED: f"fixed {self.status}", REDIRECT: f"redirect {self.status} {self.redirect_url}",
                ERROR: f"error {self.status} {self.error_reason}"}[self.answer]  # fmt: skip
        return (
            f"<Decision {what} {self.classification}/{self.class_reason}"
            f"{' close' if self.close_client else ''} priority={self.priority}>"
        )


def refusal(status: int, error_reason: str) -> Decision:
    """The decision for bytes the reader refused (no request to speak of): `status`, close."""
    d = Decision(b"-", b"", "-", [], keep_alive=False)
    d.size = 0
    d.answer, d.status, d.error_reason = ERROR, status, error_reason or "-"
    d.classification = "-"
    return d


def decide(head: RequestHead, peer_ip: str, ctx: ProxyContext) -> Decision:
    """Read, judge and match one request head (the module docstring's stages)."""
    d, raw_ok = _read(head)
    if not _judge(d, head, peer_ip, ctx, raw_ok):
        _match(d, head, peer_ip, ctx)
    return d


def _read(head: RequestHead) -> tuple[Decision, bool]:
    """The request in origin form, each field looked at once; and whether the head may be
    forwarded as read (so far)."""
    url, headers, plain = head.target, head.headers, head.plain
    if not url or url[0] != _SLASH:
        split = hdr.origin_form(url)
        if split is None:
            url = url or b"/"
        else:  # the head is rebuilt, never forwarded as received
            url, authority = split
            headers = hdr.with_host(headers, authority) if authority else headers
            plain = False
    d = Decision(head.method, url, head.version_text, headers, head.keep_alive)
    # Anything but a plain head (visible ASCII, CRLFs, HTTP/1.x, a known method, no space in
    # the target) gets the full classification.
    d.check_all = (not plain or (head.version != b"HTTP/1.1" and head.version != b"HTTP/1.0")
                   or head.method not in _METHODS or _SPACE in head.target)  # fmt: skip
    raw_ok = plain and d.version == "1.1"
    size = d.size
    for name, value in headers:
        size += len(name) + len(value) + 4
        kind = _KIND_AS_SENT.get(name)
        if kind is None:
            lower = name.lower()
            kind = _KIND.get(lower)
            if kind is None:
                if _INVALID_NAME(name) is not None:
                    d.check_all = True  # for the classifier (e.g. Content_Length), dropping
                    raw_ok = False
                elif len(name) >= 14 and (b"ength" in lower or b"ncod" in lower):
                    d.check_all = True  # maybe a look-alike (Transfer---Encoding)
                continue
        if kind == _HOST:  # (the one field nearly every request has: no call for it)
            if d.host_field is None:
                d.host_field = value
        elif kind != _PLAIN:
            raw_ok = _note(d, kind, value) and raw_ok
    d.size = size
    return d, raw_ok


def _note(d: Decision, kind: int, value: bytes) -> bool:
    """One field the load balancer uses or rewrites (Host aside: `_read` takes it); False when
    the head must be rebuilt for it."""
    if kind == _UA:
        d.user_agent = value
        return True
    if kind == _COOKIE:
        d.cookie = value if d.cookie is None else d.cookie + b"; " + value
        return True
    if kind == _CL:
        d.length = value if d.length is None else d.length
        d.check_all = True
        return True
    if kind == _TE:
        d.check_all = True
    elif kind == _XFF:
        d.xff_in = value if d.xff_in is None else d.xff_in + b", " + value
    elif kind == _TRACE:
        d.trace_in = d.trace_in or value
    elif kind == _CONN:
        d.connection = [*(d.connection or []), value]
    elif kind == _EXPECT:
        d.expect_continue = value.strip().lower() == b"100-continue"
    return False  # the rest are rewritten: the head is rebuilt


def _judge(d: Decision, head: RequestHead, peer_ip: str, ctx: ProxyContext, raw_ok: bool) -> bool:
    """ALB's limits, the desync verdict and the requests ALB answers itself; True when the
    load balancer answers (d.answer is ERROR). Sets `d.raw` when the head goes as read."""
    if d.size > hdr.MAX_HEAD:
        return _error(d, 400, "RequestHeaderTooLarge", close=True)
    if d.check_all:  # (on the fields as received, an absolute-form target's Host in)
        d.classification, d.class_reason = desync.classify_parts(
            head.method, head.target, head.version, d.headers,
            line_ends=head.line_ends, odd_lines=head.odd_lines,
        )  # fmt: skip
        raw_ok = raw_ok and d.classification == desync.COMPLIANT
    # else: a plain head with usual names and no framing field: Compliant, allowed in any mode.
    raw_ok = _take_host(d, ctx.port) and raw_ok
    if d.classification != desync.COMPLIANT:
        verdict = desync.decide(ctx.mode, d.classification)
        if verdict == desync.BLOCK:
            return _error(d, 400, "-", close=True)
        if verdict == desync.ALLOW_THEN_CLOSE:  # defensive Ambiguous: forward, close both after
            d.close_client = d.close_backend = True
            raw_ok = False
    status = _refused_status(d, head, peer_ip)
    if status:
        return _error(d, status, "-", close=status == 505)
    d.raw = head.raw if raw_ok else None
    return False


def _error(d: Decision, status: int, error_reason: str, *, close: bool) -> bool:
    d.answer, d.status, d.error_reason = ERROR, status, error_reason
    d.close_client = d.close_client or close
    return True


def _take_host(d: Decision, port: int) -> bool:
    """The Host field as text; ALB's own Host for an HTTP/1.0 request without one (False:
    the head is rebuilt for it)."""
    host = d.host_field
    if host is None and d.version != "1.1":  # ALB names itself in a Host it adds (HTTP/1.0)
        host = d.host_field = b"localhost:%d" % port
        d.headers = [*d.headers, (b"Host", host)]
        d.host = host.decode("latin-1")
        return False
    d.host = "" if host is None else host.decode("latin-1")
    return True


def _refused_status(d: Decision, head: RequestHead, peer_ip: str) -> int:
    """The status ALB answers a request with itself (docs/alb.md §C), or 0; sets `d.xff`."""
    if d.method == b"TRACE" or d.method == b"CONNECT":
        return 405
    if head.version >= b"HTTP/2":  # "an HTTP/2 request on an HTTP/1 connection"
        return 505
    if d.host_field is None and d.version == "1.1":  # RFC 9112 §3.2: Host is required
        return 400
    if d.xff_in is None:
        d.xff = peer_ip
    else:
        d.xff, count = hdr.forwarded_for([d.xff_in], peer_ip)
        if count > hdr.MAX_XFF_ADDRESSES:
            return 463
    return 0


def _match(d: Decision, head: RequestHead, peer_ip: str, ctx: ProxyContext) -> None:
    """The listener rule for the request, and its action."""
    view: RequestView | None = None
    group: GroupState | None = None
    if ctx.router.path_only:
        d.priority, action, group = ctx.rule_for(d.url)
    else:
        view = _view(d, peer_ip, ctx.port)
        priority, action = ctx.router.match(view)
        d.priority = str(priority)
    d.action = action
    if isinstance(action, Forward):
        d.action_name = "forward"
        # The framing the reader read the body by (reader.frame), never the client's fields.
        d.chunked = head.chunked
        if head.chunked:
            d.framing = b"Transfer-Encoding: chunked\r\n"
        elif d.length is not None and head.framed:
            d.framing = b"Content-Length: %d\r\n" % head.length
        d.expect_continue = d.expect_continue and d.version == "1.1"
        # A forward to one target group (the usual kind) is known by the action's identity.
        d.group = group or ctx.single_forwards.get(id(action))
    elif isinstance(action, FixedResponse):
        d.answer, d.status, d.action_name = FIXED, action.status_code, "fixed-response"
    elif isinstance(action, Redirect):
        d.answer, d.action_name = REDIRECT, "redirect"
        d.redirect_url = redirect_location(action, view or _view(d, peer_ip, ctx.port))
        d.status = 301 if action.status_code == "HTTP_301" else 302


def _view(d: Decision, peer_ip: str, port: int) -> RequestView:
    path, _, query = d.url.partition(b"?")
    return RequestView(
        d.method.decode("latin-1"), path.decode("latin-1"), query.decode("latin-1"),
        d.host or None, d.headers, peer_ip, "http", port,
    )  # fmt: skip
