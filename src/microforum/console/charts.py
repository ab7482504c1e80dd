"""Small line charts as SVG (pure), drawn as CloudWatch draws a metric over a time range.

A chart has a title, one or more lines (label, colour, values oldest first, None for a gap),
a y axis from 0 to a round maximum, and the latest value of each line in its legend. The x
axis spans the whole history, so a stack that just started fills from the right.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from microforum.console.history import Value

W, H = 268, 132
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 38, 18  # margins around the plot area
Line = tuple[str, str, Sequence[Value]]


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale  # pragma: no cover - the loop above always returns


def render_chart(
    title: str, lines: Sequence[Line], unit: str = "", minutes: float = 10, total: bool = False
) -> str:
    """An SVG chart of `lines`; the legend gives each line's latest value followed by `unit`,
    or with `total` the sum over the chart (counts: "how many in the last minutes")."""
    top_value = nice_ceiling(max((v for _, _, vs in lines for v in vs if v is not None), default=0))
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)}">',
        f'<text class="chart-title" x="4" y="13">{escape(title)}</text>',
        _legend(lines, unit, total),
        _grid(top_value, plot_w, plot_h),
        f'<text class="axis" x="{LEFT}" y="{H - 4}">{_number(minutes)} min ago</text>',
        f'<text class="axis" x="{W - RIGHT}" y="{H - 4}" text-anchor="end">now</text>',
    ]
    for _, colour, values in lines:
        for points in _runs(values, top_value, plot_w, plot_h):
            parts.append(f'<polyline class="series" stroke="{colour}" points="{points}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(lines: Sequence[Line], unit: str, total: bool) -> str:
    out, x = [], 4
    for label, colour, values in lines:
        known = [v for v in values if v is not None]
        shown = sum(known) if total else known[-1] if known else None
        text = f"{label} {'-' if shown is None else _number(shown)}{unit}"
        out.append(
            f'<rect x="{x}" y="21" width="9" height="9" fill="{colour}"/>'
            f'<text class="legend" x="{x + 12}" y="29">{escape(text)}</text>'
        )
        x += 18 + 6 * len(text)
    return "".join(out)


def _grid(top_value: float, plot_w: int, plot_h: int) -> str:
    out = []
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{LEFT + plot_w}" y2="{y}"/>')
        out.append(
            f'<text class="axis" x="{LEFT - 4}" y="{y + 3}" text-anchor="end">'
            f"{_number(top_value * fraction)}</text>"
        )
    return "".join(out)


def _runs(values: Sequence[Value], top_value: float, plot_w: int, plot_h: int) -> list[str]:
    """The polylines' point lists: one per run of values without a gap."""
    step = plot_w / max(1, len(values) - 1)
    runs: list[list[str]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        x = LEFT + index * step
        y = TOP + plot_h * (1 - value / top_value)
        runs[-1].append(f"{x:.1f},{y:.1f}")
    # A lone value is a dot: a zero-length line with round caps.
    return [" ".join(run if len(run) > 1 else run * 2) for run in runs if run]


def _number(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}".rstrip("0")
