"""Reading a YAML document with its key paths, so every refusal names where it is.

`Node` wraps a value and the path that led to it (`services.posts.health_check.interval`);
its readers check a type and a range and raise `SpecError` worded as
`stack.yaml: services.posts.health_check.interval: must be 5..300, got 1`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from microforum.errors import UsageError

T = TypeVar("T")


class SpecError(UsageError):
    """stack.yaml is not a valid stack."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")
        self.path = path
        self.problem = problem


# ALB's allowed characters (docs/alb.md §A; ELBv2 API *ConditionConfig).


class Node:
    """A value from the YAML document and the key path that led to it."""

    def __init__(self, source: str, path: str, value: Any) -> None:
        self.source, self.path, self.value = source, path, value

    def fail(self, problem: str) -> SpecError:
        return SpecError(self.source, self.path, problem)

    def child(self, key: str | int, value: Any) -> Node:
        sep = f"[{key}]" if isinstance(key, int) else (f".{key}" if self.path else key)
        return Node(self.source, f"{self.path}{sep}", value)

    def mapping(self, allowed: tuple[str, ...]) -> dict[str, Node]:
        if self.value is None:
            return {}
        if not isinstance(self.value, Mapping):
            raise self.fail(f"must be a mapping, got {show(self.value)}")
        for key in self.value:
            if key not in allowed:
                raise self.child(str(key), None).fail(f"unknown key, expected one of: {', '.join(allowed)}")
        return {str(k): self.child(str(k), v) for k, v in self.value.items()}

    def items(self) -> list[Node]:
        values = self.value if isinstance(self.value, list) else [self.value]
        return [self.child(i, v) for i, v in enumerate(values)]

    def integer(self, low: int, high: int) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.fail(f"must be an integer, got {show(self.value)}")
        if not low <= self.value <= high:
            raise self.fail(f"must be {low}..{high}, got {self.value}")
        return self.value

    def number(self, low: float, high: float) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.fail(f"must be a number, got {show(self.value)}")
        if not low <= self.value <= high:
            raise self.fail(f"must be {low}..{high}, got {self.value}")
        return float(self.value)

    def string(self, pattern: re.Pattern[str] | None = None, what: str = "", max_len: int = 0) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail(f"must be a non-empty string, got {show(self.value)}")
        if max_len and len(self.value) > max_len:
            raise self.fail(f"must be at most {max_len} characters, got {len(self.value)}")
        if pattern is not None and not pattern.match(self.value):
            raise self.fail(f"must be {what}, got {show(self.value)}")
        return self.value

    def choice(self, options: tuple[str, ...]) -> str:
        if self.value not in options:
            raise self.fail(f"must be one of {', '.join(options)}, got {show(self.value)}")
        return str(self.value)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail(f"must be true or false, got {show(self.value)}")
        return self.value


def show(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def optional(fields: dict[str, Node], key: str, read: Callable[[Node], T], default: T) -> T:
    node = fields.get(key)
    return default if node is None or node.value is None else read(node)
