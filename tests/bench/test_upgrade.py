# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""The harness of scenarios (p) reads on PostgreSQL and (w) writes vs an older tree: pure parts.

No speed is asserted here; the scenarios run with `bench/run.py --only pw`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from mfbench import report, upgrade, wrk
from mfbench.core import MICROFORUM, REPO, Case, Comparison, Context, Settings
from mfbench.measure import Run

BENCH = REPO / "bench"


def _run(rps: float, cpu: float, rss: dict[str, int] | None = None) -> Run:
    result = wrk.WrkResult(int(rps), 1.0, rps, 1.0, 1.5, 2.0, 3.0, 0, 0)
    return Run(result, {"server": cpu, "stack": cpu}, rss or {}, 0.0)


def test_each_system_has_its_own_databases() -> None:
    old, new = upgrade.database_names(upgrade.OLD), upgrade.database_names(upgrade.NEW)
    assert set(old) == set(new) == {"users", "threads", "posts"}
    assert not set(old.values()) & set(new.values())


def test_the_other_systems_connections_are_not_counted() -> None:
    pids = {
        1: "postgres -D /x/data -k /x -h 127.0.0.1 -p 5999",
        2: "postgres: walwriter",
        3: "postgres: postgres new_posts 127.0.0.1(40000) idle",
        4: "postgres: postgres old_posts 127.0.0.1(40002) COMMIT",
        5: "postgres: postgres old_users 127.0.0.1(40004) idle",
    }
    assert upgrade.own_database_pids(pids, upgrade.NEW) == [1, 2, 3]
    assert upgrade.own_database_pids(pids, upgrade.OLD) == [1, 2, 4, 5]


def test_each_tree_runs_its_own_microforum(tmp_path: Path) -> None:
    assert upgrade.microforum_of(REPO) == MICROFORUM
    assert upgrade.microforum_of(tmp_path) == str(tmp_path / ".venv" / "bin" / "microforum")


def test_each_tree_builds_its_load_balancer_with_its_own_python(tmp_path: Path) -> None:
    assert upgrade.python_of(tmp_path) == str(tmp_path / ".venv" / "bin" / "python")
    assert upgrade.python_of(REPO) == str(Path(MICROFORUM).parent / "python")


def test_the_report_says_which_load_balancer_each_stack_ran(tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    assert upgrade.lb_mode(log) == "load balancer: not said"
    log.write_text(
        "microforum  | users-1 serving\n"
        "microforum  | load balancer compiled with mypyc (17 modules, build e7499391ce7b)\n"
    )
    assert upgrade.lb_mode(log) == "load balancer compiled with mypyc (17 modules, build e7499391ce7b)"
    log.write_text("microforum: load balancer interpreted (no compiled build of this source yet; …)\n")
    assert upgrade.lb_mode(log).startswith("load balancer interpreted (no compiled build")


def test_an_old_tree_without_its_venv_is_named_with_the_fix(tmp_path: Path) -> None:
    assert "--old-tree" in (upgrade.old_tree_missing("") or "")
    assert "pip install -e ." in (upgrade.old_tree_missing(str(tmp_path)) or "")
    command = tmp_path / ".venv" / "bin" / "microforum"
    command.parent.mkdir(parents=True)
    command.touch()
    assert upgrade.old_tree_missing(str(tmp_path)) is None


def test_writes_are_compared_with_the_old_tree_of_the_same_store(tmp_path: Path) -> None:
    ctx = Context(Settings.quick(), tmp_path)
    subject = "POST /api/posts (PostgreSQL)"
    old = Case("w", subject, "pre-issue (PostgreSQL)", [_run(900, 2000), _run(800, 2100)], "stack")
    new = Case("w", subject, "microforum (PostgreSQL)", [_run(3600, 500), _run(3400, 600)], "stack")
    sqlite = Case("w", "POST /api/posts (SQLite)", "pre-issue (SQLite)", [_run(10, 1)], "stack")
    ctx.cases += [sqlite, old, new]
    ctx.comparisons.append(Comparison("w", subject, new, old, "rps", upgrade.GOAL))
    table = "\n".join(report.case_table(ctx, "w"))
    assert "| microforum (PostgreSQL) | 3,500 (3,400–3,600) | 4.12× pre-issue (PostgreSQL) |" in table
    assert "| 550.0 (500.0–600.0) | 0.27× pre-issue (PostgreSQL) |" in table
    goals = "\n".join(report.goal_table(ctx))
    assert (
        "| w | POST /api/posts (PostgreSQL), req/s | 4.12× pre-issue (PostgreSQL) | ≥ 4× pre-issue | met |"
        in goals
    )


def test_service_memory_on_postgresql_has_a_goal_row(tmp_path: Path) -> None:
    ctx = Context(Settings.quick(), tmp_path)
    mb = 1024
    runs = [
        _run(
            1,
            1,
            {"server: python microforum serve users [7]": 44 * mb, "server: postgres: walwriter [8]": 9 * mb},
        ),
        _run(1, 1, {"server: python microforum serve users [7]": 46 * mb}),
        _run(1, 1, {"server: python microforum serve users [7]": 47 * mb}),
    ]
    ctx.cases += [
        Case("p", "users GET /api/users", "microforum", runs),
        Case("p", "users GET /api/users", "Koa", [_run(1, 1, {"server: node server.js users [9]": 90 * mb})]),
        Case(
            "w",
            "POST",
            "microforum (PostgreSQL)",
            [_run(1, 1, {"stack: python -m microforum serve posts": mb})],
        ),
        Case(
            "w", "POST", "microforum (SQLite)", [_run(1, 1, {"stack: python -m microforum serve users": mb})]
        ),
        Case(
            "w",
            "POST",
            "pre-issue (PostgreSQL)",
            [_run(1, 1, {"stack: python -m microforum serve users": mb})],
        ),
    ]
    sizes = report.service_rss_mb(ctx, "p")
    assert list(sizes) == ["users"]  # neither Koa nor the database server
    assert (sizes["users"].median, sizes["users"].low, sizes["users"].high) == (46, 44, 47)
    assert list(report.service_rss_mb(ctx, "w")) == ["posts"]  # this tree's, on PostgreSQL only
    goals = "\n".join(report.goal_table(ctx))
    assert (
        "| users RSS on PostgreSQL under load (peak per run) | 46.0 (44.0–47.0) MB | ≤ 45 MB | **MISSED** |"
        in goals
    )


def test_the_optional_scenarios_have_a_section_only_when_run(tmp_path: Path) -> None:
    ctx = Context(Settings.quick(), tmp_path)
    report.write(ctx, tmp_path / "a.md", [], "quick", 1.0, "now")
    assert "## (p)" not in (tmp_path / "a.md").read_text()
    ctx.note("p", "PostgreSQL not available: initdb: no")
    report.write(ctx, tmp_path / "b.md", [], "quick", 1.0, "now")
    text = (tmp_path / "b.md").read_text()
    assert "## (p) One service process on one core, on PostgreSQL" in text
    assert "- PostgreSQL not available: initdb: no" in text and "## (w)" not in text


def test_an_unknown_scenario_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--only", "az"])
    assert exit_info.value.code == 2
    assert "no scenario z (choose from abcdepw)" in capsys.readouterr().err
