# ruff: noqa: RUF001, RUF002, RUF003  (× and – are the report's notation: "1.62× Koa")
"""Statistics of repeated runs, ratios to a baseline, noise, and goals (pure)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Literal

# A run is flagged when other processes used more than this many cores on average during it.
NOISE_THRESHOLD_CORES = 0.10


@dataclass(frozen=True)
class Summary:
    """Median and range of one figure over its runs."""

    median: float
    low: float
    high: float
    n: int

    def show(self, fmt: str = "{:,.0f}") -> str:
        """`median (min–max)` with `fmt` for each number."""
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return fmt.format(self.median)
        return f"{fmt.format(self.median)} ({fmt.format(self.low)}–{fmt.format(self.high)})"


def summarize(values: list[float]) -> Summary:
    """Median, min and max of the finite `values`."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Summary(math.nan, math.nan, math.nan, 0)
    return Summary(statistics.median(finite), min(finite), max(finite), len(finite))


def ratio(candidate: float, baseline: float) -> float:
    """`candidate / baseline`, NaN when either is missing or the baseline is zero."""
    if not (math.isfinite(candidate) and math.isfinite(baseline)) or baseline == 0:
        return math.nan
    return candidate / baseline


def show_ratio(value: float, unit: str) -> str:
    """`1.62× Koa`, or `n/a` when there is no ratio."""
    return "n/a" if not math.isfinite(value) else f"{value:.2f}× {unit}"


def cpu_us_per_request(ticks: int, hz: int, requests: int) -> float:
    """CPU microseconds per request from a clock-tick delta."""
    if requests <= 0:
        return math.nan
    return ticks / hz * 1e6 / requests


def noise_cores(busy_ticks: int, our_ticks: int, hz: int, seconds: float) -> float:
    """Average cores used by processes other than the measured ones (never below zero)."""
    if seconds <= 0:
        return math.nan
    return max(0, busy_ticks - our_ticks) / hz / seconds


def is_noisy(cores: float, threshold: float = NOISE_THRESHOLD_CORES) -> bool:
    """Whether a run's noise is above the flagging threshold."""
    return math.isfinite(cores) and cores > threshold


@dataclass(frozen=True)
class Goal:
    """A target for a figure: at least / at most `target`."""

    kind: Literal["at_least", "at_most"]
    target: float
    text: str  # how the report states it, e.g. "≥ 1.5× Koa"

    def met(self, value: float) -> bool | None:
        """True/False against the target; None when the figure is missing."""
        if not math.isfinite(value):
            return None
        return value >= self.target if self.kind == "at_least" else value <= self.target

    def verdict(self, value: float) -> str:
        """A short word for the report: met, MISSED or n/a."""
        met = self.met(value)
        return "n/a" if met is None else ("met" if met else "**MISSED**")
