"""Every default of a stack, in one place, each with where it comes from.

Nothing else in microforum writes these numbers: the loader fills a stack.yaml's gaps from here,
and the local stack and the AWS deployment read the resulting model.
"""

from __future__ import annotations

STACK_FILE = "stack.yaml"

# The original architecture's built-in services; `monolith` is all three in one process.
BUILTIN_SERVICES = ("users", "threads", "posts", "monolith")

# Task definition (seed: task-definition.json of the original reference architecture).
CONTAINER_PORT = 3000
HOST_PORT = 0  # dynamic host port in bridge mode (ECS PortMapping.hostPort)
NETWORK_MODE = "bridge"
CPU = 256
MEMORY = 256
DESIRED_COUNT = 1

# ECS service DeploymentConfiguration defaults for replica services (BOTO-ECS).
MINIMUM_HEALTHY_PERCENT = 100
MAXIMUM_PERCENT = 200
HEALTH_CHECK_GRACE_PERIOD = 0  # seconds (CreateServiceRequest.healthCheckGracePeriodSeconds)

# Target group health check: the seed's values (path /, 6 s, 5 s, 2, 2), success codes 200.
HEALTH_CHECK_PATH = "/"
HEALTH_CHECK_INTERVAL = 6
HEALTH_CHECK_TIMEOUT = 5
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 2
SUCCESS_CODES = "200"
# AWS's default deregistration delay is 300 s (target group attribute
# deregistration_delay.timeout_seconds); the seed set none. microforum uses 30 s so a rolling
# deployment does not wait five minutes per task; stack.yaml may say otherwise.
DEREGISTRATION_DELAY = 30
LOAD_BALANCING_ALGORITHM = "round_robin"
LOAD_BALANCING_ALGORITHMS = ("round_robin", "least_outstanding_requests")

# Listener and load balancer attributes (docs/alb.md §A, §D, §E).
LISTENER_PORT = 80
IDLE_TIMEOUT = 60
DESYNC_MITIGATION_MODE = "defensive"
DESYNC_MITIGATION_MODES = ("monitor", "defensive", "strictest")  # docs/alb.md §E
DROP_INVALID_HEADER_FIELDS = True
FIXED_RESPONSE_CONTENT_TYPE = "text/plain"
REDIRECT_STATUS_CODE = "HTTP_301"

# The original listener rules: path pattern -> target group, by priority; default: monolith.
DEFAULT_TARGET_GROUP = "monolith"
DEFAULT_RULES = (
    (1, "/api/users*", "users"),
    (2, "/api/threads*", "threads"),
    (3, "/api/posts*", "posts"),
)

# The local stack: where `microforum up` listens, where it keeps its files, and the cap on the
# deregistration delay it waits (a laptop need not wait the full AWS delay; docs/local-stack.md).
LOCAL_PORT = 8080
LOCAL_DATA_DIR = ".microforum"
LOCAL_MAX_DEREGISTRATION_DELAY = 2.0
# While a target is still `initial`, the local stack checks it this often instead of every
# `interval` seconds, so `up` is ready in about a second; thresholds and states are ALB's.
LOCAL_INITIAL_HEALTH_CHECK_INTERVAL = 0.2
# The local access log is rotated by size, keeping at most 10 MiB x 5 files (50 MiB) on disk,
# as docker's json-file driver does with max-size/max-file (docs/operations.md).
LOCAL_ACCESS_LOG_MAX_SIZE_MIB = 10
LOCAL_ACCESS_LOG_MAX_FILES = 5
LOCAL_ACCESS_LOG_MAX_SIZE_MIB_RANGE = (1, 1024)
LOCAL_ACCESS_LOG_MAX_FILES_RANGE = (1, 100)
# The local console (`up` serves it, docs/console.md): ALB's figures sampled every
# CONSOLE_SAMPLE_INTERVAL seconds and kept CONSOLE_HISTORY seconds (CloudWatch's ALB metrics have
# one-minute periods; locally, finer ones show a killed target at once); the page polls every
# CONSOLE_POLL_INTERVAL seconds and lists up to CONSOLE_LOG_LINES access-log lines.
CONSOLE_SAMPLE_INTERVAL = 2.0
CONSOLE_HISTORY = 300.0
CONSOLE_POLL_INTERVAL = 1.0
CONSOLE_LOG_LINES = 50

