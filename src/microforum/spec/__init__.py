"""stack.yaml: its defaults, its typed model and its loader (the one source of truth)."""

from microforum.spec.load import SpecError, load_stack, parse_stack
from microforum.spec.model import Stack

__all__ = ["SpecError", "Stack", "load_stack", "parse_stack"]
