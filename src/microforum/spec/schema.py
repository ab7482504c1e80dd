"""stack.yaml as a JSON Schema (2020-12), for editors: `microforum schema` prints it.

Made from what the loader itself uses: its allowed characters (the compiled patterns of
`load.py` and `listener.py`), its limits and defaults (`defaults.py`), its choices. The loader
stays the authority — its messages name file, key path, rule and value — and
tests/spec/test_schema.py holds the two to the same keys and bounds, section by section. A few
rules cannot be said in a schema and are the loader's alone: a health check's timeout below its
interval, at most five condition values and wildcards per rule, forwards only to services
that exist, unique priorities.
"""

from __future__ import annotations

from typing import Any

from microforum.spec import defaults as d
from microforum.spec.listener import _FIXED_CONTENT_TYPES, _HOST_PATTERN, _METHOD, _PATH_PATTERN, _TOKEN
from microforum.spec.load import _ENV_NAME, _SERVICE_NAME, _SUCCESS_CODES

SCHEMA_ID = "urn:microforum:stack.schema.json"
Schema = dict[str, Any]


def integer(bounds: tuple[int, int], description: str, default: int | None = None) -> Schema:
    out: Schema = {"type": "integer", "minimum": bounds[0], "maximum": bounds[1], "description": description}
    return out if default is None else out | {"default": default}


def number(bounds: tuple[float, float], description: str, default: float) -> Schema:
    return {
        "type": "number",
        "minimum": bounds[0],
        "maximum": bounds[1],
        "description": description,
        "default": default,
    }


def string(description: str, pattern: str | None = None, max_length: int = 0, **more: Any) -> Schema:
    out: Schema = {"type": "string", "minLength": 1, "description": description}
    if pattern:
        out["pattern"] = pattern
    if max_length:
        out["maxLength"] = max_length
    return out | more


def choice(options: tuple[str, ...], description: str, default: str) -> Schema:
    return {"enum": list(options), "description": description, "default": default}


