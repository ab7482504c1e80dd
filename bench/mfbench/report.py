# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""The Markdown report and its PNG plots, from a finished Context."""

from __future__ import annotations

import math
import platform
import re
import subprocess
from pathlib import Path

from . import stats
from .core import Case, Context

TITLES = {
    "a": "(a) One service process on one core: microforum vs Koa",
    "b": "(b) Load-balancer capacity: microforum vs nginx vs HAProxy",
    "c": "(c) Whole stack end to end (LB + one replica of each service, two cores)",
    "d": "(d) Writes: POST /api/posts with its cross-service checks",
    "e": "(e) `microforum up` start-up time",
    "f": "(f) Memory (RSS) under load",
    "p": "(p) One service process on one core, on PostgreSQL: microforum vs Koa",
    "w": "(w) Writes through the whole stack: this tree vs the pre-issue tree",
}
BASE_NAME = {"a": "Koa", "b": "HAProxy", "c": "nginx + Koa", "d": "(SQLite)", "p": "Koa", "w": "pre-issue"}
SECTIONS = "abcdpwef"


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "missing"
    first = ((done.stdout or done.stderr).strip().splitlines() or ["?"])[0]
    return first.split(" - ")[0].split(" Copyright")[0].replace("version: ", "")[:60]


def machine() -> list[str]:
    """Lines describing the machine and the tools' versions."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return [
        f"- CPU: {model}; CPUs available: {len(__import__('os').sched_getaffinity(0))}",
        f"- Python {platform.python_version()}, node {_version(['node', '--version'])}, "
        f"{_version(['nginx', '-v'])}, {_version(['haproxy', '-v'])}, {_version(['wrk', '-v'])}",
    ]


def _noise(case: Case) -> str:
    worst = max((r.noise_cores for r in case.runs), default=math.nan)
    noisy = sum(r.noisy for r in case.runs)
    return f"{worst:.2f}" + (f" ⚠ {noisy}/{len(case.runs)} noisy" if noisy else "")


def _baseline(ctx: Context, case: Case) -> Case | None:
    base = BASE_NAME.get(case.scenario, "")
    return next(
        (
            c
            for c in ctx.cases
            if c.scenario == case.scenario and c.subject == case.subject and base in c.system and c.runs
        ),
        None,
    )


def _ratios(ctx: Context, case: Case) -> tuple[str, str]:
    """(req/s ratio, CPU ratio) of `case` to its scenario's baseline for the same subject."""
    base = _baseline(ctx, case)
    if base is None:
        return "n/a", "n/a"
    if base is case:
        return "baseline", "baseline"
    name = base.system
    return (
        stats.show_ratio(stats.ratio(case.rps().median, base.rps().median), name),
        stats.show_ratio(stats.ratio(case.cpu().median, base.cpu().median), name),
    )


def case_table(ctx: Context, scenario: str) -> list[str]:
    """One row per case of `scenario`: throughput, ratios, CPU per request, latency, noise."""
    rows = [c for c in ctx.cases if c.scenario == scenario]
    if not rows:
        return []
    extra = " req/s per core |" if scenario == "b" else ""
    out = [
        "| subject | system | req/s median (min–max) | req/s ratio | CPU µs/req | CPU ratio |"
        f"{extra} p50 ms | p99 ms | errors | noise (cores, worst run) |",
        "|---|---|---|---|---|---|" + ("---|" if extra else "") + "---|---|---|---|",
    ]
    for c in rows:
        cpu = c.cpu()
        per_core = ""
        if extra:
            per_core = f" {1e6 / cpu.median:,.0f} |" if cpu.n and cpu.median else " n/a |"
        rps_ratio, cpu_ratio = _ratios(ctx, c)
        out.append(
            f"| {c.subject} | {c.system} | {c.rps().show()} | {rps_ratio} | "
            f"{cpu.show('{:.1f}')} | {cpu_ratio} |{per_core} {c.p50().show('{:.2f}')} | "
            f"{c.p99().show('{:.2f}')} | {c.errors()} | {_noise(c)} |"
        )
    return out


