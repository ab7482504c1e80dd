"""HTTPS on moto's server: `listener.certificate_arn` (a certificate made in moto's ACM) gives
HTTPS:443 carrying the rules, the services' plain-HTTP listener carrying them too, and HTTP:80
answering 301; a second deploy changes nothing; removing the key brings HTTP:80 forwarding
back; destroy leaves no listener."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import REGION, STACK_NAME, cli, client, deploy_args, put_images, write_stack

from microforum.spec import defaults as d


def _listeners() -> dict[int, dict[str, Any]]:
    elbv2 = client("elbv2")
    (lb,) = elbv2.describe_load_balancers()["LoadBalancers"]
    found = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    for listener in found:
        rules = elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
        listener["RuleCount"] = len([r for r in rules if not r.get("IsDefault")])
    return {listener["Port"]: listener for listener in found}


def test_https_listener_redirect_then_back_to_http_then_destroyed(
    aws: str, stack_file: Path, moto_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = client("acm").request_certificate(DomainName="forum.example.com")["CertificateArn"]
    put_images()
    code, _, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    rules = _listeners()[80]["RuleCount"]
    assert rules > 0

    def with_https(data: dict[str, Any]) -> None:
        data["listener"]["certificate_arn"] = arn

    write_stack(stack_file, with_https)
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    assert f"  + create listener HTTPS:443: forward to monolith, {d.TLS_POLICY}" in out
    assert "  - delete listener HTTP:80: HTTPS:443 carries the rules now" in out
    assert "  + create listener HTTP:80: 301 to HTTPS:443" in out
    assert out.splitlines()[-1].startswith("https://")  # the URL deploy prints
    listeners = _listeners()
    assert set(listeners) == {80, 443, d.INTERNAL_LISTENER_PORT}
    https = listeners[443]
    assert (https["Protocol"], https["SslPolicy"], https["RuleCount"]) == ("HTTPS", d.TLS_POLICY, rules)
    assert [c["CertificateArn"] for c in https["Certificates"]] == [arn]
    services = listeners[d.INTERNAL_LISTENER_PORT]
    assert (services["Protocol"], services["RuleCount"]) == ("HTTP", rules)
    redirect = listeners[80]["DefaultActions"][0]
    assert (redirect["Type"], redirect["RedirectConfig"]["StatusCode"], listeners[80]["RuleCount"]) == (
        "redirect", "HTTP_301", 0)  # fmt: skip
    task = client("ecs").describe_task_definition(taskDefinition=f"{STACK_NAME}-threads")["taskDefinition"]
    env = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}
    assert env["API_URL"].startswith("http://") and env["API_URL"].endswith(f":{d.INTERNAL_LISTENER_PORT}")

    code, out, err = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert code == 0 and "no changes to make (dry run)" in out, out  # a second deploy changes nothing

    write_stack(stack_file)  # the key removed: HTTP:80 forwards again, with the rules
    code, out, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    assert "  ~ change listener HTTP:80: forward to monolith" in out
    listeners = _listeners()
    assert sorted(listeners) == [80]
    assert (listeners[80]["DefaultActions"][0]["Type"], listeners[80]["RuleCount"]) == ("forward", rules)
    code, out, _ = cli(*deploy_args(stack_file, moto_template, "--dry-run"), capsys=capsys)
    assert "no changes to make (dry run)" in out, out

    write_stack(stack_file, with_https)
    code, _, err = cli(*deploy_args(stack_file, moto_template), capsys=capsys)
    assert code == 0, err
    argv = ["destroy", "--region", REGION, "--stack-name", STACK_NAME, "--stack", str(stack_file), "--yes"]
    _, out, _ = cli(*argv, capsys=capsys)  # (moto fails the stack's own deletion: its gap)
    assert (
        "- delete listener HTTPS:443" in out and f"- delete listener HTTP:{d.INTERNAL_LISTENER_PORT}" in out
    )
    assert "- delete listener HTTP:80" in out
    assert client("elbv2").describe_load_balancers()["LoadBalancers"] == []
