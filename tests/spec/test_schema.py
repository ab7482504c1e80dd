"""`microforum schema`: the JSON Schema agrees with the loader, key by key and bound by bound.

For every object of the schema (a section of stack.yaml), an unknown key put there is refused by
the loader, whose message lists the keys it accepts: they must be the schema's, exactly. For
every bounded number, the loader accepts both bounds and refuses one step outside, as the
schema does. The repository's stack.yaml and stack.schema.json are checked too.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from microforum.spec import defaults as d
from microforum.spec.load import SpecError, load_stack, parse_stack
from microforum.spec.schema import stack_schema

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = stack_schema()
VALIDATOR = Draft202012Validator(SCHEMA)

# Every section present, with room for any bound: interval 300 leaves timeout free, a minimum of
# 50 % leaves maximum_percent free.
FULL: dict[str, Any] = yaml.safe_load("""
name: full
services:
  web:
    command: [x]
    health_check: {path: /, interval: 300, timeout: 2, healthy_threshold: 2, unhealthy_threshold: 2}
    deployment: {minimum_healthy_percent: 50, maximum_percent: 200, health_check_grace_period: 0}
    autoscaling: {min: 0, max: 5000}
    alarms: {evaluation_periods: 60}
  api: {command: y}
listener:
  port: 80
  default_action: {redirect: {status_code: HTTP_302, path: /home}}
  rules:
    - {priority: 1, conditions: [{path_pattern: [/a*]}], action: {forward: web}}
    - priority: 2
      conditions: [{http_header: {name: X-A, values: ["1"]}}]
      action: {forward: {target_groups: [{name: web, weight: 1}, {name: api}], stickiness: {duration: 60}}}
    - priority: 3
      conditions: [{query_string: [{key: a, value: b}]}]
      action: {fixed_response: {status_code: 404}}
