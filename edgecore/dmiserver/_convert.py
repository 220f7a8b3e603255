"""Device/DeviceModel objects as the cloud sent them (JSON) -> DMI messages, through ``dmi.convert``.

``crds`` and ``dmi.convert`` (pydantic models of the CRDs, ~1.5 MB) are imported by the first
conversion: a node holds its Devices without them until a mapper registers for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dmi.v1beta1 import api_pb2

__all__ = ["ConversionError", "device_to_dmi", "model_to_dmi"]


class ConversionError(ValueError):
    """An object that cannot become a DMI message (``dmi.convert.ConversionError``'s text, or an
    object the CRD models refuse)."""


def _parse(kind: str, obj: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    import crds

    model = crds.Device if kind == "Device" else crds.DeviceModel
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ConversionError(f"{kind}: invalid: {exc}") from exc


def device_to_dmi(device: dict[str, Any], model: dict[str, Any] | None) -> api_pb2.Device:
    """The DMI Device for a mapper, with KubeEdge's model-over-device override rules applied."""
    from dmi import convert

    try:
        dev = _parse("Device", device)
        if model is not None:
            dev = convert.effective_device(dev, _parse("DeviceModel", model))
        return convert.device_to_dmi(dev)
    except convert.ConversionError as exc:
        raise ConversionError(str(exc)) from exc


def model_to_dmi(model: dict[str, Any]) -> api_pb2.DeviceModel:
    from dmi import convert

    try:
        return convert.device_model_to_dmi(_parse("DeviceModel", model))
    except convert.ConversionError as exc:
        raise ConversionError(str(exc)) from exc
