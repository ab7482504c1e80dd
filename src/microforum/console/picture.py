"""The architecture as an SVG picture (pure): listener → rules → target groups → targets.

Four columns, left to right. The listener is one tall box; each rule (priority order, the
default action last) is a box with its conditions and action; a curve joins it to every target
group it forwards to (with the weight when there are several); each target group lists its
targets, coloured by ALB's health state with the reason code beside it. Every text is escaped:
names come from stack.yaml, states and reasons from the load balancer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

# Colours of ALB's target states, as the AWS console paints them (green, red, blue, orange, grey).
STATE_COLOURS = {
    "healthy": "#1d8102",
    "unhealthy": "#d13212",
    "initial": "#0073bb",
    "draining": "#ec7211",
    "unused": "#687078",
}
WIDTH = 1120
TOP = 34  # below the column headings
LISTENER_X, LISTENER_W = 8, 132
RULE_X, RULE_W, RULE_H, RULE_GAP = 180, 300, 46, 10
GROUP_X, GROUP_W = 560, 190
TARGET_X, TARGET_W, TARGET_H, TARGET_GAP = 790, 322, 24, 6
GROUP_PAD, GROUP_GAP = 10, 16


def render_picture(topo: Mapping[str, Any], live: Mapping[str, Any]) -> str:
    """The SVG (a string) for `topology(stack)` and the load balancer's `describe()`."""
    rules: Sequence[Mapping[str, Any]] = topo["rules"]
    groups: Sequence[Mapping[str, Any]] = topo["groups"]
    group_y = _group_positions(groups, live)
    rule_bottom = TOP + len(rules) * (RULE_H + RULE_GAP) - RULE_GAP
    groups_bottom = max((y + h for y, h in group_y.values()), default=TOP)
    height = max(rule_bottom, groups_bottom) + 12
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="picture" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="architecture">',
        _defs(),
        _headings(),
        _listener(topo["listener"], rule_bottom),
    ]
    for index, rule in enumerate(rules):
        y = TOP + index * (RULE_H + RULE_GAP)
        parts.append(_rule(rule, y))
        parts += [_link(rule, fwd, y, group_y) for fwd in rule["forward"] if fwd["name"] in group_y]
    for group in groups:
        y, h = group_y[group["name"]]
        parts.append(_group(group, _targets(live, group["name"]), y, h))
    parts.append("</svg>")
    return "".join(parts)


