"""deploy with the database against moto's server mode: each service's task definition names
its own database secret only, the monolith the three, and the db-setup task runs (and must
succeed) before any service rolls.

moto's gaps, worked around here only: its CloudFormation makes neither Secrets Manager secrets
nor RDS, so the stack's database part is replaced by secrets made through the API beforehand
(`database_template`); no EC2 instance joins its cluster, so the test registers one; and no
container runs, so the test's clock "exits" the db-setup task when deploy polls it (moto
reports exit code 0). A task that fails is shown on recorded responses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import STACK_NAME, TAG, Recorded, client, put_images

from microforum.deploy.aws import Aws
from microforum.deploy.execute import Clock, DeployOptions, deploy
from microforum.deploy.setup_task import run_setup, setup_failure
from microforum.errors import MicroforumError
from microforum.spec.load import load_stack

RESOURCES = ("users", "threads", "posts")


@pytest.fixture()
def database_template(moto_template: Path) -> Path:
    """The moto template with the database part replaced by secrets made through the API."""
    template = yaml.safe_load(moto_template.read_text())
    arns = {
        key: client("secretsmanager").create_secret(Name=f"{STACK_NAME}-{key}", SecretString="{}")["ARN"]
        for key in ("master", *RESOURCES)
    }
    for name in [n for n, r in template["Resources"].items() if r.get("Condition") == "WithDatabase"]:
        del template["Resources"][name]
    policies = template["Resources"]["ExecutionRole"]["Properties"]["Policies"]
    secrets = next(p for p in policies if p["PolicyName"] == "read-database-secrets")
    secrets["PolicyDocument"]["Statement"][0]["Resource"] = list(arns.values())
    template["Outputs"]["DatabaseSecretArn"]["Value"] = arns["master"]
    for resource in RESOURCES:
        template["Outputs"][f"Database{resource.capitalize()}SecretArn"]["Value"] = arns[resource]
    moto_template.write_text(yaml.safe_dump(template))
    return moto_template


def _options(template: Path, **kw: Any) -> DeployOptions:
    return DeployOptions(stack_name=STACK_NAME, template=template, image_tag=TAG, poll=0.01, **kw)


def _cluster_with_an_instance() -> str:
    """The cluster, with the stack's first EC2 instance registered in it (moto joins none)."""
    cluster = client("ecs").list_clusters()["clusterArns"][0]
    reservations = client("ec2").describe_instances()["Reservations"]
    instance = reservations[0]["Instances"][0]["InstanceId"]
    document = json.dumps({"instanceId": instance})
    client("ecs").register_container_instance(cluster=cluster, instanceIdentityDocument=document)
    return cluster


class ExitingClock(Clock):
    """A clock whose sleep lets the running db-setup tasks exit (as their container would)."""

    def __init__(self, cluster: str) -> None:
        super().__init__(sleep=self._exit_setup_tasks)
        self.cluster = cluster
        self.exited: list[str] = []

    def _exit_setup_tasks(self, _: float) -> None:
        ecs = client("ecs")
        for arn in ecs.list_tasks(cluster=self.cluster, family=f"{STACK_NAME}-db-setup")["taskArns"]:
            task = ecs.describe_tasks(cluster=self.cluster, tasks=[arn])["tasks"][0]
            if task["lastStatus"] != "STOPPED":
                ecs.stop_task(cluster=self.cluster, task=arn, reason="Essential container in task exited")
                self.exited.append(arn)


def _secrets(family: str) -> dict[str, str]:
    task = client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
    (container,) = task["containerDefinitions"]
    # The secret's name: the ARN's last part without the 6 characters Secrets Manager adds.
    return {s["name"]: s["valueFrom"].rsplit(":", 1)[-1][:-7] for s in container.get("secrets", [])}


