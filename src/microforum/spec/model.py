"""The typed model of a stack: frozen dataclasses, no I/O, no defaults of their own.

`load.py` builds these from stack.yaml (filling gaps from `defaults.py`); the local stack and the
deployment only ever read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ConditionField = Literal[
    "path-pattern",
    "host-header",
    "http-header",
    "http-request-method",
    "query-string",
    "source-ip",
]


@dataclass(frozen=True)
class HealthCheck:
    path: str
    interval: int
    timeout: int
    healthy_threshold: int
    unhealthy_threshold: int
    success_codes: str  # ALB Matcher.HttpCode syntax: "200", "200,202", "200-299"

    def accepts(self, status: int) -> bool:
        """Whether `status` is one of the success codes."""
        for part in self.success_codes.split(","):
            low, _, high = part.partition("-")
            if int(low) <= status <= int(high or low):
                return True
        return False


@dataclass(frozen=True)
class TargetGroup:
    name: str
    port: int  # the container port the target group forwards to
    health_check: HealthCheck
    deregistration_delay: int
    algorithm: str  # one of defaults.LOAD_BALANCING_ALGORITHMS


Strategy = Literal["rolling", "canary", "linear"]


@dataclass(frozen=True)
class Deployment:
    minimum_healthy_percent: int
    maximum_percent: int
    health_check_grace_period: int
    strategy: Strategy
    canary_percent: float  # canary: the new revision's share of traffic while it bakes
    step_percent: float  # linear: the share added at each step
    bake_minutes: int  # canary: the canary's bake; linear: each step's bake


@dataclass(frozen=True)
class Autoscaling:
    """Target tracking between `min` and `max` tasks; a target of None is not tracked."""

    min: int
    max: int
    requests_per_target: float | None  # ALBRequestCountPerTarget, requests per minute
    cpu_percent: float | None  # ECSServiceAverageCPUUtilization


@dataclass(frozen=True)
class Alarms:
    """A service's alarms' thresholds; each alarms at `datapoints` of `evaluation_periods`."""

    target_5xx: int  # HTTPCode_Target_5XX_Count per period, alarm when greater
    unhealthy_hosts: int  # UnHealthyHostCount, alarm when at least this
    p99_seconds: float  # TargetResponseTime p99, alarm when greater
    error_percent: float  # (target 4xx + 5xx) / requests * 100, alarm when greater
    period: int  # seconds (AWS time; the local stack divides by local.time_scale)
    datapoints: int
    evaluation_periods: int


@dataclass(frozen=True)
class Service:
    name: str
    builtin: bool  # a microforum service (`microforum serve NAME`) rather than a command
    command: tuple[str, ...]  # argv; listens on $PORT
    container_port: int
    host_port: int
    network_mode: str
    cpu: int
    memory: int
    desired_count: int
    environment: tuple[tuple[str, str], ...]
    target_group: TargetGroup
    deployment: Deployment
    autoscaling: Autoscaling | None
    alarms: Alarms


@dataclass(frozen=True)
class QueryPair:
    key: str | None
    value: str


@dataclass(frozen=True)
class Condition:
    field: ConditionField
    values: tuple[str, ...] = ()  # every type but query-string
    header_name: str | None = None  # http-header only
    query: tuple[QueryPair, ...] = ()  # query-string only


@dataclass(frozen=True)
class WeightedTargetGroup:
    name: str
    weight: int


@dataclass(frozen=True)
class Forward:
    target_groups: tuple[WeightedTargetGroup, ...]
    stickiness_duration: int | None = None  # seconds; None = target-group stickiness off


@dataclass(frozen=True)
class FixedResponse:
    status_code: int
    content_type: str
    message_body: str = ""


@dataclass(frozen=True)
class Redirect:
    status_code: Literal["HTTP_301", "HTTP_302"]
    protocol: str = "#{protocol}"
    host: str = "#{host}"
    port: str = "#{port}"
    path: str = "/#{path}"
    query: str = "#{query}"


Action = Forward | FixedResponse | Redirect


@dataclass(frozen=True)
class Rule:
    priority: int
    conditions: tuple[Condition, ...]
    action: Action


@dataclass(frozen=True)
class Listener:
    port: int
    default_action: Action
    rules: tuple[Rule, ...]  # sorted by priority, lowest first
    certificate_arn: str | None = None  # an ACM certificate: HTTPS:443 on AWS (HTTP:80 redirects)


@dataclass(frozen=True)
class LoadBalancer:
    idle_timeout: int
    desync_mitigation_mode: str  # one of defaults.DESYNC_MITIGATION_MODES
    drop_invalid_header_fields: bool


@dataclass(frozen=True)
class AccessLogRotation:
    max_size_mib: int  # a file is rotated before it would grow past this
    max_files: int  # files kept in all: access.log, access.log.1, ...


@dataclass(frozen=True)
class Local:
    port: int
    data_dir: str
    max_deregistration_delay: float
    initial_health_check_interval: float
    access_log: AccessLogRotation
    time_scale: float  # local seconds are AWS seconds / time_scale (alarms, cooldowns, bakes)


@dataclass(frozen=True)
class Cluster:
    """The ECS cluster's EC2 capacity (AWS only; capacity-provider managed scaling)."""

    instance_type: str
    min_instances: int
    max_instances: int


@dataclass(frozen=True)
class Database:
    """The PostgreSQL database on AWS: the CA certificates its server's is verified against."""

    ca_bundle: str | None = None  # the PEM file's path, as stack.yaml gives it
    ca_pem: str = ""  # its certificates (checked when loaded); "" without a bundle


@dataclass(frozen=True)
class Stack:
    name: str
    services: tuple[Service, ...]
    listener: Listener
    load_balancer: LoadBalancer
    local: Local
    cluster: Cluster
    database: Database = field(default_factory=Database)
    source: str = field(default="stack.yaml", compare=False)

    @property
    def target_groups(self) -> tuple[TargetGroup, ...]:
        return tuple(service.target_group for service in self.services)

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)
