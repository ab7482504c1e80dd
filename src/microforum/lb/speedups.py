"""The C helpers of lb/_speedups.c, when they are built.

They are built at install time (setup.py: an optional extension, so an install without a C
compiler goes on without them) and with the compiled load balancer (lb/native.py, loaded by
lb/compiled.py): the interpreted load balancer uses them too. Not built, `helper` gives None
and the callers keep their Python version, which stays the reference (a test checks that the
two agree). An edited _speedups.c takes effect after a reinstall (`make` does it).
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