def section(description: str, properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    out: Schema = {
        "type": "object",
        "description": description,
        "additionalProperties": False,
        "properties": properties,
    }
    return out | {"required": list(required)} if required else out


def one_of(key_schemas: dict[str, Schema], description: str) -> Schema:
    """An object with exactly one of the keys (a condition, an action)."""
    return section(description, key_schemas) | {"minProperties": 1, "maxProperties": 1}


def values(pattern: str | None, what: str) -> Schema:
    """One value or a list: the loader reads a single value as a list of one."""
    item = string(what, pattern, d.CONDITION_VALUE_MAX_LENGTH)
    many = {"type": "array", "items": item, "minItems": 1, "maxItems": d.CONDITION_VALUES_PER_RULE}
    return {"description": what, "oneOf": [item, many]}


def stack_schema() -> Schema:
    """The whole schema."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "microforum stack.yaml",
        **section(
            "One stack: services behind an Application Load Balancer, run locally by `microforum up` "
            "and deployed to Amazon ECS by `microforum deploy`. Anything left out takes its default.",
            {
                "name": string(
                    "The stack's name: lowercase letters, digits and -.",
                    _SERVICE_NAME.pattern,
                    default="microforum",
                ),
                "services": {
                    "type": "object",
                    "description": "The services by name; each has a target group of the same name.",
                    "minProperties": 1,
                    "propertyNames": {"pattern": _SERVICE_NAME.pattern},
                    "additionalProperties": {"$ref": "#/$defs/service"},
                },
                "listener": {"$ref": "#/$defs/listener"},
                "load_balancer": {"$ref": "#/$defs/load_balancer"},
                "local": {"$ref": "#/$defs/local"},
                "cluster": {"$ref": "#/$defs/cluster"},
                "database": {"$ref": "#/$defs/database"},
            },
            required=("services",),
        ),
        "$defs": definitions(),
    }


def definitions() -> dict[str, Schema]:
    return {**_service_defs(), **_listener_defs(), **_action_defs(), **_stack_defs()}


def _service_defs() -> dict[str, Schema]:
    scalar = {"type": ["string", "number", "boolean"]}
    return {
        "service": section(
            "A service: built-in (users, threads, posts, monolith) or any command.",
            {
                "command": {
                    "description": "The command to run (listens on $PORT); built-ins need none.",
                    "oneOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ],
                },
                "container_port": integer(
                    d.PORT_RANGE, "The port the container listens on.", d.CONTAINER_PORT
                ),
                "host_port": integer(d.HOST_PORT_RANGE, "The host port; 0 is a dynamic one.", d.HOST_PORT),
                "network_mode": choice(("bridge",), "The ECS network mode.", d.NETWORK_MODE),
                "cpu": integer(d.CPU_RANGE, "CPU units of the task (1024 = one vCPU).", d.CPU),
                "memory": integer(d.MEMORY_RANGE, "Memory of the task, MiB.", d.MEMORY),
                "desired_count": integer(d.DESIRED_COUNT_RANGE, "How many replicas run.", d.DESIRED_COUNT),
                "environment": {
                    "type": "object",
                    "description": "Environment variables of the service.",
                    "propertyNames": {"pattern": _ENV_NAME.pattern},
                    "additionalProperties": scalar,
                },
                "health_check": {"$ref": "#/$defs/health_check"},
                "deregistration_delay": integer(
                    d.DEREGISTRATION_DELAY_RANGE,
                    "Seconds a deregistered target drains.",
                    d.DEREGISTRATION_DELAY,
                ),
                "load_balancing_algorithm": choice(
                    d.LOAD_BALANCING_ALGORITHMS, "How targets are picked.", d.LOAD_BALANCING_ALGORITHM
                ),
                "deployment": {"$ref": "#/$defs/deployment"},
                "autoscaling": {"$ref": "#/$defs/autoscaling"},
                "alarms": {"$ref": "#/$defs/alarms"},
            },
        ),
        "health_check": section(
            "The target group's health check.",
            {
                "path": string(
                    "The path checked.", "^/", d.HEALTH_CHECK_PATH_MAX_LENGTH, default=d.HEALTH_CHECK_PATH
                ),
                "interval": integer(
                    d.HEALTH_CHECK_INTERVAL_RANGE, "Seconds between checks.", d.HEALTH_CHECK_INTERVAL
                ),
                "timeout": integer(
                    d.HEALTH_CHECK_TIMEOUT_RANGE,
                    "Seconds before a check fails; below interval.",
                    d.HEALTH_CHECK_TIMEOUT,
                ),
                "healthy_threshold": integer(
                    d.HEALTH_CHECK_THRESHOLD_RANGE, "Passes in a row to be healthy.", d.HEALTHY_THRESHOLD
                ),
                "unhealthy_threshold": integer(
                    d.HEALTH_CHECK_THRESHOLD_RANGE,
                    "Failures in a row to be unhealthy.",
                    d.UNHEALTHY_THRESHOLD,
                ),
                "success_codes": {
                    "description": "HTTP codes that pass: 200, 200,202 or 200-299 (200..499).",
                    "default": d.SUCCESS_CODES,
                    "oneOf": [
                        {"type": "string", "pattern": _SUCCESS_CODES.pattern},
                        {"type": "integer", "minimum": 200, "maximum": 499},
                    ],
                },
            },
        ),
        "deployment": section(
            "How a rolling replacement proceeds (ECS DeploymentConfiguration).",
            {
                "minimum_healthy_percent": integer(
                    d.MINIMUM_HEALTHY_PERCENT_RANGE,
                    "Healthy replicas kept, % of desired.",
                    d.MINIMUM_HEALTHY_PERCENT,
                ),
                "maximum_percent": integer(
                    d.MAXIMUM_PERCENT_RANGE, "Replicas allowed at once, % of desired.", d.MAXIMUM_PERCENT
                ),
                "health_check_grace_period": integer(
                    d.HEALTH_CHECK_GRACE_PERIOD_RANGE,
                    "Seconds unhealthy checks are ignored after a start.",
                    d.HEALTH_CHECK_GRACE_PERIOD,
                ),
                "strategy": choice(
                    d.DEPLOYMENT_STRATEGIES, "How replicas are replaced.", d.DEPLOYMENT_STRATEGY
                ),
                "canary_percent": number(
                    d.CANARY_PERCENT_RANGE, "canary: % first, multiples of 0.1.", d.CANARY_PERCENT
                ),
                "step_percent": number(
                    d.STEP_PERCENT_RANGE, "linear: % per step, multiples of 0.1.", d.STEP_PERCENT
                ),
                "bake_minutes": integer(d.BAKE_MINUTES_RANGE, "Minutes each step is watched by the alarms."),
            },
        ),
    }


def _listener_defs() -> dict[str, Schema]:
    return {
        "listener": section(
            "The HTTP listener: rules by priority, then the default action.",
            {
                "port": integer(
                    d.PORT_RANGE, "The listener's port on AWS (locally: local.port).", d.LISTENER_PORT
                ),
                "default_action": {"$ref": "#/$defs/action"},
                "certificate_arn": string(
                    "An ACM certificate: HTTPS on AWS (HTTP locally).", d.CERTIFICATE_ARN_PATTERN
                ),
                "rules": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/rule"},
                    "description": "Listener rules; without this key, the original three path rules.",
                },
            },
        ),
        "rule": section(
            "A listener rule: when all conditions match, its action.",
            {
                "priority": integer(d.PRIORITY_RANGE, "Lower is evaluated first; unique."),
                "conditions": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
                "action": {"$ref": "#/$defs/action"},
            },
            required=("priority", "conditions", "action"),
        ),
        "condition": one_of(
            {
                "path_pattern": values(_PATH_PATTERN.pattern, "Path patterns (* and ? wildcards)."),
                "host_header": values(_HOST_PATTERN.pattern, "Host names (* and ? wildcards)."),
                "http_header": section(
                    "A header and its values.",
                    {
                        "name": string(
                            "The header's name (not Host).", _TOKEN.pattern, d.HTTP_HEADER_NAME_MAX_LENGTH
                        ),
                        "values": values(None, "Values (* and ? wildcards)."),
                    },
                    required=("name", "values"),
                ),
                "http_request_method": values(_METHOD.pattern, "HTTP methods."),
                "query_string": {
                    "description": "key=value pairs (key optional).",
                    "oneOf": [
                        {"$ref": "#/$defs/query_pair"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/$defs/query_pair"},
                            "minItems": 1,
                            "maxItems": d.CONDITION_VALUES_PER_RULE,
                        },
                    ],
                },
                "source_ip": values(None, "Client CIDR blocks, IPv4 or IPv6."),
            },
            "One condition: exactly one of its types.",
        ),
        "query_pair": section(
            "A query-string pair.",
            {
                "key": string("The key (optional).", max_length=d.CONDITION_VALUE_MAX_LENGTH),
                "value": string("The value.", max_length=d.CONDITION_VALUE_MAX_LENGTH),
            },
            required=("value",),
        ),
    }


def _action_defs() -> dict[str, Schema]:
    part = {"type": ["string", "integer"], "maxLength": d.REDIRECT_PART_MAX_LENGTH}
    return {
        "action": one_of(
            {
                "forward": {
                    "description": "A service's name, or weighted target groups.",
                    "oneOf": [
                        {"type": "string", "pattern": _SERVICE_NAME.pattern},
                        {"$ref": "#/$defs/forward"},
                    ],
                },
                "fixed_response": {"$ref": "#/$defs/fixed_response"},
                "redirect": {"$ref": "#/$defs/redirect"},
            },
            "What a matched request gets: exactly one of forward, fixed_response, redirect.",
        ),
        "forward": section(
            "A weighted forward.",
            {
                "target_groups": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": d.TARGET_GROUPS_PER_ACTION,
                    "items": {"$ref": "#/$defs/weighted_target_group"},
                },
                "stickiness": section(
                    "Target-group stickiness (AWSALBTG cookie).",
                    {
                        "duration": integer(d.STICKINESS_DURATION_RANGE, "Seconds the choice is kept."),
                    },
                    required=("duration",),
                ),
            },
            required=("target_groups",),
        ),
        "weighted_target_group": section(
            "A target group and its weight.",
            {
                "name": string("The service's name.", _SERVICE_NAME.pattern),
                "weight": integer(d.WEIGHT_RANGE, "Its share of the requests.", 1),
            },
            required=("name",),
        ),
        "fixed_response": section(
            "An answer made by the load balancer.",
            {
                "status_code": integer(d.FIXED_RESPONSE_STATUS_RANGE, "2XX, 4XX or 5XX.")
                | {"not": {"minimum": 300, "maximum": 399}},
                "content_type": choice(
                    _FIXED_CONTENT_TYPES, "The body's type.", d.FIXED_RESPONSE_CONTENT_TYPE
                ),
                "message_body": {
                    "type": "string",
                    "maxLength": d.FIXED_RESPONSE_BODY_MAX_LENGTH,
                    "description": "The body.",
                },
            },
            required=("status_code",),
        ),
        "redirect": section(
            "A redirect; #{protocol}, #{host}, #{port}, #{path}, #{query} keep the request's.",
            {
                "status_code": choice(
                    ("HTTP_301", "HTTP_302"), "Permanent or temporary.", d.REDIRECT_STATUS_CODE
                ),
                "protocol": choice(("HTTP", "HTTPS", "#{protocol}"), "The scheme.", "#{protocol}"),
                "host": part | {"description": "The host."},
                "port": part | {"description": "The port."},
                "path": part | {"description": "The path; starts with /.", "pattern": "^/"},
                "query": part | {"description": "The query, without ?."},
            },
        ),
    }


def _stack_defs() -> dict[str, Schema]:
    return {
        "load_balancer": section(
            "The load balancer's attributes.",
            {
                "idle_timeout": integer(
                    d.IDLE_TIMEOUT_RANGE, "Seconds an idle connection is kept.", d.IDLE_TIMEOUT
                ),
                "desync_mitigation_mode": choice(
                    d.DESYNC_MITIGATION_MODES, "HTTP desync mitigation.", d.DESYNC_MITIGATION_MODE
                ),
                "drop_invalid_header_fields": {
                    "type": "boolean",
                    "default": d.DROP_INVALID_HEADER_FIELDS,
                    "description": "Drop headers whose names are not tokens.",
                },
            },
        ),
        "local": section(
            "The local stack (`microforum up`).",
            {
                "port": integer(d.PORT_RANGE, "The load balancer's local port.", d.LOCAL_PORT),
                "data_dir": string(
                    "Where logs and data go, relative to the stack file.", default=d.LOCAL_DATA_DIR
                ),
                "max_deregistration_delay": number(
                    d.LOCAL_MAX_DEREGISTRATION_DELAY_RANGE,
                    "Cap on the draining wait, seconds.",
                    d.LOCAL_MAX_DEREGISTRATION_DELAY,
                ),
                "initial_health_check_interval": number(
                    d.LOCAL_INITIAL_HEALTH_CHECK_INTERVAL_RANGE,
                    "Check interval of new targets, seconds.",
                    d.LOCAL_INITIAL_HEALTH_CHECK_INTERVAL,
                ),
                "time_scale": number(
                    d.LOCAL_TIME_SCALE_RANGE,
                    "How much faster AWS's minutes pass locally.",
                    d.LOCAL_TIME_SCALE,
                ),
                "access_log": section(
                    "Rotation of .microforum/access.log.",
                    {
                        "max_size_mib": integer(
                            d.LOCAL_ACCESS_LOG_MAX_SIZE_MIB_RANGE,
                            "A file is rotated before it grows past this, MiB.",
                            d.LOCAL_ACCESS_LOG_MAX_SIZE_MIB,
                        ),
                        "max_files": integer(
                            d.LOCAL_ACCESS_LOG_MAX_FILES_RANGE,
                            "Files kept in all: access.log, access.log.1, ...",
                            d.LOCAL_ACCESS_LOG_MAX_FILES,
                        ),
                    },
                ),
            },
        ),
        "cluster": section(
            "The ECS cluster's EC2 capacity.",
            {
                "instance_type": string(
                    "An EC2 instance type.", d.INSTANCE_TYPE_PATTERN, default=d.ECS_INSTANCE_TYPE
                ),
                "min_instances": integer(
                    d.CLUSTER_INSTANCES_RANGE, "At least; not above max.", d.ECS_MIN_INSTANCES
                ),
                "max_instances": integer(d.CLUSTER_INSTANCES_RANGE, "At most.", d.ECS_MAX_INSTANCES),
            },
        ),
        "database": section(
            "The PostgreSQL database on AWS (deploy without --no-database).",
            {
                "ca_bundle": string(
                    "A PEM file of CA certificates, relative to this file (the RDS bundle of the "
                    "stack's region): the services verify the server's certificate and name "
                    "(sslmode verify-full) instead of only encrypting (require). At most "
                    f"{d.DATABASE_CA_BUNDLE_MAX_BYTES // 1024} KiB."
                ),
            },
        ),
        "autoscaling": section(
            "Target tracking on the service's desired count (min <= max).",
            {
                "min": integer(d.AUTOSCALING_CAPACITY_RANGE, "Fewest replicas."),
                "max": integer(d.AUTOSCALING_CAPACITY_RANGE, "Most replicas."),
                "requests_per_target": number(
                    d.REQUESTS_PER_TARGET_RANGE, "Requests per target per minute.", 0
                )
                | {"default": None},
                "cpu_percent": number(d.CPU_PERCENT_RANGE, "Average CPU to keep.", 0) | {"default": None},
            },
            required=("min", "max"),
        ),
        "alarms": section(
            "The service's alarms; one that trips rolls a deployment back.",
            {
                "target_5xx": integer(
                    (0, 10_000_000), "Target 5XX per period above this.", d.ALARM_TARGET_5XX
                ),
                "unhealthy_hosts": integer(
                    (1, 5000), "Unhealthy hosts at least this.", d.ALARM_UNHEALTHY_HOSTS
                ),
                "p99_seconds": number(
                    (0.001, 3600), "Target response time p99 above this.", d.ALARM_P99_SECONDS
                ),
                "error_percent": number(
                    (0.0, 100.0), "4XX+5XX % of requests above this.", d.ALARM_ERROR_PERCENT
                ),
                "datapoints": integer(
                    (1, d.ALARM_EVALUATION_PERIODS_RANGE[1]),
                    "Breaching periods needed; not above evaluation_periods.",
                ),
                "evaluation_periods": integer(
                    d.ALARM_EVALUATION_PERIODS_RANGE, "Periods looked at.", d.ALARM_EVALUATION_PERIODS
                ),
            },
        ),
    }
