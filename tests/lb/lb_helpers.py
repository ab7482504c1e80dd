"""Helpers for the load-balancer tests: stacks built from small YAML documents."""

from __future__ import annotations

from typing import Any

import yaml

from microforum.spec.load import parse_stack
from microforum.spec.model import Stack

BASE = """
name: t
services:
  users: {command: "true"}
  threads: {command: "true"}
  posts: {command: "true"}
  monolith: {command: "true"}
"""


def stack(extra: str = "", **overrides: Any) -> Stack:
    """A stack with the four services as commands plus `extra` YAML merged at the top level."""
    data = yaml.safe_load(BASE)
    data.update(yaml.safe_load(extra) or {})
    data.update(overrides)
    return parse_stack(data, "test.yaml")
