"""AWS failures become one line with a hint (aws.translate), and stuck stacks are refused.

These build botocore's own exception objects, as botocore raises them for AWS's error
responses (no AWS is needed to make one); the end-to-end lines are in test_deploy_aws.py.
"""

from __future__ import annotations

import botocore.exceptions as bex
import pytest

from microforum.deploy.aws import translate
from microforum.deploy.remote import StackState
from microforum.deploy.stack import check_usable, resource_change, stack_step
from microforum.errors import MicroforumError


def client_error(code: str, message: str = "") -> bex.ClientError:
    return bex.ClientError({"Error": {"Code": code, "Message": message}}, "CreateTargetGroup")


@pytest.mark.parametrize(
    ("exc", "message", "hint"),
    [
        (
            bex.NoCredentialsError(),
            "elasticloadbalancing:CreateTargetGroup: no AWS credentials found",
            "AWS_ACCESS_KEY_ID",
        ),
        (bex.NoRegionError(), "no AWS region configured", "--region"),
        (
            client_error("AccessDenied", "User: x is not authorized"),
            "elasticloadbalancing:CreateTargetGroup: access denied",
            "grant the caller elasticloadbalancing:CreateTargetGroup",
        ),
        (
            client_error("TooManyTargetGroups", "You have reached the maximum number of target groups"),
            "elasticloadbalancing:CreateTargetGroup: AWS quota reached: You have reached the maximum number of target groups",  # noqa: E501
            "quota increase",
        ),
        (
            client_error("LimitExceededException", "limit"),
            "elasticloadbalancing:CreateTargetGroup: AWS quota reached: limit",
            "quota increase",
        ),
        (
            client_error("ExpiredToken", "expired"),
            "elasticloadbalancing:CreateTargetGroup: the AWS credentials were rejected (ExpiredToken)",
            "refresh",
        ),
        (
            client_error("ValidationError", "bad port"),
            "elasticloadbalancing:CreateTargetGroup: bad port",
            None,
        ),
    ],
    ids=["no-credentials", "no-region", "access-denied", "quota-elb", "quota-generic", "expired", "other"],
)
def test_translate(exc: Exception, message: str, hint: str | None) -> None:
    error = translate(exc, "elbv2", "create_target_group")
    assert error.message == message
    if hint is None:
        assert error.hint is None
    else:
        assert error.hint is not None and hint in error.hint


def state(status: str) -> StackState:
    return StackState(status=status, outputs={}, parameters={"A": "1"}, template={"Resources": {}})


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        ("ROLLBACK_COMPLETE", "it is in ROLLBACK_COMPLETE (its creation failed and was rolled back)"),
        (
            "UPDATE_ROLLBACK_FAILED",
            "it is in UPDATE_ROLLBACK_FAILED (an update failed and its rollback failed)",
        ),
        ("DELETE_FAILED", "it is in DELETE_FAILED (a deletion failed)"),
        ("UPDATE_IN_PROGRESS", "another operation is running (UPDATE_IN_PROGRESS)"),
    ],
)
def test_a_stack_in_a_failed_state_is_refused_with_a_hint(status: str, problem: str) -> None:
    with pytest.raises(MicroforumError) as info:
        check_usable("mf", state(status))
    assert info.value.message == f"deploy stack mf: {problem}"
    assert info.value.hint


@pytest.mark.parametrize("status", ["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"])
def test_a_settled_stack_is_usable(status: str) -> None:
    check_usable("mf", state(status))


def test_the_stack_is_updated_only_when_template_or_parameters_change() -> None:
    assert stack_step("mf", state("CREATE_COMPLETE"), {"Resources": {}}, {"A": "1"}) is None
    changed = stack_step("mf", state("CREATE_COMPLETE"), {"Resources": {}}, {"A": "2"})
    assert changed is not None and changed.message == "change stack mf: A=2"
    created = stack_step("mf", None, {"Resources": {}}, {"A": "1"})
    assert created is not None and created.operation == "cloudformation.create_stack"


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            {
                "Action": "Modify",
                "LogicalResourceId": "LoadBalancer",
                "ResourceType": "AWS::X",
                "Replacement": "False",
            },
            "Modify LoadBalancer (AWS::X)",
        ),
        (
            {
                "Action": "Modify",
                "LogicalResourceId": "Database",
                "ResourceType": "AWS::Y",
                "Replacement": "True",
            },
            "Modify Database (AWS::Y), replaced",
        ),
        (
            {
                "Action": "Modify",
                "LogicalResourceId": "Db",
                "ResourceType": "AWS::Y",
                "Replacement": "Conditional",
            },
            "Modify Db (AWS::Y), may be replaced",
        ),
        (
            {"Action": "Remove", "LogicalResourceId": "Secret", "ResourceType": "AWS::Z"},
            "Remove Secret (AWS::Z)",
        ),
    ],
    ids=["modify", "replace", "maybe-replace", "remove"],
)
def test_a_change_set_entry_is_one_line_saying_whether_it_replaces(change: dict[str, str], line: str) -> None:
    assert resource_change(change) == line


def test_update_rollback_failed_says_continue_the_rollback_never_destroy() -> None:
    with pytest.raises(MicroforumError) as info:
        check_usable("mf", state("UPDATE_ROLLBACK_FAILED"))
    assert info.value.hint is not None
    assert "aws cloudformation continue-update-rollback --stack-name mf" in info.value.hint
    assert "microforum destroy" not in info.value.hint
