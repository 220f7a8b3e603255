"""Device/DeviceModel objects (JSON from the cloud) -> DMI messages.

INTERIM: a small stand-in until ``dmi.convert`` (the one shared conversion, incl. KubeEdge's
model-over-device override rules and Any wrapping) lands on main; then this module only adapts
dicts to it.
"""

from __future__ import annotations

import copy
from typing import Any

from google.protobuf import any_pb2, wrappers_pb2

from dmi.v1beta1 import api_pb2


class ConversionError(ValueError):
    pass


def _any(key: str, value: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    if isinstance(value, bool):
        out.Pack(wrappers_pb2.BoolValue(value=value))
    elif isinstance(value, str):
        out.Pack(wrappers_pb2.StringValue(value=value))
    elif isinstance(value, int):
        out.Pack(wrappers_pb2.Int64Value(value=value))
    elif isinstance(value, float):
        out.Pack(wrappers_pb2.FloatValue(value=value))
    else:
        raise ConversionError(f"configData key {key!r}: only scalar values reach a mapper")
    return out


def _customized(data: Any) -> api_pb2.CustomizedValue:
    cv = api_pb2.CustomizedValue()
    for k, v in (data or {}).items():
        cv.data[k].CopyFrom(_any(k, v))
    return cv


def _merged_device(device: dict[str, Any], model: dict[str, Any] | None) -> dict[str, Any]:
    dev = copy.deepcopy(device)
    if not model:
        return dev
    mspec = model.get("spec") or {}
    spec = dev.setdefault("spec", {})
    proto = spec.setdefault("protocol", {})
    base = copy.deepcopy(mspec.get("protocolConfigData") or {})
    base.update(proto.get("configData") or {})
    if base:
        proto["configData"] = base
    mprops = {p.get("name"): p for p in mspec.get("properties") or [] if isinstance(p, dict)}
    for prop in spec.get("properties") or []:
        mvis = (mprops.get(prop.get("name")) or {}).get("visitors")
        if not mvis:
            continue
        vis = prop.get("visitors") or {}
        cfg = copy.deepcopy(mvis.get("configData") or {})
        cfg.update(vis.get("configData") or {})
        prop["visitors"] = {"protocolName": mvis.get("protocolName", ""), "configData": cfg}
    return dev


def device_to_dmi(device: dict[str, Any], model: dict[str, Any] | None) -> api_pb2.Device:
    dev = _merged_device(device, model)
    meta = dev.get("metadata") or {}
    spec = dev.get("spec") or {}
    out = api_pb2.Device(name=meta.get("name", ""), namespace=meta.get("namespace", "default"))
    out.spec.deviceModelReference = (spec.get("deviceModelRef") or {}).get("name", "")
    proto = spec.get("protocol") or {}
    out.spec.protocol.protocolName = proto.get("protocolName", "")
    out.spec.protocol.configData.CopyFrom(_customized(proto.get("configData")))
    for p in spec.get("properties") or []:
        dp = out.spec.properties.add(
            name=p.get("name", ""),
            reportCycle=int(p.get("reportCycle") or 0),
            collectCycle=int(p.get("collectCycle") or 0),
            reportToCloud=bool(p.get("reportToCloud")),
        )
        desired = p.get("desired")
        if isinstance(desired, dict):
            dp.desired.value = str(desired.get("value", ""))
            for k, v in (desired.get("metadata") or {}).items():
                dp.desired.metadata[k] = str(v)
        vis = p.get("visitors")
        if isinstance(vis, dict):
            dp.visitors.protocolName = vis.get("protocolName", "")
            dp.visitors.configData.CopyFrom(_customized(vis.get("configData")))
    for m in spec.get("methods") or []:
        out.spec.methods.add(
            name=m.get("name", ""),
            description=m.get("description", ""),
            propertyNames=m.get("propertyNames") or [],
        )
    sr = spec.get("stateReport") or {}
    out.status.reportToCloud = bool(sr.get("reportToCloud"))
    out.status.reportCycle = int(sr.get("reportCycle") or 0)
    return out


def model_to_dmi(model: dict[str, Any]) -> api_pb2.DeviceModel:
    meta = model.get("metadata") or {}
    out = api_pb2.DeviceModel(name=meta.get("name", ""), namespace=meta.get("namespace", "default"))
    for p in (model.get("spec") or {}).get("properties") or []:
        out.spec.properties.add(
            name=p.get("name", ""),
            description=p.get("description", ""),
            type=p.get("type", ""),
            accessMode=p.get("accessMode", ""),
            minimum=p.get("minimum", ""),
            maximum=p.get("maximum", ""),
            unit=p.get("unit", ""),
        )
    return out
