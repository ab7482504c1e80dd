"""ECS's canary and linear strategies on moto's server: deploy creates the alternate target
groups, puts the alternate at weight 0 in the production listener rule, and sends each service
its `deploymentConfiguration` (strategy, canary/linear settings, the rollback alarms) and
`loadBalancers[].advancedConfiguration`. moto runs no deployment: what is proven here is the
requests (botocore validates each against ECS's model before sending), what moto keeps of them,
and that a second deploy — also after ECS swapped the two target groups, as a completed
deployment leaves them — changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REGION, STACK_NAME, cli, client, deploy_args, put_images, write_stack

from microforum.spec import defaults as d


def _strategies(data: dict[str, Any]) -> None:
    data["services"]["users"]["deployment"] = {"strategy": "canary", "canary_percent": 10, "bake_minutes": 3}
    data["services"]["threads"]["deployment"] = {"strategy": "linear", "step_percent": 25}


def _group_arn(name: str) -> str:
    return str(client("elbv2").describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"])


def _rule_to(arn: str) -> dict[str, Any]:
    elbv2 = client("elbv2")
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]

    def groups(rule: dict[str, Any]) -> list[str]:
        return [
            g["TargetGroupArn"]
            for a in rule["Actions"]
            for g in a.get("ForwardConfig", {}).get("TargetGroups", [])
        ]

    return next(r for r in rules if arn in groups(r))


def _service(name: str) -> dict[str, Any]:
    ecs = client("ecs")
    cluster = ecs.list_clusters()["clusterArns"][0]
    return dict(ecs.describe_services(cluster=cluster, services=[name])["services"][0])


def test_canary_and_linear_services_get_their_strategy_alternate_group_and_rule(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(stack_file, _strategies)
    put_images()
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    assert f"  + create target group {STACK_NAME}-users-alternate" in "\n".join(
        line.split(":")[0] for line in out.splitlines()
    )
    users, alternate = _group_arn(f"{STACK_NAME}-users"), _group_arn(f"{STACK_NAME}-users-alternate")
    rule = _rule_to(users)
    weights = {g["TargetGroupArn"]: g["Weight"] for g in rule["Actions"][0]["ForwardConfig"]["TargetGroups"]}
    assert weights == {users: 1, alternate: 0}

    service = _service("users")
    config = service["deploymentConfiguration"]
    assert (config["strategy"], config["canaryConfiguration"]) == (
        "CANARY", {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3})  # fmt: skip
    kinds = ("target-5xx", "unhealthy-hosts", "p99-latency", "error-rate")
    names = [f"{STACK_NAME}-users-{kind}" for kind in kinds]
    assert config["alarms"] == {"alarmNames": names, "enable": True, "rollback": True}
    outputs = client("cloudformation").describe_stacks(StackName=STACK_NAME)["Stacks"][0]["Outputs"]
    role = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "EcsInfrastructureRoleArn")
    (balancer,) = service["loadBalancers"]
    advanced = {
        "alternateTargetGroupArn": alternate,
        "productionListenerRule": rule["RuleArn"],
        "roleArn": role,
    }
    assert balancer["advancedConfiguration"] == advanced
    threads = _service("threads")["deploymentConfiguration"]
    assert (threads["strategy"], threads["linearConfiguration"]) == (
        "LINEAR", {"stepPercent": 25.0, "stepBakeTimeInMinutes": d.STEP_BAKE_MINUTES})  # fmt: skip
    monolith = _service("monolith")
    assert monolith["deploymentConfiguration"]["strategy"] == "ROLLING"
    assert monolith["deploymentConfiguration"]["alarms"]["rollback"] is True
    assert "advancedConfiguration" not in monolith["loadBalancers"][0]

    code, out, _ = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert "no changes to make (dry run)" in out, out

    # As a completed canary leaves them: the rule all on the alternate, the service's two swapped.
    shifted = [{"TargetGroupArn": users, "Weight": 0}, {"TargetGroupArn": alternate, "Weight": 1}]
    actions = [{"Type": "forward", "ForwardConfig": {"TargetGroups": shifted}}]
    client("elbv2").modify_rule(RuleArn=rule["RuleArn"], Actions=actions)
    swapped = {**balancer, "targetGroupArn": alternate,
               "advancedConfiguration": {**advanced, "alternateTargetGroupArn": users}}  # fmt: skip
    client("ecs").update_service(cluster=service["clusterArn"], service="users", loadBalancers=[swapped])
    code, out, _ = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert "no changes to make (dry run)" in out, out
    # status follows the service to the group it is on now
    (instance,) = client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"]
    client("elbv2").register_targets(
        TargetGroupArn=alternate, Targets=[{"Id": instance["InstanceId"], "Port": 32768}]
    )
    argv = ["status", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file), "--json"]
    code, out, err = cli(*argv, capsys=capsys)
    assert code == 0, err
    targets = json.loads(out)["target_groups"]["users"]["targets"]
    assert [(t["id"], t["port"]) for t in targets] == [(instance["InstanceId"], 32768)]

    def more(data: dict[str, Any]) -> None:
        _strategies(data)
        data["services"]["users"]["deployment"]["canary_percent"] = 20
        data["services"]["threads"]["deployment"] = {"strategy": "rolling"}

    write_stack(stack_file, more)
    code, out, _ = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    lines = out.splitlines()
    assert "  ~ change service users: deploymentConfiguration" in lines, out
    assert "      deployment.canary_percent 10.0 → 20.0" in lines
    assert "      deployment.strategy LINEAR → ROLLING" in lines
    assert "  ~ change service threads: loadBalancers, deploymentConfiguration" in lines
    assert f"  - delete target group {STACK_NAME}-threads-alternate: no longer in stack.yaml" in lines
    code, _, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    assert "advancedConfiguration" not in _service("threads")["loadBalancers"][0]
    code, out, _ = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert "no changes to make (dry run)" in out, out


def test_a_canary_needs_a_rule_forwarding_to_its_service(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(
        stack_file, lambda data: data["services"]["monolith"].update(deployment={"strategy": "canary"})
    )
    code, _, err = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert code == 2
    key = "services.monolith.deployment.strategy"
    assert err.startswith(
        f"microforum: deploy: {key}: canary needs a listener rule forwarding to monolith alone"
    )