load_balancer: {idle_timeout: 60}
local: {port: 8080, access_log: {max_size_mib: 10}}
cluster: {min_instances: 0, max_instances: 1000}
database: {}
""")
# Each object of the schema (a JSON pointer) and where it is in FULL.
SECTIONS = {
    "": [],
    "/$defs/service": ["services", "web"],
    "/$defs/health_check": ["services", "web", "health_check"],
    "/$defs/deployment": ["services", "web", "deployment"],
    "/$defs/listener": ["listener"],
    "/$defs/rule": ["listener", "rules", 0],
    "/$defs/condition": ["listener", "rules", 0, "conditions", 0],
    "/$defs/condition/properties/http_header": ["listener", "rules", 1, "conditions", 0, "http_header"],
    "/$defs/query_pair": ["listener", "rules", 2, "conditions", 0, "query_string", 0],
    "/$defs/action": ["listener", "rules", 0, "action"],
    "/$defs/forward": ["listener", "rules", 1, "action", "forward"],
    "/$defs/forward/properties/stickiness": ["listener", "rules", 1, "action", "forward", "stickiness"],
    "/$defs/weighted_target_group": ["listener", "rules", 1, "action", "forward", "target_groups", 0],
    "/$defs/fixed_response": ["listener", "rules", 2, "action", "fixed_response"],
    "/$defs/redirect": ["listener", "default_action", "redirect"],
    "/$defs/load_balancer": ["load_balancer"],
    "/$defs/local": ["local"],
    "/$defs/cluster": ["cluster"],
    "/$defs/database": ["database"],
    "/$defs/autoscaling": ["services", "web", "autoscaling"],
    "/$defs/alarms": ["services", "web", "alarms"],
    "/$defs/local/properties/access_log": ["local", "access_log"],
}


def at(pointer: str) -> dict[str, Any]:
    node: Any = SCHEMA
    for part in pointer.split("/")[1:]:
        node = node[part]
    return node  # type: ignore[no-any-return]


def with_value(path: list[Any], key: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FULL)
    node = doc
    for part in path:
        node = node[part]
    node[key] = value
    return doc


def objects(schema: Any, pointer: str = "") -> list[str]:
    """Every object schema that lists its properties and allows no others."""
    found = []
    if isinstance(schema, dict):
        if schema.get("additionalProperties") is False:
            found.append(pointer)
        for key, value in schema.items():
            found += objects(value, f"{pointer}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += objects(value, f"{pointer}/{index}")
    return found


def test_the_schema_is_valid_2020_12_and_every_section_is_tested() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert sorted(objects(SCHEMA)) == sorted(SECTIONS)
    VALIDATOR.validate(FULL)
    parse_stack(FULL)


@pytest.mark.parametrize("pointer", SECTIONS, ids=lambda p: p.rsplit("/", 1)[-1] or "root")
def test_the_loader_accepts_exactly_the_schemas_keys(pointer: str) -> None:
    doc = with_value(SECTIONS[pointer], "zz_unknown", 1)
    assert not VALIDATOR.is_valid(doc)
    with pytest.raises(SpecError) as caught:
        parse_stack(doc)
    accepted = re.fullmatch(r"unknown key, expected one of: (.*)", caught.value.problem)
    assert accepted, caught.value.message
    assert set(accepted.group(1).split(", ")) == set(at(pointer)["properties"])


BOUNDED = [
    (pointer, key, prop["minimum"], prop["maximum"], prop["type"])
    for pointer in SECTIONS
    for key, prop in at(pointer)["properties"].items()
    if "minimum" in prop
]


@pytest.mark.parametrize(("pointer", "key", "low", "high", "kind"), BOUNDED, ids=[b[1] for b in BOUNDED])
def test_the_loader_and_the_schema_share_every_bound(
    pointer: str, key: str, low: float, high: float, kind: str
) -> None:
    step = 1 if kind == "integer" else 0.01
    for inside in (low, high):
        doc = with_value(SECTIONS[pointer], key, inside)
        VALIDATOR.validate(doc)
        parse_stack(doc)
    for outside in (low - step, high + step):
        doc = with_value(SECTIONS[pointer], key, outside)
        assert not VALIDATOR.is_valid(doc)
        with pytest.raises(SpecError, match=rf"must be {low}\.\.{high}|must be 2XX"):
            parse_stack(doc)


@pytest.mark.parametrize(
    ("pointer", "key", "bounds"),
    [
        ("/$defs/health_check", "interval", d.HEALTH_CHECK_INTERVAL_RANGE),
        ("/$defs/health_check", "timeout", d.HEALTH_CHECK_TIMEOUT_RANGE),
        ("/$defs/health_check", "unhealthy_threshold", d.HEALTH_CHECK_THRESHOLD_RANGE),
        ("/$defs/service", "deregistration_delay", d.DEREGISTRATION_DELAY_RANGE),
        ("/$defs/rule", "priority", d.PRIORITY_RANGE),
        ("/$defs/load_balancer", "idle_timeout", d.IDLE_TIMEOUT_RANGE),
        ("/$defs/weighted_target_group", "weight", d.WEIGHT_RANGE),
        ("/$defs/forward/properties/stickiness", "duration", d.STICKINESS_DURATION_RANGE),
    ],
)
def test_aws_limits_are_bounds(pointer: str, key: str, bounds: tuple[int, int]) -> None:
    prop = at(pointer)["properties"][key]
    assert (prop["minimum"], prop["maximum"]) == bounds


def test_aws_list_and_length_limits_are_bounds() -> None:
    path = at("/$defs/condition")["properties"]["path_pattern"]["oneOf"]
    assert path[0]["maxLength"] == d.CONDITION_VALUE_MAX_LENGTH == 128
    assert path[1]["maxItems"] == d.CONDITION_VALUES_PER_RULE == 5
    assert at("/$defs/forward")["properties"]["target_groups"]["maxItems"] == d.TARGET_GROUPS_PER_ACTION == 5
    assert at("/$defs/fixed_response")["properties"]["message_body"]["maxLength"] == 1024


def test_the_repository_stack_names_the_schema_and_it_is_current() -> None:
    text = (ROOT / "stack.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=./stack.schema.json\n")
    VALIDATOR.validate(yaml.safe_load(text))
    load_stack(ROOT / "stack.yaml")
    shipped = json.loads((ROOT / "stack.schema.json").read_text())
    assert shipped == SCHEMA, "stack.schema.json is stale: run `microforum schema > stack.schema.json`"