METRIC_NAMES = {
    "rps": "req/s",
    "cpu": "CPU µs/req",
    "p99": "p99 latency",
    "per_cpu": "requests per CPU-second",
}


def goal_table(ctx: Context) -> list[str]:
    """Every figure that has a goal, with its ratio and verdict."""
    out = ["| scenario | figure | ratio (median) | goal | verdict |", "|---|---|---|---|---|"]
    for c in ctx.comparisons:
        if c.goal:
            r = c.ratio()
            metric = METRIC_NAMES[c.metric]
            out.append(
                f"| {c.scenario} | {c.subject}, {metric} | {stats.show_ratio(r, c.baseline.system)} | "
                f"{c.goal.text} | {c.goal.verdict(r)} |"
            )
    lb = next((c for c in ctx.cases if c.scenario == "b" and c.system == "microforum" and c.runs), None)
    if lb:
        peaks = [sum(kb for k, kb in r.rss_kb.items() if k.startswith("lb:")) / 1024 for r in lb.runs]
        mb = stats.summarize(peaks)
        verdict = "met" if mb.median <= RSS_GOAL_MB else "**MISSED**"
        out.append(
            f"| b, f | LB RSS at 64 connections | {mb.show('{:.1f}')} MB | "
            f"≤ {RSS_GOAL_MB:.0f} MB | {verdict} |"
        )
    for scenario in "pw":
        for service, mb in service_rss_mb(ctx, scenario).items():
            out.append(
                f"| {scenario}, f | {service} RSS on PostgreSQL under load (peak per run) | "
                f"{mb.show('{:.1f}')} MB | {SERVICE_RSS_GOAL.text} | {SERVICE_RSS_GOAL.verdict(mb.median)} |"
            )
    if ctx.startup_s:
        s = stats.summarize(ctx.startup_s)
        out.append(
            f"| e | `up` to every target healthy | {s.show('{:.2f}')} s | {UP_TEXT} | "
            f"{UP_GOAL.verdict(s.median)} |"
        )
    return out


UP_GOAL = stats.Goal("at_most", 3.0, "≤ 3 s")
UP_TEXT = UP_GOAL.text
RSS_GOAL_MB = 60.0
SERVICE_RSS_GOAL = stats.Goal("at_most", 45.0, "≤ 45 MB")
ON_POSTGRESQL = {"p": "microforum", "w": "microforum (PostgreSQL)"}  # the systems service_rss_mb reads
SERVE = re.compile(r"microforum serve (\w+)")


def service_rss_mb(ctx: Context, scenario: str) -> dict[str, stats.Summary]:
    """Peak RSS of each microforum service process on PostgreSQL in `scenario`, over its runs."""
    peaks: dict[str, list[float]] = {}
    for c in ctx.cases:
        if c.scenario != scenario or c.system not in ON_POSTGRESQL[scenario]:
            continue
        for r in c.runs:
            for label, kb in r.rss_kb.items():
                found = SERVE.search(label)
                if found and kb:
                    peaks.setdefault(found.group(1), []).append(kb / 1024)
    return {name: stats.summarize(mbs) for name, mbs in sorted(peaks.items())}


def rss_table(ctx: Context) -> list[str]:
    """Peak RSS of every measured process (median of its runs' peaks), by scenario and system."""
    out = ["| scenario | system | process | peak RSS MB (median of runs) |", "|---|---|---|---|"]
    seen: dict[tuple[str, str, str], list[int]] = {}
    for c in ctx.cases:
        for r in c.runs:
            for label, kb in r.rss_kb.items():
                # Labels end with "[pid]"; drop it so a process's runs group together.
                # Client ports of database backends vary by run too.
                name = re.sub(r" ?\S*\(\d+\)", "", label.rsplit(" [", 1)[0])
                seen.setdefault((c.scenario, c.system, name), []).append(kb)
    for (scenario, system, label), kbs in sorted(seen.items()):
        mb = stats.summarize([k / 1024 for k in kbs]).median
        note = ""
        if scenario == "b" and system == "microforum" and label.startswith("lb:"):
            note = f" (goal ≤ {RSS_GOAL_MB:.0f} MB: {'met' if mb <= RSS_GOAL_MB else '**MISSED**'})"
        out.append(f"| {scenario} | {system} | {label} | {mb:.1f}{note} |")
    return out


