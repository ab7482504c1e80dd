"""The C helpers of lb/_speedups.c, when the compiled build provides them.

They are built only with the compiled load balancer (lb/native.py) and loaded with it
(lb/compiled.py); interpreted, `helper` gives None and the callers keep their Python version,
which stays the reference (a test checks that the two agree).
"""

from __future__ import annotations

import importlib
from typing import Any


def helper(name: str) -> Any:
    """The C function `name` of microforum.lb._speedups, or None when it is not built."""
    try:
        module = importlib.import_module("microforum.lb._speedups")
    except ImportError:
        return None
    return getattr(module, name)
