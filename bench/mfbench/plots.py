# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""PNG plots of throughput and latency (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from .core import Case, Context

SCENARIOS = {
    "a": "(a) one core, per route",
    "b": "(b) load balancers",
    "c": "(c) end to end",
    "d": "(d) writes",
}


def _grouped(ax, cases: list[Case], value, low, high, ylabel: str, marker=None) -> None:  # type: ignore[no-untyped-def]
    subjects = list(dict.fromkeys(c.subject for c in cases))
    systems = list(dict.fromkeys(c.system for c in cases))
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        xs, ys, errs_lo, errs_hi, marks = [], [], [], [], []
        for j, subject in enumerate(subjects):
            case = next((c for c in cases if c.subject == subject and c.system == system), None)
            if case and case.runs:
                v = value(case)
                xs.append(j + i * width)
                ys.append(v)
                errs_lo.append(max(0.0, v - low(case)))
                errs_hi.append(max(0.0, high(case) - v))
                marks.append(marker(case) if marker else v)
        ax.bar(xs, ys, width, yerr=[errs_lo, errs_hi], capsize=3, label=system)
        if marker is not None:  # e.g. the median p50 on each p99 bar
            ax.scatter(xs, marks, color="black", marker="_", s=200, zorder=3)
    ax.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(subjects))])
    ax.set_xticklabels([s.replace(" GET ", "\n") for s in subjects], fontsize=7, rotation=20)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)


def draw(ctx: Context, out_dir: Path) -> list[str]:
    """Write throughput.png and latency.png into `out_dir`; their names relative to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [s for s in SCENARIOS if any(c.scenario == s and c.runs for c in ctx.cases)]
    if not present:
        return []
    names = []
    for fname, title, value, low, high, ylabel, marker in (
        (
            "throughput.png",
            "bars median req/s, whiskers min–max",
            lambda c: c.rps().median,
            lambda c: c.rps().low,
            lambda c: c.rps().high,
            "requests/s",
            None,
        ),
        (
            "latency.png",
            "bars p99 (median, whiskers min–max), dashes p50",
            lambda c: c.p99().median,
            lambda c: c.p99().low,
            lambda c: c.p99().high,
            "latency ms",
            lambda c: c.p50().median,
        ),
    ):
        fig, axes = plt.subplots(len(present), 1, figsize=(10, 3.2 * len(present)), squeeze=False)
        for ax, s in zip(axes[:, 0], present, strict=True):
            _grouped(
                ax, [c for c in ctx.cases if c.scenario == s and c.runs], value, low, high, ylabel, marker
            )
            ax.set_title(f"{SCENARIOS[s]}: {title}", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / fname, dpi=90)
        plt.close(fig)
        names.append(fname)
    return names
