"""Whether two services gave the same answer, so a speed comparison is like for like (pure)."""

from __future__ import annotations

import json
from typing import Any


def _same(baseline: Any, candidate: Any) -> bool:
    if isinstance(baseline, list):
        return (
            isinstance(candidate, list)
            and len(baseline) == len(candidate)
            and all(_same(b, c) for b, c in zip(baseline, candidate, strict=True))
        )
    if isinstance(baseline, dict):
        # Fields the candidate adds (posts gain an `id`) are allowed; every original one must match.
        return isinstance(candidate, dict) and all(
            k in candidate and _same(v, candidate[k]) for k, v in baseline.items()
        )
    return bool(baseline == candidate)


def difference(baseline: bytes, candidate: bytes) -> str | None:
    """None when `candidate` answers what `baseline` did (same JSON values, same order,
    extra fields allowed); else a short description of the difference."""
    try:
        b, c = json.loads(baseline), json.loads(candidate)
    except ValueError:
        return None if baseline == candidate else "bodies differ (not JSON)"
    if _same(b, c):
        return None
    return f"different JSON: {len(baseline)} vs {len(candidate)} bytes"


def added_fields(baseline: bytes, candidate: bytes) -> set[str]:
    """Top-level object fields the candidate adds (e.g. {'id'}), for the report."""
    try:
        b, c = json.loads(baseline), json.loads(candidate)
    except ValueError:
        return set()
    b_item = b[0] if isinstance(b, list) and b else b
    c_item = c[0] if isinstance(c, list) and c else c
    if isinstance(b_item, dict) and isinstance(c_item, dict):
        return set(c_item) - set(b_item)
    return set()
