"""Datapoints from running counters (local/datapoints.py; docs/policies.md): periods on a clock
that does not start at 0, a late reading, counters that went back (a restarted load balancer),
and the figures each datapoint carries."""

from __future__ import annotations

from microforum.local.datapoints import Datapoint, PeriodSampler, Reading


def test_periods_on_a_clock_that_does_not_start_at_zero() -> None:
    sampler = PeriodSampler(60.0, 1000.0, Reading(10, 0, 0, None, 0, 2))
    assert sampler.observe(1030.0, Reading(20, 0, 0, 0.1, 0, 2)) is None
    assert sampler.observe(1059.9, Reading(30, 0, 0, 0.1, 0, 2)) is None
    got = sampler.observe(1090.0, Reading(100, 1, 0, 0.2, 1, 3, cpu_percent=42.5))  # a late reading
    assert got == Datapoint(1090.0, 90.0, 90, 1, 0, 0.2, 1, 3, 42.5)
    assert got.requests_per_target == 20.0  # 90 requests in 90 s over 3 targets: 20 a minute
    assert sampler.observe(1149.0, Reading(100, 1, 0, 0.2, 0, 3)) is None  # the next period starts at 1090


def test_counters_that_went_back_count_as_zero_and_keep_no_latency() -> None:
    sampler = PeriodSampler(60.0, 0.0, Reading(500, 20, 30, 0.5, 0, 1))
    assert sampler.observe(60.0, Reading(5, 1, 2, 0.5, 0, 1, cpu_percent=None)) == Datapoint(
        60.0, 60.0, 0, 0, 0, None, 0, 1, None
    )


def test_figures_without_targets_or_requests_are_missing() -> None:
    idle = Datapoint(60.0, 60.0, 0, 0, 0, None, 0, 0, None)
    assert (idle.requests_per_target, idle.error_percent) == (None, None)
    assert Datapoint(60.0, 0.0, 10, 0, 0, None, 0, 1, None).requests_per_target is None
    assert Datapoint(60.0, 60.0, 3, 1, 0, None, 0, 2, None).requests_per_target == 1.5
    assert Datapoint(60.0, 60.0, 7, 0, 0, None, 0, 3, None).requests_per_target == 2.333
    assert Datapoint(60.0, 60.0, 8, 1, 1, None, 0, 1, None).error_percent == 25.0
