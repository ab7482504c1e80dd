"""botocore's own service model as a check on in-memory AWS fakes: `refusal` says what AWS's
SDK would refuse in a call (unknown or missing parameters, wrong types, through its parameter
validator) plus an empty string for a required member, which the validator lets through."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore import xform_name
from botocore.model import OperationModel
from botocore.validate import ParamValidator


@functools.cache
def operation(name: str) -> OperationModel:
    """botocore's model of "<client>.<method>", e.g. "elbv2.create_rule"."""
    client, method = name.split(".")
    model = botocore.session.get_session().get_service_model(client)
    by_method = {xform_name(op): op for op in model.operation_names}
    return model.operation_model(by_method[method])


def refusal(name: str, params: Mapping[str, Any]) -> str:
    """What AWS's SDK would refuse in this call ("" when nothing)."""
    shape = operation(name).input_shape
    report = ParamValidator().validate(dict(params), shape)
    problems = [report.generate_report()] if report.has_errors() else []
    problems += [f"required {key} is empty" for key in shape.required_members if params.get(key) == ""]
    return "; ".join(problems)
