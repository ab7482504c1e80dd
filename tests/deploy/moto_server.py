"""moto's server mode for the deploy tests, with two gaps of the emulator filled (tests only).

moto 5.2 names ECS's service-linked role `AWSServiceRoleForecs`; AWS names it
`AWSServiceRoleForECS` (IAM's table of service-linked roles). Its name table gets the entry.

moto 5.2's CreateService drops `deploymentConfiguration`, `healthCheckGracePeriodSeconds`,
`placementStrategy` and `capacityProviderStrategy` (its UpdateService keeps them), so
DescribeServices would never return what AWS returns and every second deploy would look like
a change. This wrapper stores those four request fields on the service, as UpdateService does;
nothing else of moto changes. Usage: python moto_server.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

from moto.ecs.responses import EC2ContainerServiceResponse
from moto.iam import models as iam_models
from moto.server import main

iam_models.SERVICE_NAME_CONVERSION["ecs"] = "ECS"

_KEPT = {
    "deploymentConfiguration": "deployment_configuration",
    "healthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
    "placementStrategy": "placement_strategy",
    "capacityProviderStrategy": "capacity_provider_strategy",
}
_create_service = EC2ContainerServiceResponse.create_service


def _create_service_keeping_fields(self: Any) -> Any:
    result = _create_service(self)
    cluster = self._get_param("cluster", "default").split("/")[-1]
    service = self.ecs_backend.services[f"{cluster}:{self._get_param('serviceName')}"]
    for param, attribute in _KEPT.items():
        value = self._get_param(param)
        if value is not None:
            setattr(service, attribute, value)
    return result


EC2ContainerServiceResponse.create_service = _create_service_keeping_fields  # type: ignore[method-assign]

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", sys.argv[1]])