# AWS limits the loader enforces (docs/alb.md §A; the ELBv2 and ECS API references), as inclusive ranges.
HEALTH_CHECK_INTERVAL_RANGE = (5, 300)
HEALTH_CHECK_TIMEOUT_RANGE = (2, 120)
HEALTH_CHECK_THRESHOLD_RANGE = (2, 10)
DEREGISTRATION_DELAY_RANGE = (0, 3600)
PRIORITY_RANGE = (1, 50000)
PORT_RANGE = (1, 65535)
IDLE_TIMEOUT_RANGE = (1, 4000)
WEIGHT_RANGE = (0, 999)
STICKINESS_DURATION_RANGE = (1, 604800)
CONDITION_VALUE_MAX_LENGTH = 128
CONDITION_VALUES_PER_RULE = 5
WILDCARDS_PER_RULE = 5
TARGET_GROUPS_PER_ACTION = 5
HTTP_HEADER_NAME_MAX_LENGTH = 40
FIXED_RESPONSE_BODY_MAX_LENGTH = 1024
FIXED_RESPONSE_STATUS_RANGE = (200, 599)  # and not 3XX (FixedResponseActionConfig.StatusCode)
REDIRECT_PART_MAX_LENGTH = 128  # RedirectActionConfig Host, Port, Path, Query
HEALTH_CHECK_PATH_MAX_LENGTH = 1024
HOST_PORT_RANGE = (0, 65535)  # 0: a dynamic host port
CPU_RANGE = (1, 10240)  # ECS task definition cpu units
MEMORY_RANGE = (1, 122880)  # MiB
DESIRED_COUNT_RANGE = (0, 100)
MINIMUM_HEALTHY_PERCENT_RANGE = (0, 100)
MAXIMUM_PERCENT_RANGE = (100, 200)
HEALTH_CHECK_GRACE_PERIOD_RANGE = (0, 2_147_483_647)
# Local-only limits (no AWS counterpart).
LOCAL_MAX_DEREGISTRATION_DELAY_RANGE = (0, 3600)
LOCAL_INITIAL_HEALTH_CHECK_INTERVAL_RANGE = (0.05, 300)

# AWS deployment (`microforum deploy`): the cluster template's parameters and deploy's choices.
ECS_INSTANCE_TYPE = "t3.small"
ECS_MIN_INSTANCES = 1
ECS_MAX_INSTANCES = 4
ECS_TARGET_CAPACITY = 100  # capacity provider managed scaling, percent
LOG_RETENTION_DAYS = 30  # one of CloudWatch Logs' allowed values
DATABASE_INSTANCE_CLASS = "db.t4g.micro"
DATABASE_STORAGE_GIB = 20  # RDS gp3 minimum
# database.ca_bundle travels in the task definitions' environment, and a task definition holds
# at most 64 KiB (ECS service quotas): a region's RDS bundle (a few KiB) fits, the global one not.
DATABASE_CA_BUNDLE_MAX_BYTES = 32 * 1024
ECR_KEEP_IMAGES = 10  # lifecycle policy: the last N images of each repository
# ECS containerDefinition.stopTimeout is at most 120 s (ECS task definition parameters); deploy
# uses min(deregistration delay, this) so in-flight requests finish while the target drains.
ECS_MAX_STOP_TIMEOUT = 120
DEPLOY_STABLE_TIMEOUT = 900  # seconds `deploy` waits for the services to become stable

# HTTPS (`listener.certificate_arn`): on AWS the rules move to an HTTPS:443 listener with ALB's
# recommended security policy (Elastic Load Balancing User Guide, "Security policies for your
# Application Load Balancer": ELBSecurityPolicy-TLS13-1-2-2021-06 is the recommended default),
# and HTTP:80 answers 301 to https://#{host}:443/#{path}?#{query}. Locally the listener stays HTTP.
HTTPS_PORT = 443
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# An ACM certificate ARN: arn:<partition>:acm:<region>:<account>:certificate/<id> (ACM API
# reference, CertificateArn).
CERTIFICATE_ARN_PATTERN = r"^arn:aws(-[a-z]+)*:acm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate/[0-9a-f-]{1,64}$"

