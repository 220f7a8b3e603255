"""Device/DeviceModel objects as the cloud sent them (JSON) -> DMI messages, through ``dmi.convert``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

import crds
from dmi import convert
from dmi.convert import ConversionError
from dmi.v1beta1 import api_pb2

__all__ = ["ConversionError", "device_to_dmi", "model_to_dmi"]


def _parse(model: type[crds.Device] | type[crds.DeviceModel], obj: dict[str, Any]) -> Any:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ConversionError(model.__name__, f"invalid: {exc}") from exc


def device_to_dmi(device: dict[str, Any], model: dict[str, Any] | None) -> api_pb2.Device:
    """The DMI Device for a mapper, with KubeEdge's model-over-device override rules applied."""
    dev = _parse(crds.Device, device)
    if model is not None:
        dev = convert.effective_device(dev, _parse(crds.DeviceModel, model))
    return convert.device_to_dmi(dev)


def model_to_dmi(model: dict[str, Any]) -> api_pb2.DeviceModel:
    return convert.device_model_to_dmi(_parse(crds.DeviceModel, model))
