"""Listener rules: remote rules vs stack.yaml's -> steps (pure).

Rules are matched first by content, so a rule that only moved gets a new priority through
SetRulePriorities (parking on free priorities first when two rules swap: ALB refuses a priority
in use, even within one call); then by priority (modified in place). Rules that left stack.yaml
are deleted first, so no priority is ever taken twice; new rules are created last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from microforum.deploy.names import LISTENER_REF
from microforum.deploy.steps import JSON, Step, actions_detail, normalize_action, resolve, subset
from microforum.spec import defaults as d


def normalize_rule(rule: JSON) -> JSON:
    """A remote rule in render's shape: integer priority, *Config conditions, sorted."""
    conditions = []
    for c in rule.get("Conditions", []):
        config_key = next((k for k in c if k.endswith("Config")), None)
        if config_key is None:  # the legacy Values form
            conditions.append({"Field": c["Field"], _LEGACY[c["Field"]]: {"Values": c.get("Values", [])}})
        else:
            conditions.append({"Field": c["Field"], config_key: c[config_key]})
    return {
        "RuleArn": rule["RuleArn"],
        "Priority": int(rule["Priority"]),
        "Conditions": sorted(conditions, key=lambda c: c["Field"]),
        "Actions": [normalize_action(a) for a in rule.get("Actions", [])],
    }


_LEGACY = {"path-pattern": "PathPatternConfig", "host-header": "HostHeaderConfig"}


def plan_rules(
    wanted: tuple[JSON, ...],
    remote: tuple[JSON, ...],
    refs: Mapping[str, str],
    listener: str = LISTENER_REF,
    ecs_weighted: frozenset[int] = frozenset(),
    where: str = "",
) -> list[Step]:
    """Listener rules: delete what left stack.yaml, reorder moved rules, modify, create (on the
    listener whose placeholder is `listener`; steps of another than the main one say `where`).
    The rules at `ecs_weighted` priorities are compared without their weights: ECS shifts
    them during canary and linear deployments."""
    steps = _plan_rules(wanted, remote, refs, listener, ecs_weighted)
    if listener == LISTENER_REF:
        return steps
    return [replace(step, name=f"{step.name} on {where}") for step in steps]


def _plan_rules(
    wanted: tuple[JSON, ...],
    remote: tuple[JSON, ...],
    refs: Mapping[str, str],
    listener: str,
    ecs_weighted: frozenset[int],
) -> list[Step]:
    want = [resolve(r, refs) for r in wanted]
    have = [normalize_rule(r) for r in remote]
    unmatched_have = list(have)
    moves: list[tuple[JSON, JSON]] = []
    pending = []
    for rule in want:
        same = next(
            (h for h in unmatched_have if _subset_rule(rule, h, rule["Priority"] in ecs_weighted)), None
        )
        if same is None:
            pending.append(rule)
            continue
        unmatched_have.remove(same)
        if same["Priority"] != rule["Priority"]:
            moves.append((same, rule))
    modify, create = [], []
    for rule in pending:
        at = next((h for h in unmatched_have if h["Priority"] == rule["Priority"]), None)
        if at is None:
            create.append(rule)
        else:
            unmatched_have.remove(at)
            modify.append((at, rule))
    steps = [
        Step(
            "delete",
            "listener rule",
            f"priority {h['Priority']}",
            "elbv2.delete_rule",
            {"RuleArn": h["RuleArn"]},
            detail="no longer in stack.yaml",
        )
        for h in unmatched_have
    ]
    moves.sort(key=lambda pair: pair[0]["Priority"])
    steps += _reorder(
        moves, [h["Priority"] for h in have if h not in unmatched_have], [r["Priority"] for r in want]
    )
    for h, rule in modify:
        args = {"RuleArn": h["RuleArn"], "Conditions": rule["Conditions"], "Actions": rule["Actions"]}
        steps.append(
            Step(
                "change",
                "listener rule",
                f"priority {rule['Priority']}",
                "elbv2.modify_rule",
                args,
                detail=_rule_detail(rule),
            )
        )
    for rule in create:
        args = {"ListenerArn": listener, **rule}
        produces = f"<rule:{rule['Priority']}>" if listener == LISTENER_REF else None
        steps.append(
            Step(
                "create",
                "listener rule",
                f"priority {rule['Priority']}",
                "elbv2.create_rule",
                args,
                produces,
                detail=_rule_detail(rule),
            )
        )
    return steps


def _reorder(moves: list[tuple[JSON, JSON]], kept: list[int], wanted: list[int]) -> list[Step]:
    """SetRulePriorities for rules that only moved. When a target priority is still held by
    another moving rule (a swap), the movers first park on free priorities at the top of the
    range: ALB refuses a priority in use, even within one call."""
    if not moves:
        return []
    targets = {r["Priority"] for _, r in moves}
    current = {h["Priority"] for h, _ in moves}
    names = ", ".join(f"{h['Priority']}->{r['Priority']}" for h, r in moves)
    final = [{"RuleArn": h["RuleArn"], "Priority": r["Priority"]} for h, r in moves]
    if not targets & current:
        return [
            Step(
                "change",
                "listener rule",
                "priorities",
                "elbv2.set_rule_priorities",
                {"RulePriorities": final},
                detail=names,
            )
        ]
    taken = set(kept) | set(wanted)
    free = (p for p in range(d.PRIORITY_RANGE[1], 0, -1) if p not in taken)
    parked = [{"RuleArn": h["RuleArn"], "Priority": next(free)} for h, _ in moves]
    return [
        Step(
            "change",
            "listener rule",
            "priorities",
            "elbv2.set_rule_priorities",
            {"RulePriorities": parked},
            detail=f"{names} (step 1 of 2: park)",
        ),
        Step(
            "change",
            "listener rule",
            "priorities",
            "elbv2.set_rule_priorities",
            {"RulePriorities": final},
            detail=f"{names} (step 2 of 2)",
        ),
    ]


def _subset_rule(want: JSON, have: JSON, ecs_weighted: bool) -> bool:
    if not subset(want["Conditions"], have["Conditions"]):
        return False
    if ecs_weighted:
        return _groups(want["Actions"]) == _groups(have["Actions"])
    return subset(want["Actions"], have["Actions"])


def _groups(actions: list[JSON]) -> list[str]:
    """The target groups a forward action names, without their weights."""
    return sorted(
        g["TargetGroupArn"] for a in actions for g in a.get("ForwardConfig", {}).get("TargetGroups", [])
    )


def _rule_detail(rule: JSON) -> str:
    conditions = "; ".join(_condition_text(c) for c in rule["Conditions"])
    return f"{conditions} -> {actions_detail(rule['Actions'])}"


def _condition_text(condition: JSON) -> str:
    config = next(v for k, v in condition.items() if k.endswith("Config"))
    values = config.get("Values", [])
    shown = [f"{v.get('Key') or ''}={v['Value']}" if isinstance(v, dict) else v for v in values]
    name = f" {config['HttpHeaderName']}" if "HttpHeaderName" in config else ""
    return f"{condition['Field']}{name} {','.join(shown)}"
