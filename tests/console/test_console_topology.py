"""The console's picture of the architecture: facts from the stack model, drawn as SVG."""

from __future__ import annotations

from pathlib import Path

import pytest

from microforum.console.picture import STATE_COLOURS, render_picture
from microforum.console.topology import condition_text, topology
from microforum.spec.load import load_stack, parse_stack
from microforum.spec.model import Condition, QueryPair

ROOT = Path(__file__).resolve().parents[2]


def test_the_repository_stack_in_priority_order_with_the_default_last() -> None:
    topo = topology(load_stack(ROOT / "stack.yaml"), "http://127.0.0.1:9090")
    assert [(r["priority"], r["conditions"], r["action"]) for r in topo["rules"]] == [
        (1, ["Path is /api/users*"], "forward to users"),
        (2, ["Path is /api/threads*"], "forward to threads"),
        (3, ["Path is /api/posts*"], "forward to posts"),
        ("default", [], "forward to monolith"),
    ]
    assert topo["listener"] == {"port": 9090, "aws_port": 80}
    assert [(g["name"], g["desired"]) for g in topo["groups"]] == [
        ("users", 2), ("threads", 2), ("posts", 2), ("monolith", 1)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        (Condition("path-pattern", ("/a*", "/b")), "Path is /a* or /b"),
        (Condition("host-header", ("*.example.com",)), "Host is *.example.com"),
        (Condition("http-header", ("1",), header_name="X-Canary"), "Header X-Canary is 1"),
        (Condition("http-request-method", ("POST",)), "Method is POST"),
        (Condition("source-ip", ("10.0.0.0/8",)), "Source IP is 10.0.0.0/8"),
        (
            Condition("query-string", query=(QueryPair("v", "2"), QueryPair(None, "x"))),
            "Query string is v=2 or x",
        ),
    ],
    ids=["path", "host", "header", "method", "source-ip", "query"],
)
def test_conditions_in_words(condition: Condition, text: str) -> None:
    assert condition_text(condition) == text


STACK = {
    "name": "shop",
    "services": {"web": {"command": ["x"]}, "api": {"command": ["y"], "desired_count": 3}},
    "listener": {
        "default_action": {"redirect": {"status_code": "HTTP_302", "path": "/home"}},
        "rules": [
            {"priority": 5, "conditions": [{"path_pattern": ["/teapot"]}],
             "action": {"fixed_response": {"status_code": 418}}},
            {"priority": 2, "conditions": [{"http_request_method": ["POST"]}],
             "action": {"forward": {"target_groups": [{"name": "api", "weight": 3}, {"name": "web"}],
                                    "stickiness": {"duration": 60}}}},
        ],
    },
}  # fmt: skip


def test_actions_in_words_and_the_groups_they_forward_to() -> None:
    rules = topology(parse_stack(STACK))["rules"]
    assert [(r["priority"], r["action"], r["forward"]) for r in rules] == [
        (2, "forward to api (3), web (1), sticky 60 s", [{"name": "api", "weight": 3},
                                                          {"name": "web", "weight": 1}]),
        (5, "fixed response 418", []),
        ("default", "redirect 302 to #{protocol}://#{host}:#{port}/home?#{query}", []),
    ]  # fmt: skip


def test_the_picture_draws_every_rule_group_and_target_with_its_state() -> None:
    topo = topology(parse_stack(STACK))
    live = {
        "api": {"targets": [
            {"id": "api-1", "port": 4001, "state": "healthy"},
            {"id": "api-2", "port": 4002, "state": "unhealthy", "reason": "Target.Timeout"},
        ]},
        "web": {"targets": [{"id": "web-1", "port": 4003, "state": "draining"}]},
    }  # fmt: skip
    svg = render_picture(topo, live)
    for priority in ("2", "5", "default"):
        assert f'data-priority="{priority}"' in svg
    assert 'data-group="api"' in svg and 'data-group="web"' in svg
    assert "api-2  :4002  unhealthy  Target.Timeout" in svg
    assert f'fill="{STATE_COLOURS["draining"]}"' in svg
    assert svg.count('<path class="wire"') == 2  # the weighted forward's two links
    assert "weight 3" in svg and "weight 1" in svg
    assert '<g class="group some" data-group="api">' in svg  # 1 of 3 desired healthy


def test_the_picture_escapes_what_it_did_not_write() -> None:
    topo = topology(parse_stack(STACK))
    live = {"web": {"targets": [{"id": "<b>", "port": 1, "state": "<script>", "description": "a&b"}]}}
    svg = render_picture(topo, live)
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg and "a&amp;b" in svg
