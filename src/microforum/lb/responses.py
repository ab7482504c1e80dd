"""Responses the load balancer writes itself: ALB's error pages, fixed responses, redirects.

⚠ ALB's error bodies are not documented; these reproduce what ALB is observed to send: a small
HTML page and `Server: awselb/2.0` (docs/alb.md §C notes).
"""

from __future__ import annotations

from email.utils import formatdate

from microforum.spec.model import FixedResponse

REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 301: "Moved Permanently",
    302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Time-out", 413: "Request Entity Too Large",
    414: "Request-URI Too Large", 418: "I'm a teapot", 460: "", 463: "", 464: "",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
    505: "HTTP Version Not Supported",
}  # fmt: skip


def reason(status: int) -> str:
    """The reason phrase ALB uses for `status` (empty for its own 46x codes)."""
    return REASONS.get(status, "")


def http_date(epoch: float) -> str:
    """An IMF-fixdate, as in Date and cookie Expires."""
    return formatdate(epoch, usegmt=True)


def error_body(status: int) -> bytes:
    """ALB's HTML error page for `status`."""
    title = f"{status} {reason(status)}".strip()
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    ).encode()


def _head(status: int, date: str, content_type: str, length: int, close: bool, extra: str) -> bytes:
    return (
        f"HTTP/1.1 {status} {reason(status)}\r\nServer: awselb/2.0\r\nDate: {date}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    ).encode("latin-1")


def error(status: int, date: str, *, close: bool, head_only: bool = False) -> bytes:
    """A whole ALB error response (head and HTML body; no body for HEAD)."""
    body = error_body(status)
    head = _head(status, date, "text/html", len(body), close, "")
    return head if head_only else head + body


def fixed(action: FixedResponse, date: str, *, close: bool, head_only: bool = False) -> bytes:
    """The response of a fixed-response action."""
    body = action.message_body.encode()
    head = _head(action.status_code, date, action.content_type, len(body), close, "")
    return head if head_only else head + body


def redirect(status: int, location: str, date: str, *, close: bool, head_only: bool = False) -> bytes:
    """The response of a redirect action (301 or 302) with ALB's HTML body."""
    body = error_body(status)
    head = _head(status, date, "text/html", len(body), close, f"Location: {location}\r\n")
    return head if head_only else head + body
