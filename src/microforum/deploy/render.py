"""stack.yaml + the cluster stack's outputs -> what deploy applies (pure; no boto3).

Small `convert_*` functions each turn one part of the typed model into the plain dict an AWS
API takes (the boto3 request shapes), like copilot's transformers: the spec, the converters and
the template stay apart. Every number comes from the model, which took its defaults from
`microforum.spec.defaults`.

Resources that do not exist yet are named by placeholders, replaced by the executor once it
knows their ARNs: `<tg:NAME>` (a target group), `<td:NAME>` (a task definition revision),
`<listener>`. Stack outputs that are not known yet (no stack) render as `<output:KEY>`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from microforum.deploy.names import (
    SERVICE_TAG,
    ecs_tags,
    logical_id,
    output_ref,
    repository_name,
    repository_prefix,
    tags,
    target_group_name,
    task_family,
    task_role_output,
    td_ref,
    tg_ref,
)
from microforum.services.catrust import BUNDLE_VARIABLE
from microforum.services.settings import OWNED
from microforum.spec import defaults as d
from microforum.spec.model import (
    Action,
    Condition,
    FixedResponse,
    Forward,
    Redirect,
    Rule,
    Service,
    Stack,
)

JSON = dict[str, Any]

# Outputs of infrastructure/ecs.yaml that deploy reads (plus one TaskRole<Name>Arn per service).
REQUIRED_OUTPUTS = (
    "VpcId",
    "ClusterName",
    "CapacityProviderName",
    "LoadBalancerArn",
    "LoadBalancerDnsName",
    "ExecutionRoleArn",
    "LogGroupName",
)
# The database secrets (docs/deploying.md#database): the master's, for the db-setup task only,
# and one per resource, for the services that store it (the monolith stores all three).
MASTER_SECRET_OUTPUT = "DatabaseSecretArn"
RESOURCES = OWNED["monolith"]
SETUP = "db-setup"  # the key of the one-off database set-up task among the task definitions
SETUP_COMMAND = ("microforum", "db-setup")
SETUP_CPU, SETUP_MEMORY = 128, 256  # CPU units and MiB: a few statements over one connection


def secret_output(resource: str) -> str:
    """The stack output holding `resource`'s database secret ARN."""
    return f"Database{logical_id(resource)}SecretArn"


DATABASE_OUTPUTS = (MASTER_SECRET_OUTPUT, *(secret_output(r) for r in RESOURCES))


@dataclass(frozen=True)
class Target:
    """Where the stack goes: the names deploy derives and what the cluster stack reported."""

    stack_name: str
    region: str
    outputs: Mapping[str, str] = field(default_factory=dict)
    images: Mapping[str, str] = field(default_factory=dict)  # service -> image URI with tag
    database: bool = True
    repository_prefix: str | None = None  # None: the stack's own repositories

    @property
    def prefix(self) -> str:
        return repository_prefix(self.stack_name, self.repository_prefix)

    @property
    def shared_repositories(self) -> bool:
        return self.repository_prefix is not None

    def output(self, key: str) -> str:
        """A stack output, or its placeholder while the stack does not exist."""
        return self.outputs.get(key, output_ref(key))

    def image(self, service: str) -> str:
        return self.images.get(service, f"<image:{repository_name(self.prefix, service)}>")


@dataclass(frozen=True)
class Desired:
    """Everything deploy reconciles after the cluster stack, keyed by service name."""

    repositories: Mapping[str, JSON]
    task_definitions: Mapping[str, JSON]
    target_groups: Mapping[str, JSON]
    target_group_attributes: Mapping[str, list[JSON]]
    listener: JSON
    rules: tuple[JSON, ...]
    services: Mapping[str, JSON]
    setup_run: JSON | None = None  # run_task of the db-setup task (with the database only)

    def as_json(self) -> JSON:
        """The document `microforum render` prints."""
        return {
            "repositories": dict(self.repositories),
            "task_definitions": dict(self.task_definitions),
            "target_groups": {
                name: {**tg, "Attributes": self.target_group_attributes[name]}
                for name, tg in self.target_groups.items()
            },
            "listener": {**self.listener, "Rules": list(self.rules)},
            "services": dict(self.services),
        }


# ------------------------------------------------------------------------- the cluster template


