"""The listener-rule planner on its own (deploy/rules.py): remote rules in AWS's shapes against
the rendered ones, each step's call and parameters checked whole, not only its message."""

from __future__ import annotations

from typing import Any

from microforum.deploy.names import LISTENER_REF
from microforum.deploy.rules import normalize_rule, plan_rules

USERS, POSTS = (
    "arn:aws:elasticloadbalancing:r:1:targetgroup/users/1",
    "arn:aws:elasticloadbalancing:r:1:targetgroup/posts/2",
)
REFS = {"<tg:users>": USERS, "<tg:posts>": POSTS}


def path(*values: str) -> dict[str, Any]:
    return {"Field": "path-pattern", "PathPatternConfig": {"Values": list(values)}}


def forward(ref: str) -> dict[str, Any]:
    return {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": ref, "Weight": 1}]}}


def wanted(priority: int, condition: dict[str, Any], ref: str = "<tg:users>") -> dict[str, Any]:
    return {"Priority": priority, "Conditions": [condition], "Actions": [forward(ref)]}


def remote(arn: str, priority: int, condition: dict[str, Any], group: str = USERS) -> dict[str, Any]:
    return {"RuleArn": arn, "Priority": str(priority), "Conditions": [condition], "Actions": [forward(group)]}


def calls(steps: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(s.operation, dict(s.params)) for s in steps]


def test_normalize_rule_reads_the_legacy_values_form_and_sorts_conditions() -> None:
    rule = {
        "RuleArn": "arn:r/1",
        "Priority": "12",
        "Conditions": [
            {"Field": "path-pattern", "Values": ["/a*"]},
            {"Field": "host-header", "Values": ["a.test"]},
            {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
        ],
        "Actions": [{"Type": "forward", "TargetGroupArn": USERS}],
    }
    assert normalize_rule(rule) == {
        "RuleArn": "arn:r/1",
        "Priority": 12,
        "Conditions": [
            {"Field": "host-header", "HostHeaderConfig": {"Values": ["a.test"]}},
            {"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["GET"]}},
            {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a*"]}},
        ],
        "Actions": [forward(USERS)],
    }
    assert normalize_rule({"RuleArn": "arn:r/2", "Priority": "3"}) == {
        "RuleArn": "arn:r/2",
        "Priority": 3,
        "Conditions": [],
        "Actions": [],
    }
    legacy_empty = normalize_rule(
        {"RuleArn": "a", "Priority": "1", "Conditions": [{"Field": "path-pattern"}]}
    )
    assert legacy_empty["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": []}}]


def test_rules_already_in_place_need_no_step() -> None:
    have = (remote("arn:r/1", 1, path("/a*")), remote("arn:r/2", 2, path("/b*"), POSTS))
    want = (wanted(1, path("/a*")), wanted(2, path("/b*"), "<tg:posts>"))
    assert plan_rules(want, have, REFS) == []


def test_a_rule_that_only_moved_gets_one_set_rule_priorities() -> None:
    have = (remote("arn:r/1", 1, path("/a*")), remote("arn:r/2", 2, path("/b*")))
    want = (wanted(5, path("/b*")), wanted(9, path("/a*")))
    steps = plan_rules(want, have, REFS)
    assert calls(steps) == [
        (
            "elbv2.set_rule_priorities",
            {
                "RulePriorities": [
                    {"RuleArn": "arn:r/1", "Priority": 9},
                    {"RuleArn": "arn:r/2", "Priority": 5},
                ]
            },
        )
    ]
    assert [s.message for s in steps] == ["change listener rule priorities: 1->9, 2->5"]


def test_a_swap_parks_on_the_highest_free_priorities_first() -> None:
    have = (
        remote("arn:r/1", 1, path("/a*")),
        remote("arn:r/2", 2, path("/b*")),
        remote("arn:r/3", 50000, path("/kept")),
    )
    want = (
        wanted(1, path("/b*")),
        wanted(2, path("/a*")),
        wanted(50000, path("/kept")),
        wanted(49999, path("/n")),
    )
    steps = plan_rules(want, have, REFS)
    assert calls(steps) == [
        (
            "elbv2.set_rule_priorities",
            {
                "RulePriorities": [
                    {"RuleArn": "arn:r/1", "Priority": 49998},
                    {"RuleArn": "arn:r/2", "Priority": 49997},
                ]
            },
        ),
        (
            "elbv2.set_rule_priorities",
            {
                "RulePriorities": [
                    {"RuleArn": "arn:r/1", "Priority": 2},
                    {"RuleArn": "arn:r/2", "Priority": 1},
                ]
            },
        ),
        ("elbv2.create_rule", {"ListenerArn": LISTENER_REF, **wanted(49999, path("/n"), USERS)}),
    ]
    assert [s.message for s in steps[:2]] == [
        "change listener rule priorities: 1->2, 2->1 (step 1 of 2: park)",
        "change listener rule priorities: 1->2, 2->1 (step 2 of 2)",
    ]


def test_delete_then_modify_then_create_with_their_parameters() -> None:
    have = (
        remote("arn:r/1", 1, path("/gone")),
        remote("arn:r/3", 3, path("/old")),
        remote("arn:r/4", 4, path("/same"), POSTS),
    )
    header = {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Env", "Values": ["beta"]}}
    query = {
        "Field": "query-string",
        "QueryStringConfig": {"Values": [{"Key": "v", "Value": "2"}, {"Value": "x"}]},
    }
    want = (
        wanted(3, path("/new")),
        wanted(4, path("/same"), "<tg:posts>"),
        {"Priority": 6, "Conditions": [header, query], "Actions": [forward("<tg:posts>")]},
    )
    steps = plan_rules(want, have, REFS)
    assert calls(steps) == [
        ("elbv2.delete_rule", {"RuleArn": "arn:r/1"}),
        (
            "elbv2.modify_rule",
            {"RuleArn": "arn:r/3", "Conditions": [path("/new")], "Actions": [forward(USERS)]},
        ),
        (
            "elbv2.create_rule",
            {
                "ListenerArn": LISTENER_REF,
                "Priority": 6,
                "Conditions": [header, query],
                "Actions": [forward(POSTS)],
            },
        ),
    ]
    assert [s.message for s in steps] == [
        "delete listener rule priority 1: no longer in stack.yaml",
        "change listener rule priority 3: path-pattern /new -> forward to users",
        "create listener rule priority 6: http-header X-Env beta; query-string v=2,=x -> forward to posts",
    ]
    assert [s.verb for s in steps] == ["delete", "change", "create"]


def test_a_rule_that_moved_onto_a_deleted_ones_priority() -> None:
    have = (remote("arn:r/1", 1, path("/gone")), remote("arn:r/2", 2, path("/a*")))
    steps = plan_rules((wanted(1, path("/a*")),), have, REFS)
    assert calls(steps) == [
        ("elbv2.delete_rule", {"RuleArn": "arn:r/1"}),
        ("elbv2.set_rule_priorities", {"RulePriorities": [{"RuleArn": "arn:r/2", "Priority": 1}]}),
    ]


def test_a_changed_target_is_modified_in_place() -> None:
    have = (remote("arn:r/1", 1, path("/a*"), USERS),)
    steps = plan_rules((wanted(1, path("/a*"), "<tg:posts>"),), have, REFS)
    assert calls(steps) == [
        (
            "elbv2.modify_rule",
            {"RuleArn": "arn:r/1", "Conditions": [path("/a*")], "Actions": [forward(POSTS)]},
        )
    ]


def test_identical_wanted_rules_each_take_their_own_remote_rule() -> None:
    have = (remote("arn:r/1", 1, path("/a*")), remote("arn:r/2", 2, path("/a*")))
    want = (wanted(1, path("/a*")), wanted(2, path("/a*")))
    assert plan_rules(want, have, REFS) == []


def test_parking_avoids_the_priorities_that_moving_rules_still_hold() -> None:
    have = (
        remote("arn:r/1", 1, path("/a*")),
        remote("arn:r/2", 2, path("/b*")),
        remote("arn:r/3", 50000, path("/c*")),  # moves to 3: holds 50000 until the last step
    )
    want = (wanted(1, path("/b*")), wanted(2, path("/a*")), wanted(3, path("/c*")))
    parked, final = plan_rules(want, have, REFS)
    assert parked.params["RulePriorities"] == [
        {"RuleArn": "arn:r/1", "Priority": 49999},
        {"RuleArn": "arn:r/2", "Priority": 49998},
        {"RuleArn": "arn:r/3", "Priority": 49997},
    ]
    assert final.params["RulePriorities"] == [
        {"RuleArn": "arn:r/1", "Priority": 2},
        {"RuleArn": "arn:r/2", "Priority": 1},
        {"RuleArn": "arn:r/3", "Priority": 3},
    ]


def weighted(priority: int, condition: dict[str, Any], *groups: tuple[str, int]) -> dict[str, Any]:
    targets = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in groups]
    return {"Priority": priority, "Conditions": [condition],
            "Actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": targets}}]}  # fmt: skip


