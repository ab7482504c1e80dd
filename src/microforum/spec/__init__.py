"""stack.yaml: its defaults, its typed model and its loader (the one source of truth).

The loader (and PyYAML) is imported on first use, so a service that only reads `defaults`
starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from microforum.spec.model import Stack

if TYPE_CHECKING:
    from microforum.spec.load import SpecError, load_stack, parse_stack

__all__ = ["SpecError", "Stack", "load_stack", "parse_stack"]


def __getattr__(name: str) -> Any:
    if name in ("SpecError", "load_stack", "parse_stack"):
        from microforum.spec import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
