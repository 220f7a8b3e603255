"""Admission checks of the embedded API server beyond the CRD schema: a Device's desired value must
convert to the type of its property in the DeviceModel. The check and the refusal are
:func:`cloudcore.admission.device_refusal`, the same that cloudcore's validating webhook answers a
real cluster with. A Device whose model does not exist is accepted (as Kubernetes accepts objects that
name what is not there yet); its ModelFound condition says so."""

from __future__ import annotations

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
        if not model_name or models is None:
            return
        try:
            stored = await self.service.get(models, namespace, model_name)
        except APIError:
            return  # missing model: accepted, the ModelFound condition tells
        status = device_refusal(obj, stored.object(), old)
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
