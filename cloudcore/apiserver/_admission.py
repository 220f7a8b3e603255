"""Admission checks of the embedded API server beyond the CRD schema: a Device's property names must be
unique (as KubeEdge's admission has it) and its desired values must
convert to the type of its property in the DeviceModel. The check and the refusal are
:func:`cloudcore.admission.device_refusal`, the same that cloudcore's validating webhook answers a
real cluster with. A Device whose model does not exist is accepted (as Kubernetes accepts objects that
name what is not there yet); its ModelFound condition says so."""

from __future__ import annotations

import contextlib
from typing import Any

from cloudcore.admission import device_refusal
from crds import device_properties_changed
from kubeapi.errors import APIError, StatusCause
from kubeapi.objects import ObjectService
from kubeapi.resources import Registry, ResourceType

_GROUP = "devices.kubeedge.io"


class DeviceAdmission:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.service: ObjectService | None = None

    async def __call__(self, resource: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if resource.group != _GROUP or resource.kind != "Device" or self.service is None:
            return
        if not device_properties_changed(obj, old):
            return  # before the model lookup: a status or metadata write costs no read
        spec = obj.get("spec") or {}
        model_name = str((spec.get("deviceModelRef") or {}).get("name") or "")
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        models = self.registry.preferred(_GROUP, "devicemodels")
        model = None
        if model_name and models is not None:
            # A missing model is accepted (the ModelFound condition tells); the rest is still checked.
            with contextlib.suppress(APIError):
                model = (await self.service.get(models, namespace, model_name)).object()
        status = device_refusal(obj, model, old)
        if status is None:
            return
        details = status["details"]
        raise APIError(
            int(status["code"]),
            str(status["reason"]),
            str(status["message"]),
            name=details["name"],
            group=resource.group,
            kind=resource.kind,
            causes=[StatusCause(**c) for c in details.get("causes") or []],
        )
