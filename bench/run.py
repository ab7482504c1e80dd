#!/usr/bin/env python3
"""Run microforum's benchmarks against the original architecture and write bench/REPORT.md.

    .venv/bin/python bench/run.py [--quick] [--only abcde] [--old-tree DIR]

(a) one service per core vs Koa, (b) LB vs nginx vs HAProxy, (c) whole stack vs nginx + Koa,
(d) writes on SQLite and PostgreSQL, (e) `up` start-up time, (f) RSS (from every run);
not in the default set: (p) as (a) on PostgreSQL, (w) writes vs an older tree (--old-tree).
A part of microforum that is not there yet is skipped with a line in the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mfbench import balancers, plots, report, services, stacks, startup, upgrade
from mfbench.core import BENCH, Context, Settings

STEPS = {
    "a": services.run,
    "b": balancers.run,
    "c": stacks.end_to_end,  # (c) and (d) on SQLite share one stack
    "d": stacks.writes_postgres,
    "e": startup.run,
    "p": services.run_postgres,
    "w": upgrade.run,
}


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios, then write the report, plots and raw results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short set (< 2 minutes)")
    parser.add_argument(
        "--only", default="abcde", help="scenarios to run, e.g. 'ab' or 'pw' (default: abcde)"
    )
    parser.add_argument("--out", default=str(BENCH), help="where REPORT.md and the plots go")
    parser.add_argument("--runs", type=int, default=0, help="measured runs per figure (default: 3)")
    parser.add_argument("--old-tree", default="", help="(w): an older checkout with its own .venv")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(STEPS))
    if unknown:
        parser.error(f"--only: no scenario {', '.join(unknown)} (choose from {''.join(STEPS)})")
    for tool in ("wrk", "nginx", "haproxy", "node", "taskset"):
        if not shutil.which(tool):
            print(
                f"bench: {tool} not found: run `make bench` (it installs wrk, nginx, haproxy)",
                file=sys.stderr,
            )
            return 1
    settings = Settings.quick(args.old_tree) if args.quick else Settings(old_tree=args.old_tree)
    if args.runs > 0:
        settings = dataclasses.replace(settings, runs=args.runs)
    started, t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mfbench-") as tmp:
        ctx = Context(settings, Path(tmp))
        for key in args.only:
            print(f"== scenario {key}", flush=True)
            # What the scenario before wrote (access logs: gigabytes) goes to the disk now, not
            # during this one's runs, where its write-back slowed the commits of (w) (bench/HISTORY.md).
            os.sync()
            t_step = time.monotonic()
            try:
                STEPS[key](ctx)
            except Exception as exc:  # one broken scenario must not lose the others' figures
                traceback.print_exc()
                ctx.note(key, f"scenario failed: {type(exc).__name__}: {exc}")
            print(f"== scenario {key}: {time.monotonic() - t_step:.0f} s", flush=True)
        names = plots.draw(ctx, out)
        report.write(
            ctx,
            out / "REPORT.md",
            names,
            " ".join(sys.argv[1:] if argv is None else argv),
            time.monotonic() - t0,
            started,
        )
        _raw(ctx, out / "results" / "results.json")
    print(f"bench: wrote {out / 'REPORT.md'} in {time.monotonic() - t0:.0f} s")
    return 0


def _raw(ctx: Context, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "cases": [dataclasses.asdict(c) for c in ctx.cases],
        "startup_s": ctx.startup_s,
        "startup_first_s": ctx.startup_first_s,
        "notes": ctx.notes,
    }
    path.write_text(json.dumps(data, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