def template_parameters(stack: Stack, *, database: bool) -> dict[str, str]:
    """infrastructure/ecs.yaml's Parameters, from stack.yaml and `defaults` (all strings)."""
    lb = stack.load_balancer
    values: dict[str, object] = {
        "ListenerPort": stack.listener.port,
        "IdleTimeout": lb.idle_timeout,
        "DesyncMitigationMode": lb.desync_mitigation_mode,
        "DropInvalidHeaderFields": lb.drop_invalid_header_fields,
        "InstanceType": stack.cluster.instance_type,
        "MinSize": stack.cluster.min_instances,
        "MaxSize": stack.cluster.max_instances,
        "TargetCapacity": d.ECS_TARGET_CAPACITY,
        "LogRetentionDays": d.LOG_RETENTION_DAYS,
        "DatabaseEnabled": database,
        "DatabaseInstanceClass": d.DATABASE_INSTANCE_CLASS,
        "DatabaseStorage": d.DATABASE_STORAGE_GIB,
    }
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def render_template(stack: Stack, base: JSON) -> JSON:
    """The cluster template plus one task role (no permissions) and its output per service."""
    template = json.loads(json.dumps(base))  # a deep copy that stays plain JSON
    for service in stack.services:
        logical = f"TaskRole{logical_id(service.name)}"
        template["Resources"][logical] = convert_task_role(service)
        template["Outputs"][task_role_output(service.name)] = {
            "Description": f"The task role of service {service.name}.",
            "Value": {"Fn::GetAtt": [logical, "Arn"]},
        }
    return template


def convert_task_role(service: Service) -> JSON:
    """A task role with no permissions: the services call no AWS API (least privilege)."""
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"microforum task role of service {service.name} (no AWS permissions)",
            "Tags": [{"Key": SERVICE_TAG, "Value": service.name}],
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        # Confused-deputy guard (ECS developer guide, task IAM roles).
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }
                ],
            },
        },
    }


# ------------------------------------------------------------------------- ECR


def convert_repository(service: Service, target: Target) -> JSON:
    """create_repository arguments plus the lifecycle policy text (keep the last N images)."""
    policy = {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the last {d.ECR_KEEP_IMAGES} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": d.ECR_KEEP_IMAGES,
                },
                "action": {"type": "expire"},
            }
        ]
    }
    # A shared repository belongs to no one stack: it carries no stack tag, so no stack's
    # destroy deletes it (docs/deploying.md#repositories).
    owner = [] if target.shared_repositories else tags(target.stack_name, service.name)
    return {
        "repositoryName": repository_name(target.prefix, service.name),
        "tags": owner,
        "imageTagMutability": "IMMUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
        "lifecyclePolicyText": json.dumps(policy, sort_keys=True),
    }


# ------------------------------------------------------------------------- task definitions


def stop_timeout(service: Service) -> int:
    """Seconds between SIGTERM and SIGKILL: the draining time, within ECS's 120 s cap."""
    return max(1, min(service.target_group.deregistration_delay, d.ECS_MAX_STOP_TIMEOUT))


def api_url(stack: Stack, target: Target) -> str:
    """The URL of the load balancer's listener (what deploy prints; the services' API_URL)."""
    port = stack.listener.port
    return f"http://{target.output('LoadBalancerDnsName')}" + (f":{port}" if port != 80 else "")


def keep_alive_timeout(stack: Stack) -> int:
    """The services' idle timeout: longer than the ALB's, so the ALB closes idle connections
    first and no request races a close (docs/deploying.md#timeouts)."""
    return stack.load_balancer.idle_timeout + d.TARGET_KEEP_ALIVE_MARGIN


def convert_environment(stack: Stack, service: Service, target: Target) -> list[JSON]:
    env = dict(service.environment)
    env.setdefault("PORT", str(service.container_port))
    # Services reach each other through the ALB, like the original (API_URL).
    env.setdefault("API_URL", api_url(stack, target))
    env.setdefault("IDLE_TIMEOUT", str(keep_alive_timeout(stack)))
    env.update(database_tls(stack, target))
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def database_tls(stack: Stack, target: Target) -> dict[str, str]:
    """libpq's TLS settings for RDS: encrypted always, and the server's certificate and name
    verified when stack.yaml gives the CA bundle (docs/deploying.md#database)."""
    if not target.database:
        return {}
    if not stack.database.ca_pem:
        return {"PGSSLMODE": "require"}
    return {"PGSSLMODE": "verify-full", BUNDLE_VARIABLE: stack.database.ca_pem}


def secret_variable(resource: str) -> str:
    return f"{resource.upper()}_DATABASE_SECRET"


def convert_secrets(service: Service, target: Target) -> list[JSON]:
    """The database secrets of the resources `service` stores, and no other."""
    if not target.database or not service.builtin:
        return []
    # By name, as ECS returns them (the plan compares with what it returns).
    return sorted(
        (
            {"name": secret_variable(r), "valueFrom": target.output(secret_output(r))}
            for r in OWNED.get(service.name, ())
        ),
        key=lambda s: s["name"],
    )


