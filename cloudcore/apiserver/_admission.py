"""Admission checks of the embedded API server beyond the CRD schema (a real cluster runs them as a
validating webhook; see docs/devices.md): a Device's desired value must convert to the type of its
property in the DeviceModel. A Device whose model does not exist is accepted (as Kubernetes accepts
objects that name what is not there yet); its ModelFound condition says so."""

from __future__ import annotations

from typing import Any

from crds import desired_value_problems
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
        from kubeapi import schema  # writes only

        spec = obj.get("spec") or {}
        if old is not None and (old.get("spec") or {}).get("properties") == spec.get("properties"):
            return  # a status or metadata write: what was admitted stays admitted
        model_name = str((spec.get("deviceModelRef") or {}).get("name") or "")
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        models = self.registry.preferred(_GROUP, "devicemodels")
        if not model_name or models is None:
            return
        try:
            stored = await self.service.get(models, namespace, model_name)
        except APIError:
            return  # missing model: accepted, the ModelFound condition tells
        problems = desired_value_problems(obj, stored.object())
        if not problems:
            return
        errors = [schema.FieldError("FieldValueInvalid", path, value, why) for path, value, why in problems]
        name = str((obj.get("metadata") or {}).get("name") or "")
        status = schema.invalid_status(resource.kind, resource.group, name, errors)
        details = status.get("details") or {}
        raise APIError(
            int(status["code"]),
            str(status["reason"]),
            str(status["message"]),
            name=name,
            group=resource.group,
            kind=resource.kind,
            causes=[StatusCause(**c) for c in details.get("causes") or []],
        )
