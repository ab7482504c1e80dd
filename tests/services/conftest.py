"""Fixtures of the services tests: services on fresh seed data, shared per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_helpers import Service, serving


@pytest.fixture(scope="module")
def monolith(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The monolith on fresh seed data (SQLite), shared by a module's tests."""
    with serving("monolith", tmp_path_factory.mktemp("monolith")) as service:
        yield service
