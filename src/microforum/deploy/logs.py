"""`microforum logs --region R --stack-name S [SERVICE] [--since D] [--follow]`: the deployed
stack's CloudWatch Logs, shown as the local stack's are (local/logs.py): interleaved in time,
each line prefixed with its task (`users-0a1b2c3d` for a task of service users).

The tasks log with the awslogs driver to the cluster stack's log group (output LogGroupName),
one stream per task: `<service>/<container>/<task id>` (awslogs-stream-prefix is the service).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from microforum.deploy.aws import Aws
from microforum.deploy.remote import read_stack
from microforum.errors import MicroforumError
from microforum.local.logs import FOLLOW_INTERVAL, Line, show
from microforum.local.replicalogs import timestamp


def task_source(stream: str) -> str:
    """users/users/0a1b2c3d4e5f... -> users-0a1b2c3d (the service and the task id's start)."""
    parts = stream.split("/")
    return f"{parts[0]}-{parts[-1][:8]}" if len(parts) >= 2 else stream


def event_line(event: dict[str, object]) -> Line:
    stamp = timestamp(int(str(event["timestamp"])) / 1000).decode().rstrip()
    return stamp, task_source(str(event["logStreamName"])), str(event["message"]).rstrip("\n")


def log_group(aws: Aws, stack_name: str) -> str:
    state = read_stack(aws, stack_name)
    if state is None or "LogGroupName" not in state.outputs:
        raise MicroforumError(
            f"logs of stack {stack_name}: no such deployed stack in {aws.region}",
            hint="deploy it first, or check --stack-name and --region",
        )
    return state.outputs["LogGroupName"]


def _events(aws: Aws, group: str, service: str | None, start_ms: int) -> list[tuple[str, Line]]:
    params: dict[str, object] = {"logGroupName": group, "startTime": start_ms}
    if service:
        params["logStreamNamePrefix"] = f"{service}/"
    found = aws.paginate("logs", "filter_log_events", "events", **params)
    # (the prefix again here: not every implementation of the API applies it, moto's does not)
    mine = [e for e in found if not service or str(e["logStreamName"]).startswith(f"{service}/")]
    return sorted(((str(e["eventId"]), event_line(e)) for e in mine), key=lambda item: item[1])


def print_aws_logs(aws: Aws, stack_name: str, service: str | None, since: float | None, follow: bool,
                   out: Callable[[str], None], *, clock: Callable[[], float] = time.time,
                   keep_going: Callable[[], bool] = lambda: True) -> int:  # fmt: skip
    """Print the stack's log events (then, following, new ones); how many."""
    group = log_group(aws, stack_name)
    start = int((clock() - since) * 1000) if since is not None else 0
    seen: set[str] = set()
    count = 0
    while True:
        for event_id, line in _events(aws, group, service, start):
            if event_id not in seen:
                seen.add(event_id)
                out(show(line))
                count += 1
        if not follow or not keep_going():
            return count
        # from a little before the newest line: events may arrive late; `seen` drops repeats
        start = max(start, int(clock() * 1000) - 60_000)
        time.sleep(FOLLOW_INTERVAL * 8)
