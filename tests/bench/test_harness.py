# ruff: noqa: RUF001, RUF003  (× and – are the report's notation: "1.62× Koa")
"""The benchmark harness's pure parts: wrk and /proc parsing, statistics, noise, configs, report.

No speed is asserted here; the benchmarks themselves run with `make bench`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from mfbench import configs, procfs, report, stats, wrk
from mfbench.core import Case, Context, Settings
from mfbench.measure import Run

from microforum.spec.load import parse_stack

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:41234/api/users
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.05ms  412.44us  10.11ms   91.80%
    Req/Sec    21.05k     1.13k   22.44k    82.00%
  Latency Distribution
     50%  987.00us
     75%    3.10ms
     90%    3.30ms
     99%    1.02s
  104723 requests in 5.00s, 20.18MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:  20940.61
Transfer/sec:      4.03MB
"""


def test_parse_wrk_reads_totals_percentiles_and_errors() -> None:
    r = wrk.parse(WRK_OUTPUT)
    assert (r.requests, r.duration_s, r.rps) == (104723, 5.0, 20940.61)
    assert (r.p50_ms, r.p75_ms, r.p90_ms, r.p99_ms) == pytest.approx((0.987, 3.10, 3.30, 1020.0))
    assert (r.non_2xx_3xx, r.socket_errors) == (12, 7)


def test_parse_wrk_without_errors_counts_zero() -> None:
    text = WRK_OUTPUT.replace("  Socket errors: connect 0, read 2, write 1, timeout 4\n", "")
    text = text.replace("  Non-2xx or 3xx responses: 12\n", "").replace("in 5.00s", "in 1.00m")
    r = wrk.parse(text)
    assert (r.non_2xx_3xx, r.socket_errors, r.duration_s) == (0, 0, 60.0)


def test_parse_wrk_refuses_output_without_a_summary() -> None:
    with pytest.raises(ValueError, match="not a wrk summary"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("value", "unit", "ms"),
    [("412.44", "us", 0.41244), ("3.05", "ms", 3.05), ("1.5", "s", 1500.0), ("2", "m", 120000.0)],
)
def test_to_ms(value: str, unit: str, ms: float) -> None:
    assert wrk.to_ms(value, unit) == pytest.approx(ms)


def test_wrk_argv_and_scripts() -> None:
    assert wrk.argv("http://h/", 64, 5, "/s.lua") == [
        "wrk",
        "-t1",
        "-c64",
        "-d5s",
        "--latency",
        "-s",
        "/s.lua",
        "http://h/",
    ]
    mix = wrk.rotate_script(["/api/users", "/api/users/2"])
    assert '{"/api/users", "/api/users/2"}' in mix and "wrk.format" in mix
    post = wrk.post_script("/api/posts", {"thread": 1})
    assert 'wrk.method = "POST"' in post and '"{\\"thread\\": 1}"' in post


def test_parse_pid_stat_with_spaces_and_parentheses_in_the_name() -> None:
    fields = ["S", "41"] + ["0"] * 9 + ["250", "30"] + ["0"] * 10
    st = procfs.parse_pid_stat("1234 (node (worker) x) " + " ".join(fields))
    assert (st.pid, st.ppid, st.cpu_ticks) == (1234, 41, 280)


def test_parse_vmrss_and_busy_ticks() -> None:
    assert procfs.parse_vmrss_kb("Name:\tnode\nVmRSS:\t   51200 kB\n") == 51200
    assert procfs.parse_vmrss_kb("Name:\tkthreadd\n") == 0
    # user nice system idle iowait irq softirq steal: irq/softirq/idle/iowait are not counted.
    assert procfs.parse_busy_ticks("cpu  100 5 20 9000 7 3 11 2 0 0\ncpu0 1 2 3\n") == 127
    with pytest.raises(ValueError):
        procfs.parse_busy_ticks("intr 1 2 3\n")