def convert_container(stack: Stack, service: Service, target: Target) -> JSON:
    container: JSON = {
        "name": service.name,
        "image": target.image(service.name),
        "essential": True,
        "cpu": service.cpu,
        "memory": service.memory,
        "portMappings": [
            {"containerPort": service.container_port, "hostPort": service.host_port, "protocol": "tcp"}
        ],
        "environment": convert_environment(stack, service, target),
        "stopTimeout": stop_timeout(service),
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": target.output("LogGroupName"),
                "awslogs-region": target.region,
                "awslogs-stream-prefix": service.name,
            },
        },
    }
    if not service.builtin:
        container["command"] = list(service.command)
    secrets = convert_secrets(service, target)
    if secrets:
        container["secrets"] = secrets
    return container


def convert_task_definition(stack: Stack, service: Service, target: Target) -> JSON:
    """register_task_definition arguments: bridge networking, dynamic host port, awslogs."""
    return {
        "family": task_family(target.stack_name, service.name),
        "taskRoleArn": target.output(task_role_output(service.name)),
        "executionRoleArn": target.output("ExecutionRoleArn"),
        "networkMode": service.network_mode,
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [convert_container(stack, service, target)],
        "tags": ecs_tags(target.stack_name, service.name),
    }


def convert_setup_task(stack: Stack, target: Target) -> JSON:
    """The one-off `microforum db-setup` task: the master secret and every resource's, run by
    deploy before the services roll (any service's image holds the command)."""
    secrets = [{"name": "DATABASE_SECRET", "valueFrom": target.output(MASTER_SECRET_OUTPUT)}]
    secrets += [{"name": secret_variable(r), "valueFrom": target.output(secret_output(r))} for r in RESOURCES]
    secrets.sort(key=lambda s: s["name"])
    env = database_tls(stack, target)
    container = {
        "name": SETUP,
        "image": target.image(stack.services[0].name),
        "essential": True,
        "cpu": SETUP_CPU,
        "memory": SETUP_MEMORY,
        "command": list(SETUP_COMMAND),
        "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        "secrets": secrets,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": target.output("LogGroupName"),
                "awslogs-region": target.region,
                "awslogs-stream-prefix": SETUP,
            },
        },
    }
    return {
        "family": task_family(target.stack_name, SETUP),
        "executionRoleArn": target.output("ExecutionRoleArn"),
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [container],
        "tags": ecs_tags(target.stack_name),
    }


def convert_setup_run(target: Target) -> JSON:
    """run_task arguments for the set-up task (on the services' capacity provider)."""
    return {
        "cluster": target.output("ClusterName"),
        "taskDefinition": td_ref(SETUP),
        "count": 1,
        "startedBy": "microforum-deploy",
        "capacityProviderStrategy": [
            {"capacityProvider": target.output("CapacityProviderName"), "weight": 1, "base": 0}
        ],
        "tags": ecs_tags(target.stack_name),
        "propagateTags": "TASK_DEFINITION",
    }


# ------------------------------------------------------------------------- target groups


def convert_target_group(service: Service, target: Target) -> JSON:
    """create_target_group arguments. No HealthCheckPort: `traffic-port` is required with
    dynamic host ports (docs/ecs.md §F.3; ECS rejects an explicit port)."""
    hc = service.target_group.health_check
    return {
        "Name": target_group_name(target.stack_name, service.name),
        "Protocol": "HTTP",
        "Port": service.target_group.port,
        "VpcId": target.output("VpcId"),
        "TargetType": "instance",  # bridge networking registers instance id + host port
        "HealthCheckProtocol": "HTTP",
        "HealthCheckEnabled": True,
        "HealthCheckPath": hc.path,
        "HealthCheckIntervalSeconds": hc.interval,
        "HealthCheckTimeoutSeconds": hc.timeout,
        "HealthyThresholdCount": hc.healthy_threshold,
        "UnhealthyThresholdCount": hc.unhealthy_threshold,
        "Matcher": {"HttpCode": hc.success_codes},
        "Tags": tags(target.stack_name, service.name),
    }


def convert_target_group_attributes(service: Service) -> list[JSON]:
    tg = service.target_group
    return [
        {"Key": "deregistration_delay.timeout_seconds", "Value": str(tg.deregistration_delay)},
        {"Key": "load_balancing.algorithm.type", "Value": tg.algorithm},
    ]


# ------------------------------------------------------------------------- listener and rules


