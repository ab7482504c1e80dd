"""The pure parts of `pgconn`: the reconnect breaker and the connection options."""

from __future__ import annotations

import pytest

from microforum.services.pgconn import PG_CONNECT_TIMEOUT, Breaker, connect_options


@pytest.mark.parametrize(
    ("failed_at", "now", "refuses"),
    [
        (None, 100.0, None),  # never failed: try
        (100.0, 100.0, "refused"),  # failed just now: fail at once
        (100.0, 100.4, "refused"),
        (100.0, 100.5, None),  # the pause is over: try again
    ],
    ids=["never-failed", "just-failed", "within-pause", "pause-over"],
)
def test_breaker(failed_at: float | None, now: float, refuses: str | None) -> None:
    breaker = Breaker(pause=0.5)
    if failed_at is not None:
        breaker.failed(failed_at, "refused")
    assert breaker.refuses(now) == refuses


def test_breaker_forgets_a_failure_once_a_connect_succeeds() -> None:
    breaker = Breaker(pause=0.5)
    breaker.failed(100.0, "refused")
    breaker.succeeded()
    assert breaker.refuses(100.1) is None
    assert repr(breaker) == "<Breaker failed_at=None cause=''>"


def test_connect_options_add_ours_but_keep_the_urls_own() -> None:
    options = connect_options({"dbname": "users", "keepalives_idle": "60"})
    assert options["connect_timeout"] == str(PG_CONNECT_TIMEOUT)
    assert options["tcp_user_timeout"] == "10000"
    assert "keepalives_idle" not in options  # the URL's value stands
