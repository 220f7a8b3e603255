"""DMI messages and CRD models -> the SDK's dataclasses (and back for GetDevice).

The wire decoding (``google.protobuf.Any`` configData, field names) is ``dmi.convert``'s; this module
only reshapes its ``crds`` models into what the device runtime compares and runs.
"""

from __future__ import annotations

from typing import Any

import crds as crd
from dmi import convert
from dmi.v1beta1 import api_pb2
from mappers.sdk._types import (
    DEFAULT_CYCLE_MS,
    DeviceConfig,
    DeviceMethod,
    DeviceModel,
    HttpPush,
    ModelProperty,
    MqttPush,
    MySQLPush,
    PropertyConfig,
    PropertyType,
    PushMethod,
    RedisPush,
)


def _cycle(value: int | None) -> int:
    return int(value) if value else DEFAULT_CYCLE_MS


def _push(p: crd.PushMethod | None) -> PushMethod | None:
    if p is None:
        return None
    http = mqtt = redis = mysql = None
    if p.http is not None and p.http.host_name:
        http = HttpPush(
            p.http.host_name, int(p.http.port or 80), p.http.request_path or "/", int(p.http.timeout or 0)
        )
    if p.mqtt is not None and p.mqtt.address:
        mqtt = MqttPush(p.mqtt.address, p.mqtt.topic or "", int(p.mqtt.qos or 0), bool(p.mqtt.retained))
    db = p.db_method
    if db is not None and db.redis is not None and db.redis.redis_client_config is not None:
        rc = db.redis.redis_client_config
        if rc.addr:
            redis = RedisPush(rc.addr, int(rc.db or 0))
    if db is not None and db.mysql is not None and db.mysql.mysql_client_config is not None:
        mc = db.mysql.mysql_client_config
        if mc.addr:
            mysql = MySQLPush(mc.addr, mc.database or "", mc.user_name or "")
    out = PushMethod(http=http, mqtt=mqtt, redis=redis, mysql=mysql)
    return out if out.targets() else None


def device_from_crd(device: crd.Device) -> DeviceConfig:
    """A Device (already merged with its model's defaults, as edgecore sends it) as the SDK runs it."""
    spec = device.spec
    props = []
    for p in spec.properties or []:
        visitor: dict[str, Any] = dict(p.visitors.config_data or {}) if p.visitors else {}
        props.append(
            PropertyConfig(
                name=p.name,
                visitor=visitor,
                visitor_protocol=(p.visitors.protocol_name or "") if p.visitors else "",
                desired=p.desired.value if p.desired is not None else "",
                collect_cycle_ms=_cycle(p.collect_cycle),
                report_cycle_ms=_cycle(p.report_cycle),
                report_to_cloud=bool(p.report_to_cloud),
                push=_push(p.push_method),
            )
        )
    methods = tuple(
        DeviceMethod(m.name, m.description or "", tuple(m.property_names or [])) for m in spec.methods or []
    )
    state = spec.state_report
    legacy = device.status
    report_to_cloud = state.report_to_cloud if state else (legacy.report_to_cloud if legacy else None)
    report_cycle = state.report_cycle if state else (legacy.report_cycle if legacy else None)
    return DeviceConfig(
        namespace=device.metadata.namespace or "default",
        name=device.metadata.name or "",
        model=spec.device_model_ref.name or "",
        protocol_name=(spec.protocol.protocol_name or "") if spec.protocol else "",
        protocol=dict(spec.protocol.config_data or {}) if spec.protocol else {},
        properties=tuple(props),
        methods=methods,
        report_to_cloud=True if report_to_cloud is None else bool(report_to_cloud),
        state_report_cycle_ms=_cycle(report_cycle),
    )


def model_from_crd(model: crd.DeviceModel) -> DeviceModel:
    props = {}
    for p in model.spec.properties or []:
        props[p.name] = ModelProperty(
            name=p.name,
            type=PropertyType(p.type.value if hasattr(p.type, "value") else str(p.type)),
            access_mode=p.access_mode.value if p.access_mode is not None else "ReadWrite",
            minimum=p.minimum or "",
            maximum=p.maximum or "",
            unit=p.unit or "",
            description=p.description or "",
        )
    return DeviceModel(model.metadata.namespace or "default", model.metadata.name or "", props)


def device_from_dmi(msg: api_pb2.Device) -> DeviceConfig:
    return device_from_crd(convert.device_from_dmi(msg))


def model_from_dmi(msg: api_pb2.DeviceModel) -> DeviceModel:
    return model_from_crd(convert.device_model_from_dmi(msg))