@pytest.mark.aws
def test_each_service_gets_its_own_secret_and_db_setup_runs_before_the_services(
    aws: str, stack_file: Path, database_template: Path, capsys: pytest.CaptureFixture[str], calls: Any
) -> None:
    put_images()
    stack = load_stack(stack_file)
    deploy(stack, _options(database_template, database=False), Aws("us-east-1"), print)
    cluster = _cluster_with_an_instance()
    clock = ExitingClock(cluster)
    capsys.readouterr()

    deploy(stack, _options(database_template), Aws("us-east-1"), print, clock)
    out = capsys.readouterr().out

    prefix = STACK_NAME
    assert {s: _secrets(f"{STACK_NAME}-{s}") for s in ("users", "threads", "posts", "monolith")} == {
        "users": {"USERS_DATABASE_SECRET": f"{prefix}-users"},
        "threads": {"THREADS_DATABASE_SECRET": f"{prefix}-threads"},
        "posts": {"POSTS_DATABASE_SECRET": f"{prefix}-posts"},
        "monolith": {f"{r.upper()}_DATABASE_SECRET": f"{prefix}-{r}" for r in RESOURCES},
    }
    assert _secrets(f"{STACK_NAME}-db-setup") == {
        "DATABASE_SECRET": f"{prefix}-master",
        **{f"{r.upper()}_DATABASE_SECRET": f"{prefix}-{r}" for r in RESOURCES},
    }
    (run,) = clock.exited  # one db-setup task ran, and it ran before any service changed
    lines = out.splitlines()
    setup = next(
        i for i, line in enumerate(lines) if "change databases users, threads, posts" in line and "[" in line
    )
    first_service = next(i for i, line in enumerate(lines) if "change service" in line and "[" in line)
    assert setup < first_service
    assert "  db-setup done" in lines
    task = client("ecs").describe_tasks(cluster=cluster, tasks=[run], include=["TAGS"])["tasks"][0]
    assert task["taskDefinitionArn"].split("/")[-1].startswith(f"{STACK_NAME}-db-setup:")
    assert {"key": "microforum:stack", "value": STACK_NAME} in task["tags"]
    revision = client("ecs").list_tags_for_resource(resourceArn=task["taskDefinitionArn"])["tags"]
    assert {t["key"]: t["value"] for t in revision} == {
        "microforum:stack": STACK_NAME,
        "microforum:db-setup": "succeeded",
    }

    # Nothing changed: no db-setup again (its revision is tagged as succeeded), no mutating call.
    calls.made.clear()
    deploy(stack, _options(database_template), Aws("us-east-1"), print, clock)
    assert clock.exited == [run]
    assert calls.mutating == []
    assert "no changes" in capsys.readouterr().out


def _answers(stopped: dict[str, Any]) -> Recorded:
    running = {"taskArn": "arn:aws:ecs:r:1:task/c/abc123", "lastStatus": "PENDING"}
    return Recorded(
        run_task=[{"tasks": [running], "failures": []}],
        describe_tasks=[{"tasks": [{**running, "lastStatus": "RUNNING"}]}, {"tasks": [stopped]}],
        get_log_events=[
            {"events": [{"message": "microforum: db-setup on postgresql://microforum:***@db: refused\n"}]}
        ],
        tag_resource=[{}],
    )


def test_a_failed_db_setup_ends_the_deploy_with_its_reason_and_output() -> None:
    stopped = {
        "taskArn": "arn:aws:ecs:r:1:task/c/abc123",
        "lastStatus": "STOPPED",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"exitCode": 1}],
    }
    aws = _answers(stopped)
    lines: list[str] = []
    params = {"cluster": "c", "taskDefinition": "arn:td/mf-db-setup:3"}
    with pytest.raises(MicroforumError) as info:
        run_setup(aws, params, "mf-logs", lines.append, (lambda _: None, lambda: 0.0, 60, 1))  # type: ignore[arg-type]
    assert info.value.message == (
        "db-setup failed (exit code 1; Essential container in task exited); no service was changed"
    )
    assert (
        info.value.hint
        == "its output: log group mf-logs, stream db-setup/db-setup/abc123; fix it and deploy again"
    )
    assert "  db-setup | microforum: db-setup on postgresql://microforum:***@db: refused" in lines
    assert "tag_resource" not in aws.calls  # not marked as done: the next deploy runs it again


@pytest.mark.parametrize(
    ("task", "failure"),
    [
        ({"containers": [{"exitCode": 0}]}, None),
        ({"containers": [{"exitCode": 2}], "stoppedReason": "Essential container in task exited"},
         "exit code 2; Essential container in task exited"),
        ({"containers": [{"reason": "CannotPullContainerError: pull access denied"}],
          "stoppedReason": "Task failed to start"},
         "no exit code; Task failed to start; CannotPullContainerError: pull access denied"),
        ({"stoppedReason": "Timeout waiting for network interface provisioning"},
         "no exit code; Timeout waiting for network interface provisioning"),
    ],
)  # fmt: skip
def test_only_exit_code_0_is_success(task: dict[str, Any], failure: str | None) -> None:
    assert setup_failure(task) == failure


def test_a_task_ecs_cannot_place_is_refused_with_the_reason() -> None:
    aws = Recorded(run_task=[{"tasks": [], "failures": [{"arn": "x", "reason": "RESOURCE:MEMORY"}]}])
    with pytest.raises(MicroforumError, match=r"^db-setup: ECS did not start its task \(RESOURCE:MEMORY\)"):
        run_setup(aws, {"cluster": "c"}, "g", print, (lambda _: None, lambda: 0.0, 60, 1))  # type: ignore[arg-type]


def test_a_db_setup_that_never_stops_is_a_failure_not_a_success() -> None:
    aws = _answers({"taskArn": "arn:aws:ecs:r:1:task/c/abc123", "lastStatus": "RUNNING"})
    now = iter(range(0, 1000, 30))
    with pytest.raises(MicroforumError, match="has not stopped after 60 s; no service was changed"):
        run_setup(aws, {"cluster": "c", "taskDefinition": "td"}, "g", print,  # type: ignore[arg-type]
                  (lambda _: None, lambda: float(next(now)), 60, 1))  # fmt: skip
    assert "tag_resource" not in aws.calls