def test_live_proc_readers_see_this_process() -> None:
    assert procfs.read_rss_kb(1 << 30) == 0  # no such pid
    import os

    assert os.getpid() in procfs.descendants(os.getppid())
    assert procfs.read_rss_kb(os.getpid()) > 0


def test_summarize_ignores_missing_values() -> None:
    s = stats.summarize([3.0, math.nan, 1.0, 2.0])
    assert (s.median, s.low, s.high, s.n) == (2.0, 1.0, 3.0, 3)
    assert s.show() == "2 (1–3)"
    assert stats.summarize([]).show() == "n/a"


@pytest.mark.parametrize(
    ("candidate", "baseline", "shown"),
    [(32_400.0, 20_000.0, "1.62× Koa"), (1.0, 0.0, "n/a"), (math.nan, 2.0, "n/a")],
)
def test_ratio(candidate: float, baseline: float, shown: str) -> None:
    assert stats.show_ratio(stats.ratio(candidate, baseline), "Koa") == shown


def test_cpu_per_request_and_noise() -> None:
    # 250 ticks at 100 Hz = 2.5 s of CPU over 100,000 requests = 25 µs each.
    assert stats.cpu_us_per_request(250, 100, 100_000) == pytest.approx(25.0)
    assert math.isnan(stats.cpu_us_per_request(5, 100, 0))
    # 700 busy ticks in 5 s, 650 of them ours: others used 0.1 cores.
    assert stats.noise_cores(700, 650, 100, 5.0) == pytest.approx(0.1)
    assert stats.noise_cores(600, 650, 100, 5.0) == 0.0  # never negative
    assert stats.is_noisy(0.25) and not stats.is_noisy(0.05) and not stats.is_noisy(math.nan)


@pytest.mark.parametrize(
    ("kind", "target", "value", "verdict"),
    [
        ("at_least", 1.5, 1.62, "met"),
        ("at_least", 1.5, 1.2, "**MISSED**"),
        ("at_most", 1.1, 1.05, "met"),
        ("at_most", 3.0, 3.4, "**MISSED**"),
        ("at_most", 3.0, math.nan, "n/a"),
    ],
)
def test_goal_verdicts(kind: str, target: float, value: float, verdict: str) -> None:
    assert stats.Goal(kind, target, "").verdict(value) == verdict  # type: ignore[arg-type]


def test_generated_stacks_pass_the_real_loader() -> None:
    lb = parse_stack(configs.lb_stack(18080, "/tmp/d", ["python", "backend.py"]))
    assert [s.name for s in lb.services] == ["backend"] and lb.listener.rules == ()
    forum = parse_stack(configs.forum_stack(18081, "/tmp/d", {"posts": "postgresql://x/posts"}))
    assert [r.priority for r in forum.listener.rules] == [1, 2, 3]
    assert forum.service("posts").environment == (("DATABASE_URL", "postgresql://x/posts"),)
    assert forum.local.port == 18081


def test_proxy_configs_route_log_and_keep_alive() -> None:
    conf = configs.nginx_conf("/t", 8000, {"users": 9001}, {"/api/users": "users"})
    assert "server 127.0.0.1:9001; keepalive 64;" in conf
    assert "location /api/users { proxy_pass http://users; }" in conf
    assert "location / { return 404; }" in conf and "access_log /t/nginx-access.log" in conf
    cfg = configs.haproxy_cfg(8000, 9001)
    assert "bind 127.0.0.1:8000" in cfg and "server s1 127.0.0.1:9001" in cfg
    assert "option httplog" in cfg and "option forwardfor" in cfg


def _run(rps: float, cpu: float, noise: float = 0.0) -> Run:
    result = wrk.WrkResult(int(rps), 1.0, rps, 1.0, 1.5, 2.0, 3.0, 0, 0)
    return Run(result, {"server": cpu}, {"server: node server.js [1]": 40_000}, noise)


