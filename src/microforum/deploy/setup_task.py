"""Run the one-off `microforum db-setup` task and wait for its exit code (docs/deploying.md#database).

deploy runs it before any service rolls: `run_task`, then `describe_tasks` until it stopped;
exit code 0 is success, which tags its task definition revision (names.SETUP_TAG) so that the
next deploy runs it again only for a new revision. Anything else ends the deploy with the
task's stopped reason, its exit code and the last lines it logged; no service was changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from microforum.deploy.aws import Aws
from microforum.deploy.names import SETUP_DONE, SETUP_TAG
from microforum.deploy.render import SETUP
from microforum.errors import MicroforumError

JSON = dict[str, Any]
Say = Callable[[str], None]
LOG_LINES = 20  # the last lines of the task's output shown when it failed


def setup_failure(task: Mapping[str, Any]) -> str | None:
    """None when the stopped task's container exited 0, else what went wrong (pure)."""
    container = (task.get("containers") or [{}])[0]
    code = container.get("exitCode")
    if code == 0:
        return None
    reasons = [r for r in (task.get("stoppedReason"), container.get("reason")) if r]
    return "; ".join([f"exit code {code}" if code is not None else "no exit code", *reasons])


def stream_name(task_arn: str) -> str:
    """The awslogs stream of the set-up task: prefix/container/task id."""
    return f"{SETUP}/{SETUP}/{task_arn.rsplit('/', 1)[-1]}"


def run_setup(
    aws: Aws,
    params: Mapping[str, Any],
    log_group: str,
    say: Say,
    wait: tuple[Callable[[float], None], Callable[[], float], float, float],
) -> None:
    """Run the task `params` (run_task arguments) and raise unless it exits 0.
    `wait`: (sleep, monotonic, timeout, poll)."""
    sleep, monotonic, timeout, poll = wait
    answer = aws.call("ecs", "run_task", **params)
    if answer.get("failures") or not answer.get("tasks"):
        reasons = ", ".join(str(f.get("reason", f)) for f in answer.get("failures", [])) or "no task"
        raise MicroforumError(
            f"db-setup: ECS did not start its task ({reasons}); no service was changed",
            hint="check the cluster's capacity (instances, memory), then deploy again",
        )
    task = answer["tasks"][0]
    arn = task["taskArn"]
    say(f"  db-setup task {arn.rsplit('/', 1)[-1]} started; waiting for it to stop")
    deadline = monotonic() + timeout
    while task.get("lastStatus") != "STOPPED":
        if monotonic() > deadline:
            raise MicroforumError(
                f"db-setup: its task {arn} has not stopped after {timeout:g} s; no service was changed",
                hint=f"see its output in log group {log_group}, stream {stream_name(arn)}; deploy again",
            )
        sleep(poll)
        task = aws.call("ecs", "describe_tasks", cluster=params["cluster"], tasks=[arn])["tasks"][0]
    failure = setup_failure(task)
    if failure:
        for line in _last_lines(aws, log_group, stream_name(arn)):
            say(f"  db-setup | {line}")
        raise MicroforumError(
            f"db-setup failed ({failure}); no service was changed",
            hint=f"its output: log group {log_group}, stream {stream_name(arn)}; fix it and deploy again",
        )
    tag = [{"key": SETUP_TAG, "value": SETUP_DONE}]
    aws.call("ecs", "tag_resource", resourceArn=params["taskDefinition"], tags=tag)
    say("  db-setup done")


def _last_lines(aws: Aws, group: str, stream: str) -> list[str]:
    """The task's last lines, or none when they cannot be read (the failure is what matters)."""
    try:
        answer = aws.call("logs", "get_log_events", logGroupName=group, logStreamName=stream, limit=LOG_LINES)
    except MicroforumError:
        return []
    return [str(e.get("message", "")).rstrip("\n") for e in answer.get("events", [])]