def _targets(live: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    group = live.get(name) or {}
    return sorted(group.get("targets") or [], key=lambda t: str(t.get("id")))


def _group_positions(
    groups: Sequence[Mapping[str, Any]], live: Mapping[str, Any]
) -> dict[str, tuple[int, int]]:
    """Each group's top and height: tall enough for its targets (at least its desired count)."""
    out, y = {}, TOP
    for group in groups:
        rows = max(1, len(_targets(live, group["name"])), int(group.get("desired", 1)))
        h = max(64, 2 * GROUP_PAD + rows * (TARGET_H + TARGET_GAP) - TARGET_GAP)
        out[group["name"]] = (y, h)
        y += h + GROUP_GAP
    return out


def _defs() -> str:
    return (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#8d99a8"/>'
        "</marker></defs>"
    )


def _headings() -> str:
    columns = (
        (LISTENER_X, "Listener"),
        (RULE_X, "Rules, by priority"),
        (GROUP_X, "Target groups"),
        (TARGET_X, "Targets"),
    )
    return "".join(f'<text class="heading" x="{x}" y="16">{label}</text>' for x, label in columns)


def _listener(listener: Mapping[str, Any], bottom: int) -> str:
    h = bottom - TOP
    mid = TOP + h / 2
    return (
        f'<g class="listener"><rect x="{LISTENER_X}" y="{TOP}" width="{LISTENER_W}" height="{h}" '
        f'rx="8"/><text class="title" x="{LISTENER_X + 12}" y="{mid - 6}">HTTP :{listener["port"]}'
        f'</text><text class="small" x="{LISTENER_X + 12}" y="{mid + 12}">on AWS :{listener["aws_port"]}'
        "</text></g>"
        + "".join(
            f'<line class="wire" x1="{LISTENER_X + LISTENER_W}" y1="{y}" x2="{RULE_X}" y2="{y}" '
            'marker-end="url(#arrow)"/>'
            for y in range(TOP + RULE_H // 2, bottom, RULE_H + RULE_GAP)
        )
    )


def _rule(rule: Mapping[str, Any], y: int) -> str:
    conditions = " and ".join(rule["conditions"]) or "any request"
    if len(conditions) > 44:
        conditions = conditions[:43] + "…"
    priority = escape(str(rule["priority"]))
    return (
        f'<g class="rule" data-priority="{priority}"><title>{escape(" and ".join(rule["conditions"]))}'
        f" → {escape(rule['action'])}</title>"
        f'<rect x="{RULE_X}" y="{y}" width="{RULE_W}" height="{RULE_H}" rx="6"/>'
        f'<text class="priority" x="{RULE_X + 10}" y="{y + 19}">{priority}</text>'
        f'<text x="{RULE_X + 64}" y="{y + 19}">{escape(conditions)}</text>'
        f'<text class="small" x="{RULE_X + 64}" y="{y + 36}">{escape(rule["action"])}</text></g>'
    )


def _link(rule: Mapping[str, Any], fwd: Mapping[str, Any], y: int, group_y: Mapping[str, Any]) -> str:
    gy, gh = group_y[fwd["name"]]
    x1, y1, x2, y2 = RULE_X + RULE_W, y + RULE_H / 2, GROUP_X, gy + gh / 2
    mid = (x1 + x2) / 2
    path = f'<path class="wire" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" marker-end="url(#arrow)"/>'
    if len(rule["forward"]) < 2:
        return path
    label = f"weight {int(fwd['weight'])}"
    return (
        path
        + f'<text class="small weight" x="{mid}" y="{(y1 + y2) / 2 + 4}" text-anchor="middle">{label}</text>'
    )


def _group(group: Mapping[str, Any], targets: Sequence[Mapping[str, Any]], y: int, h: int) -> str:
    healthy = sum(1 for t in targets if t.get("state") == "healthy")
    level = "ok" if healthy >= int(group["desired"]) else "some" if healthy else "none"
    name = escape(str(group["name"]))
    parts = [
        f'<g class="group {level}" data-group="{name}">'
        f'<rect x="{GROUP_X}" y="{y}" width="{GROUP_W}" height="{h}" rx="8"/>'
        f'<text class="title" x="{GROUP_X + 12}" y="{y + 22}">{name}</text>'
        f'<text class="small" x="{GROUP_X + 12}" y="{y + 40}">{healthy}/{int(group["desired"])} healthy'
        f" · {escape(str(group['algorithm']).replace('_', ' '))}</text>"
        f'<text class="small" x="{GROUP_X + 12}" y="{y + 56}">{escape(str(group["health_check"]))}</text></g>'
    ]
    for index, target in enumerate(targets):
        ty = y + GROUP_PAD + index * (TARGET_H + TARGET_GAP)
        parts.append(
            f'<line class="wire thin" x1="{GROUP_X + GROUP_W}" y1="{y + h / 2}" x2="{TARGET_X}" '
            f'y2="{ty + TARGET_H / 2}"/>'
        )
        parts.append(_target(target, ty))
    return "".join(parts)


def _target(target: Mapping[str, Any], y: int) -> str:
    state = str(target.get("state", ""))
    colour = STATE_COLOURS.get(state, STATE_COLOURS["unused"])
    reason = target.get("reason") or ""
    label = f"{target.get('id', '?')}  :{target.get('port', '?')}  {state}"
    if reason:
        label += f"  {reason}"
    tip = target.get("description") or state
    return (
        f'<g class="target" data-target="{escape(str(target.get("id", "")))}" data-state="{escape(state)}">'
        f"<title>{escape(str(tip))}</title>"
        f'<rect x="{TARGET_X}" y="{y}" width="{TARGET_W}" height="{TARGET_H}" rx="5"/>'
        f'<rect x="{TARGET_X}" y="{y}" width="7" height="{TARGET_H}" rx="2" fill="{colour}"/>'
        f'<circle cx="{TARGET_X + 18}" cy="{y + TARGET_H / 2}" r="4.5" fill="{colour}"/>'
        f'<text x="{TARGET_X + 30}" y="{y + 16}">{escape(label)}</text></g>'
    )
