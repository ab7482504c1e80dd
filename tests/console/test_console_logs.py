"""The console's access-log lines: ALB's format parsed, filtered, the newest first."""

from __future__ import annotations

from pathlib import Path

import pytest

from microforum.console.logs import parse_line, select, tail

ARN = "arn:aws:elasticloadbalancing:local:000000000000:targetgroup/{}/shop"


def line(status: int, target_status: str, group: str, path: str = "/api/users", n: int = 1) -> bytes:
    target = "127.0.0.1:4001" if target_status != "-" else "-"
    return (
        f"http 2026-12-05T03:29:12.36963{n}Z app/shop/local 127.0.0.1:57202 {target} 0.000 0.002 0.000 "
        f'{status} {target_status} 94 278 "GET http://127.0.0.1:8080{path} HTTP/1.1" "curl/7.88.1" - - '
        f'{ARN.format(group) if group else "-"} "Root=1-6b138508-{n:024x}" "-" "-" 2 '
        f'2026-12-05T03:29:12.369320Z "forward" "-" "-" "{target}" "{target_status}" "-" "-" TID_a3'
    ).encode()


def test_a_line_parsed() -> None:
    assert parse_line(line(404, "404", "threads", "/api/threads/9")) == {
        "time": "2026-12-05T03:29:12.369631Z",
        "trace_id": "Root=1-6b138508-000000000000000000000001",
        "request": "GET http://127.0.0.1:8080/api/threads/9 HTTP/1.1",
        "short": "GET /api/threads/9",
        "status": 404,
        "target_status": "404",
        "target": "127.0.0.1:4001",
        "group": "threads",
        "target_time": "0.002",
        "rule": "2",
        "error": "-",
    }


@pytest.mark.parametrize("text", [b"", b"not a log line", b"http x y z", line(200, "200", "web")[:-40]])
def test_what_is_not_a_line_is_left_out(text: bytes) -> None:
    assert parse_line(text) is None


LINES = [
    line(200, "200", "users", n=1),
    line(503, "-", "users", n=2),
    line(418, "-", "", n=3),
    line(500, "500", "posts", n=4),
    b"garbage",
    line(201, "201", "posts", n=5),
]


@pytest.mark.parametrize(
    ("group", "status", "limit", "expected"),
    [
        ("", "", 50, [5, 4, 3, 2, 1]),
        ("", "", 2, [5, 4]),
        ("users", "", 50, [2, 1]),
        ("", "5xx", 50, [4, 2]),
        ("", "elb", 50, [3, 2]),
        ("posts", "2xx", 50, [5]),
        ("threads", "", 50, []),
    ],
)
def test_filters_by_group_and_status(group: str, status: str, limit: int, expected: list[int]) -> None:
    picked = select(LINES, group, status, limit)
    assert [int(e["trace_id"][-2:], 16) for e in picked] == expected


def test_tail_reads_whole_lines_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    assert tail(path) == []
    path.write_bytes(b"first line\nsecond line\nthird\n")
    assert tail(path) == [b"first line", b"second line", b"third"]
    assert tail(path, size=16) == [b"third"]  # "second line" is cut, so left out