# Deployment strategies: ECS's `deploymentConfiguration.strategy` (ROLLING, CANARY, LINEAR) with
# the ECS API reference's defaults and limits (CanaryConfiguration, LinearConfiguration).
DEPLOYMENT_STRATEGIES = ("rolling", "canary", "linear")
DEPLOYMENT_STRATEGY = "rolling"
CANARY_PERCENT = 5.0  # canaryPercent: multiples of 0.1 from 0.1 to 100.0
CANARY_PERCENT_RANGE = (0.1, 100.0)
CANARY_BAKE_MINUTES = 10  # canaryBakeTimeInMinutes
STEP_PERCENT = 10.0  # linearConfiguration.stepPercent: multiples of 0.1 from 3.0 to 100.0
STEP_PERCENT_RANGE = (3.0, 100.0)
STEP_BAKE_MINUTES = 6  # linearConfiguration.stepBakeTimeInMinutes
BAKE_MINUTES_RANGE = (0, 1440)

# Autoscaling: Application Auto Scaling target tracking on an ECS service. Both cooldowns are
# 300 s for ECS (Application Auto Scaling User Guide, "Target tracking scaling policies":
# ScaleOutCooldown/ScaleInCooldown defaults). The policy's own alarms: scale out after 3
# one-minute datapoints above the target, scale in after 15 below 90 % of it (the alarms
# target tracking creates, TargetTracking-...-AlarmHigh/AlarmLow).
SCALE_OUT_COOLDOWN = 300
SCALE_IN_COOLDOWN = 300
SCALING_PERIOD = 60
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_RATIO = 0.9
# ECS: at most 5,000 tasks per service (Amazon ECS service quotas); MinCapacity <= MaxCapacity.
AUTOSCALING_CAPACITY_RANGE = (0, 5000)
REQUESTS_PER_TARGET_RANGE = (1, 1_000_000)  # requests per target per minute
CPU_PERCENT_RANGE = (1, 100)

# Alarms for every service, named in its deploymentConfiguration.alarms (a deployment that trips
# one rolls back). The error rate is ECS Express Mode's: 4xx+5xx over 1 % of requests in 2 of 3
# one-minute datapoints; the other thresholds are microforum's choices, same 2-of-3 evaluation.
ALARM_TARGET_5XX = 10  # HTTPCode_Target_5XX_Count per period, alarm when greater
ALARM_UNHEALTHY_HOSTS = 1  # UnHealthyHostCount, alarm when at least this
ALARM_P99_SECONDS = 2.0  # TargetResponseTime p99
ALARM_ERROR_PERCENT = 1.0
ALARM_PERIOD = 60
ALARM_DATAPOINTS = 2
ALARM_EVALUATION_PERIODS = 3
ALARM_EVALUATION_PERIODS_RANGE = (1, 60)

# The ECS cluster's EC2 capacity in stack.yaml's `cluster` (the template's parameters above).
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
CLUSTER_INSTANCES_RANGE = (0, 1000)

# The local stack's time scale: AWS's minutes (alarm periods, cooldowns, bakes) pass this many
# times faster under `up`, so a canary's 10-minute bake takes a minute on a laptop.
LOCAL_TIME_SCALE = 10.0
LOCAL_TIME_SCALE_RANGE = (1.0, 10_000.0)
# On ECS a new task's failed health checks are ignored this long, so a slow start is not a
# failed deployment; a health_check_grace_period of 0 (the default) takes this value on ECS
# (locally replicas start in a second and need none). Seconds.
ECS_HEALTH_CHECK_GRACE_PERIOD = 30
# The services' keep-alive (idle) timeout on ECS is the ALB's idle timeout plus this margin:
# targets must keep idle connections open longer than the load balancer, or 502s follow
# (ALB "Connection idle timeout" documentation). Seconds.
TARGET_KEEP_ALIVE_MARGIN = 15

# Per-replica log files under `up` (<data_dir>/logs/<replica>.log, read by `microforum logs`),
# rotated by size as docker's json-file driver does (its max-size/max-file options): at most
# this many MiB per file, this many files per replica (the current one and the rotated ones).
LOCAL_REPLICA_LOG_MAX_SIZE_MIB = 10
LOCAL_REPLICA_LOG_MAX_FILES = 3