def test_report_table_states_ratios_and_flags_noise(tmp_path: Path) -> None:
    ctx = Context(Settings.quick(), tmp_path)
    koa = Case("a", "users GET /api/users", "Koa", [_run(20_000, 50), _run(19_000, 52), _run(21_000, 48)])
    mf = Case("a", "users GET /api/users", "microforum", [_run(32_400, 30), _run(30_000, 31, 0.5)])
    ctx.cases += [koa, mf]
    table = "\n".join(report.case_table(ctx, "a"))
    assert "| users GET /api/users | microforum | 31,200 (30,000–32,400) | 1.56× Koa |" in table
    assert "⚠ 1/2 noisy" in table and "| baseline |" in table
    rss = "\n".join(report.rss_table(ctx))
    assert "| a | Koa | server: node server.js | 39.1 |" in rss


def test_per_cpu_ratio_is_the_inverse_of_the_cpu_ratio(tmp_path: Path) -> None:
    from mfbench.core import Comparison

    koa = Case("a", "s", "Koa", [_run(20_000, 60)])
    mf = Case("a", "s", "microforum", [_run(25_000, 30)])
    assert Comparison("a", "s", mf, koa, "per_cpu").ratio() == pytest.approx(2.0)
    assert Comparison("a", "s", mf, koa, "cpu").ratio() == pytest.approx(0.5)
    assert Comparison("a", "s", mf, koa, "rps").ratio() == pytest.approx(1.25)


def test_plots_and_report_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")  # the `bench` extra
    from mfbench import plots

    ctx = Context(Settings.quick(), tmp_path)
    ctx.cases += [
        Case("a", "users GET /api/users", "Koa", [_run(20_000, 50)] * 3),
        Case("a", "users GET /api/users", "microforum", [_run(30_000, 30)] * 3),
    ]
    names = plots.draw(ctx, tmp_path)
    assert names == ["throughput.png", "latency.png"]
    assert all((tmp_path / n).read_bytes().startswith(b"\x89PNG") for n in names)
    report.write(ctx, tmp_path / "REPORT.md", names, "--quick --only a", 1.0, "now")
    text = (tmp_path / "REPORT.md").read_text()
    assert "Generated by `bench/run.py --quick --only a` at now" in text
    assert "![throughput.png](throughput.png)" in text
    assert "Not measured in this session" in text  # the scenarios that did not run say so


@pytest.mark.parametrize(
    ("koa", "mf", "same"),
    [
        (b'[{"thread":1,"user":4}]', b'[{"thread":1,"user":4,"id":1}]', True),  # a new field
        (b'[{"thread":1,"user":4}]', b'[{"user":4,"thread":1}]', True),  # key order is free
        (b'[{"id":1},{"id":2}]', b'[{"id":2},{"id":1}]', False),  # list order is not
        (b'[{"id":1},{"id":2}]', b'[{"id":1}]', False),  # a page instead of the list
        (b'{"id":2,"name":"finn"}', b'{"id":2,"name":"Finn"}', False),
        (b"Ready to receive requests", b"Ready to receive requests", True),
    ],
)
def test_answers_must_match_the_baseline(koa: bytes, mf: bytes, same: bool) -> None:
    from mfbench import answers

    assert (answers.difference(koa, mf) is None) is same


def test_added_fields_are_named() -> None:
    from mfbench import answers

    assert answers.added_fields(b'[{"thread":1}]', b'[{"thread":1,"id":1}]') == {"id"}
    assert answers.added_fields(b"[]", b"[]") == set()


def test_every_target_healthy_needs_the_desired_count() -> None:
    from mfbench import startup

    status = {
        "target_groups": {
            "users": {"targets": [{"state": "healthy"}, {"state": "initial"}]},
            "posts": {"targets": [{"state": "healthy"}, {"state": "healthy"}]},
        }
    }
    counts = startup.healthy_counts(status)
    assert counts == {"users": 1, "posts": 2}
    assert startup.all_healthy(counts, {"posts": 2})
    assert not startup.all_healthy(counts, {"users": 2, "posts": 2})
    assert not startup.all_healthy(counts, {"threads": 1})  # no group yet
