"""Sub-commands of this area (filled in by its issue)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this area's sub-commands to the `microforum` parser."""