def test_a_production_rule_is_compared_without_the_weights_ecs_shifts() -> None:
    want = (weighted(1, path("/a*"), ("<tg:users>", 1), ("<tg:posts>", 0)),)
    shifted = {**weighted(1, path("/a*"), (POSTS, 1), (USERS, 0)), "RuleArn": "arn:r/1", "Priority": "1"}
    assert plan_rules(want, (shifted,), REFS, ecs_weighted=frozenset({1})) == []
    # Not a production rule: the weights are stack.yaml's, put back in place.
    assert calls(plan_rules(want, (shifted,), REFS)) == [
        ("elbv2.modify_rule", {"RuleArn": "arn:r/1", "Conditions": [path("/a*")],
                               "Actions": weighted(1, path("/a*"), (USERS, 1), (POSTS, 0))["Actions"]}),
    ]  # fmt: skip
    # A production rule whose groups differ (not only their weights) is changed.
    other = {**weighted(1, path("/a*"), (USERS, 1)), "RuleArn": "arn:r/1", "Priority": "1"}
    assert [s.operation for s in plan_rules(want, (other,), REFS, ecs_weighted=frozenset({1}))] == [
        "elbv2.modify_rule"
    ]


def test_rules_of_another_listener_name_it_and_produce_no_rule_arn() -> None:
    (main,) = plan_rules((wanted(7, path("/a*")),), (), REFS)
    assert (main.name, main.produces) == ("priority 7", "<rule:7>")
    (other,) = plan_rules((wanted(7, path("/a*")),), (), REFS, "<listener:services>", where="HTTP:8080")
    assert (other.name, other.produces) == ("priority 7 on HTTP:8080", None)
    assert other.params == {"ListenerArn": "<listener:services>", **wanted(7, path("/a*"), USERS)}
    (gone,) = plan_rules(
        (), (remote("arn:r/1", 1, path("/a*")),), REFS, "<listener:services>", where="HTTP:8080"
    )
    assert (gone.operation, gone.name) == ("elbv2.delete_rule", "priority 1 on HTTP:8080")


def test_a_canary_s_rule_turned_into_a_fixed_response_by_hand_forwards_again() -> None:
    """Weights are ignored at an ECS-weighted priority, the target groups are not: a rule
    that forwards nowhere any more is modified back."""
    want = {"Priority": 1, "Conditions": [path("/api/users*")], "Actions": [forward("<tg:users>")]}
    fixed = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}
    have = {**remote("arn:r/1", 1, path("/api/users*")), "Actions": [fixed]}
    steps = plan_rules((want,), (have,), REFS, ecs_weighted=frozenset({1}))
    assert calls(steps) == [("elbv2.modify_rule", {"RuleArn": "arn:r/1", "Conditions": [path("/api/users*")],
                                                    "Actions": [forward(USERS)]})]  # fmt: skip
