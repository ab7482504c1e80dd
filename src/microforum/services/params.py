"""Path and query parameters: ids compared the way the original compared them, and pages.

The original looked records up with JavaScript's loose equality between a number and the path
segment (`user.id == this.params.userId`), which converts the string with `Number()`: `1`,
`01`, `1.0`, `1e0`, ` 1 ` and `0x1` all find record 1, anything else finds nothing. `loose_id`
reproduces that conversion, so every URL that found a record still does, and every id in a URL
is read with it, in the path and in the query (`createdBy`, `cursor`) alike. A `limit` is a
count, not an id: a whole number, written in digits.

Lists answer the whole list, exactly as the original did, unless `limit` or `cursor` is given;
then they answer one page (still a plain JSON array) and, when more remain, a `Link: <...>;
rel="next"` header and an `X-Next-Cursor` header with the opaque cursor of the next page.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from microforum.services.http import Headers, HttpError, Request
from microforum.services.model import MAX_ID

MAX_LIMIT = 1000
# JavaScript's StringNumericLiteral (ECMA-262 7.1.4.1.1), after trimming white space.
_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_RADIX = re.compile(r"0(?:[xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def js_number(text: str) -> float:
    """`Number(text)` as JavaScript computes it (NaN for anything not numeric)."""
    text = text.strip()
    if not text:
        return 0.0
    if _RADIX.fullmatch(text):
        return float(int(text, 0))
    if _DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    return float("nan")


def loose_id(text: str) -> int | None:
    """The record id that `id == text` finds in JavaScript, or None when no id can match."""
    if text.isascii() and text.isdigit():  # the common case, exact (no float round trip)
        value = int(text)
        return value if 1 <= value <= MAX_ID else None
    number = js_number(text)
    if number != number or number in (float("inf"), float("-inf")) or not number.is_integer():
        return None
    value = int(number)
    return value if 1 <= value <= MAX_ID else None


@dataclass(frozen=True)
class Page:
    """Which slice of a list to answer: ids after `after`, at most `limit` (None: all)."""

    after: int = 0
    limit: int | None = None


ALL = Page()


def _positive(query: dict[str, str], name: str, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise HttpError(400, f"{name}: must be a whole number 1..{high}, got {raw!r}", field=name)
    return int(raw)


def _id(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    value = loose_id(raw)
    if value is None:
        raise HttpError(400, f"{name}: must be an id 1..{MAX_ID}, got {raw!r}", field=name)
    return value


def page_of(request: Request) -> Page:
    """The page a request asks for (400 naming `limit` or `cursor` when malformed)."""
    if not request.query_string:
        return ALL
    query = request.query
    limit = _positive(query, "limit", MAX_LIMIT)
    after = _id(query, "cursor")
    if limit is None and after is None:
        return ALL
    return Page(after=after or 0, limit=limit or MAX_LIMIT)


def int_query(request: Request, name: str) -> int | None:
    """An optional id-valued query parameter (400 naming it when malformed)."""
    return _id(request.query, name) if request.query_string else None


def fetch_limit(page: Page) -> int | None:
    """How many rows to read: one more than the page, to know whether another page follows."""
    return None if page.limit is None else page.limit + 1


def paginate(items: list[Any], page: Page, request: Request) -> tuple[list[Any], Headers]:
    """Trim `items` (read with `fetch_limit`) to the page; headers pointing at the next one."""
    if page.limit is None or len(items) <= page.limit:
        return items, []
    items = items[: page.limit]
    cursor = str(items[-1].id)
    query = {**request.query, "limit": str(page.limit), "cursor": cursor}
    link = f'<{urllib.parse.quote(request.path)}?{urllib.parse.urlencode(query)}>; rel="next"'
    return items, [("link", link), ("x-next-cursor", cursor)]