def convert_condition(condition: Condition) -> JSON:
    """One rule condition in the `Field` + `*Config` shape (BOTO-ELBV2 RuleCondition)."""
    f = condition.field
    if f == "http-header":
        config = {"HttpHeaderName": condition.header_name, "Values": list(condition.values)}
        return {"Field": f, "HttpHeaderConfig": config}
    if f == "query-string":
        pairs = [
            {"Key": q.key, "Value": q.value} if q.key is not None else {"Value": q.value}
            for q in condition.query
        ]
        return {"Field": f, "QueryStringConfig": {"Values": pairs}}
    key = {
        "path-pattern": "PathPatternConfig",
        "host-header": "HostHeaderConfig",
        "http-request-method": "HttpRequestMethodConfig",
        "source-ip": "SourceIpConfig",
    }[f]
    return {"Field": f, key: {"Values": list(condition.values)}}


def convert_action(action: Action) -> JSON:
    """A listener action: forward (weighted, sticky), fixed-response or redirect."""
    if isinstance(action, Forward):
        config: JSON = {
            "TargetGroups": [
                {"TargetGroupArn": tg_ref(g.name), "Weight": g.weight} for g in action.target_groups
            ],
        }
        if action.stickiness_duration is not None:
            config["TargetGroupStickinessConfig"] = {
                "Enabled": True,
                "DurationSeconds": action.stickiness_duration,
            }
        return {"Type": "forward", "ForwardConfig": config}
    if isinstance(action, FixedResponse):
        fixed: JSON = {"StatusCode": str(action.status_code), "ContentType": action.content_type}
        if action.message_body:
            fixed["MessageBody"] = action.message_body
        return {"Type": "fixed-response", "FixedResponseConfig": fixed}
    assert isinstance(action, Redirect)
    return {
        "Type": "redirect",
        "RedirectConfig": {
            "Protocol": action.protocol,
            "Host": action.host,
            "Port": action.port,
            "Path": action.path,
            "Query": action.query,
            "StatusCode": action.status_code,
        },
    }


def convert_rule(rule: Rule, target: Target) -> JSON:
    """create_rule arguments (the listener ARN is added when it is known)."""
    return {
        "Priority": rule.priority,
        "Conditions": sorted((convert_condition(c) for c in rule.conditions), key=lambda c: c["Field"]),
        "Actions": [convert_action(rule.action)],
        "Tags": tags(target.stack_name),
    }


def convert_listener(stack: Stack, target: Target) -> JSON:
    return {
        "LoadBalancerArn": target.output("LoadBalancerArn"),
        "Protocol": "HTTP",
        "Port": stack.listener.port,
        "DefaultActions": [convert_action(stack.listener.default_action)],
        "Tags": tags(target.stack_name),
    }


# ------------------------------------------------------------------------- ECS services


def convert_service(service: Service, target: Target) -> JSON:
    """create_service arguments: ALB, circuit breaker with rollback, AZ spread then binpack."""
    dep = service.deployment
    return {
        "cluster": target.output("ClusterName"),
        "serviceName": service.name,
        "taskDefinition": td_ref(service.name),
        "desiredCount": service.desired_count,
        "loadBalancers": [
            {
                "targetGroupArn": tg_ref(service.name),
                "containerName": service.name,
                "containerPort": service.container_port,
            }
        ],
        "healthCheckGracePeriodSeconds": dep.health_check_grace_period or d.ECS_HEALTH_CHECK_GRACE_PERIOD,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": dep.maximum_percent,
            "minimumHealthyPercent": dep.minimum_healthy_percent,
        },
        "placementStrategy": [
            {"type": "spread", "field": "attribute:ecs.availability-zone"},
            {"type": "binpack", "field": "memory"},
        ],
        "capacityProviderStrategy": [
            {"capacityProvider": target.output("CapacityProviderName"), "weight": 1, "base": 0}
        ],
        "tags": ecs_tags(target.stack_name, service.name),
        "propagateTags": "SERVICE",  # the service's tasks carry its tags
        "enableECSManagedTags": True,
    }


# ------------------------------------------------------------------------- everything


def render(stack: Stack, target: Target) -> Desired:
    """All of deploy's API-managed resources for `stack` on `target`."""
    services = stack.services
    tasks = {s.name: convert_task_definition(stack, s, target) for s in services}
    if target.database and services:
        tasks[SETUP] = convert_setup_task(stack, target)
    return Desired(
        repositories={s.name: convert_repository(s, target) for s in services},
        task_definitions=tasks,
        target_groups={s.name: convert_target_group(s, target) for s in services},
        target_group_attributes={s.name: convert_target_group_attributes(s) for s in services},
        listener=convert_listener(stack, target),
        rules=tuple(convert_rule(r, target) for r in stack.listener.rules),
        services={s.name: convert_service(s, target) for s in services},
        setup_run=convert_setup_run(target) if SETUP in tasks else None,
    )
