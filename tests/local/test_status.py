"""`microforum status` text from a /status answer (the shape LoadBalancer.describe() gives)."""

from __future__ import annotations

from microforum.local.status import format_status

BODY = {
    "stack": "microforum",
    "url": "http://127.0.0.1:8080",
    "target_groups": {
        "users": {
            "targets": [
                {"id": "users-2", "host": "127.0.0.1", "port": 40002, "state": "unhealthy",
                 "reason": "Target.ResponseCodeMismatch",
                 "description": "Health checks failed with these codes: [503]",
                 "last_failure": "Target.ResponseCodeMismatch: Health checks failed with these "
                                 "codes: [503]", "in_flight": 0},
                {"id": "users-1", "host": "127.0.0.1", "port": 40001, "state": "healthy",
                 "reason": None, "description": None, "last_failure": None, "in_flight": 0},
            ],
            "metrics": {"RequestCount": 12, "HTTPCode_Target_4XX_Count": 1,
                        "HTTPCode_Target_5XX_Count": 2, "HTTPCode_ELB_5XX_Count": 3,
                        "TargetResponseTime_p50": 0.0012, "TargetResponseTime_p99": 0.0305},
        },
        "posts": {"targets": [], "metrics": {"RequestCount": 0}},
    },
    "replicas": [],
}  # fmt: skip


def test_status_reads_like_describe_target_health_plus_the_figures() -> None:
    assert format_status(BODY).splitlines() == [
        "stack microforum at http://127.0.0.1:8080",
        "",
        "target group users",
        "  TARGET   PORT   STATE      REASON                       DESCRIPTION",
        "  users-1  40001  healthy    -                            -",
        "  users-2  40002  unhealthy  Target.ResponseCodeMismatch  Health checks failed with these "
        "codes: [503]",
        "  last failure of users-2: Target.ResponseCodeMismatch: Health checks failed with these "
        "codes: [503]",
        "  requests 12  target 4xx 1  target 5xx 2  elb 5xx 3  p50 1.2 ms  p99 30.5 ms",
        "",
        "target group posts",
        "  (no registered targets)",
        "  requests 0  target 4xx 0  target 5xx 0  elb 5xx 0  p50 -  p99 -",
    ]


def test_status_names_the_console_when_up_serves_one() -> None:
    lines = format_status(BODY | {"console_url": "http://127.0.0.1:4242/?token=abc"}).splitlines()
    assert lines[:3] == [
        "stack microforum at http://127.0.0.1:8080",
        "console http://127.0.0.1:4242/?token=abc",
        "",
    ]


def test_status_ends_with_the_log_lines_dropped() -> None:
    body = BODY | {"logs": {"output": {"written": 10, "dropped": 7},
                            "access_log": {"written": 12, "dropped": 0}}}  # fmt: skip
    assert format_status(body).splitlines()[-1] == "logs  output 7 lines dropped  access log 0 lines dropped"
    assert "lines dropped" not in format_status(BODY)  # an older `up` did not say