def write(ctx: Context, path: Path, plots: list[str], options: str, elapsed: float, started: str) -> None:
    """Write the Markdown report; `options` is how `bench/run.py` was called ("" for none)."""
    noisy = sum(r.noisy for c in ctx.cases for r in c.runs)
    total = sum(len(c.runs) for c in ctx.cases)
    lines = [
        "# microforum benchmarks",
        "",
        f"Generated by `{' '.join(['bench/run.py', options]).strip()}` at {started}, "
        f"in {elapsed:.0f} s. {ctx.settings.runs} runs of {ctx.settings.seconds} s per figure after a "
        f"{ctx.settings.warmup} s warm-up; figures are the median with (min–max).",
        "Ratios compare against the baseline measured in the same session on the same machine.",
        "Sessions measured by hand while work was under way, and what each change did: "
        "[`HISTORY.md`](HISTORY.md).",
        "",
        *machine(),
        f"- Noise: CPU used by processes other than those measured (and wrk), from /proc/stat minus "
        f"their /proc/PID/stat, in cores. Runs above {stats.NOISE_THRESHOLD_CORES:.2f} cores are "
        f"flagged ⚠: {noisy} of {total} runs here.",
        "- CPU µs/request: utime+stime deltas of every process of the system under test "
        "(/proc/PID/stat) ÷ requests wrk completed.",
        "",
        *_noise_banner(ctx),
        "## Against the goals",
        "",
        *goal_table(ctx),
        "",
    ]
    for scenario in SECTIONS:
        if (
            scenario in "pw"
            and not any(c.scenario == scenario for c in ctx.cases)
            and scenario not in ctx.notes
        ):
            continue  # not in the default set: no empty section
        lines += [f"## {TITLES[scenario]}", ""]
        lines += [f"- {n}" for n in ctx.notes.get(scenario, [])]
        lines += [""] if ctx.notes.get(scenario) else []
        if scenario == "e":
            lines += _startup_lines(ctx)
        elif scenario == "f":
            lines += rss_table(ctx)
        else:
            lines += case_table(ctx, scenario) or ["Not measured in this session (see the notes above)."]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots]
    path.write_text("\n".join(lines) + "\n")


def _noise_banner(ctx: Context) -> list[str]:
    noise = [r.noise_cores for c in ctx.cases for r in c.runs]
    if not noise or sum(map(stats.is_noisy, noise)) * 2 <= len(noise):
        return []
    typical = stats.summarize(noise).median
    return [
        f"> **This machine was busy during this session**: other processes used {typical:.2f} "
        "cores (median over runs) of its "
        f"{len(ctx.cpus)}. Ratios come from runs interleaved side by side, so both systems "
        "suffered alike, but they are indicative only; CPU µs per request (and requests per "
        "CPU-second) is the figure least affected. Re-run `make bench` on a quiet machine.",
        "",
    ]


def _startup_lines(ctx: Context) -> list[str]:
    if not ctx.startup_s:
        return ["Not measured in this session (see the notes above)."]
    s, first = stats.summarize(ctx.startup_s), stats.summarize(ctx.startup_first_s)
    return [
        "With the repository's stack.yaml (its desired counts: 2 replicas each of users, threads, "
        "posts and 1 monolith), a fresh data directory each time (so seeding is included), from "
        "spawning `microforum up` to every target of every target group `healthy` in its "
        "`/status` (the control channel `microforum status` reads), and to /api/users, "
        "/api/threads, /api/posts and / first answering 200 through its load balancer.",
        "",
        f"- every target healthy: {', '.join(f'{x:.2f} s' for x in ctx.startup_s)}; median "
        f"{s.show('{:.2f}')} s; goal {UP_TEXT}: {UP_GOAL.verdict(s.median)}",
        f"- every route answering: {', '.join(f'{x:.2f} s' for x in ctx.startup_first_s)}; "
        f"median {first.show('{:.2f}')} s",
    ]
