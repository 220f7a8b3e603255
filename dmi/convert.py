"""Conversions between the CRD models (``crds``) and the DMI v1beta1 messages, used by edgecore and the
mapper SDK alike.

What crosses the wire
    ``device_to_dmi`` carries what KubeEdge's edgecore sends a mapper: name, namespace, the model name,
    protocol, properties (desired value, visitors, cycles, reportToCloud, every push method), methods and
    the effective state report (``spec.stateReport``, else the legacy ``status``) in ``DeviceStatus``.
    The DMI has no place for ``nodeName``, other metadata, a DeviceModel's ``protocol``,
    ``protocolConfigData`` or property ``visitors``: edgecore first merges the model into the device
    (``effective_device``, KubeEdge's override rules) and sends that. Proto3 scalars cannot tell zero from
    unset, so ``0``/``""``/``false`` come back as absent (as Go's ``omitempty`` would write them).

Messages a Go mapper dereferences are always present
    KubeEdge's edgecore builds the DMI Device from the CRD's JSON, where ``protocol``, a property's
    ``desired`` and ``visitors`` are Go structs (never omitted), so its mappers read
    ``property.Desired.Value``, ``property.Visitors.ConfigData.Data`` and ``device.Spec.Protocol`` without
    a nil check (mapper-framework ``pkg/util/parse/grpc.go``) and panic when one is missing. So
    ``device_to_dmi`` always sets them: ``desired`` with an empty value, ``visitors`` and ``protocol``
    with an empty ``configData`` (where KubeEdge's would have none, and its own mappers would panic).
    Reading back, an empty ``desired``, visitor, protocol or ``configData`` is absent again.

configData, anomalyDetection and ``google.protobuf.Any``
    Each top-level value is packed into a standard wrapper that KubeEdge's Go mappers decode
    (mapper-framework ``DecodeAnyValue`` knows StringValue, Int32Value, Int64Value, FloatValue, BoolValue
    and rejects everything else, DoubleValue included):

    * ``str`` -> StringValue, ``bool`` -> BoolValue;
    * ``int`` -> Int32Value when it fits, else Int64Value. KubeEdge decodes JSON numbers as float64 and
      sends them as 32-bit FloatValue, so 16777217 arrives as 16777216; here integers stay exact;
    * ``float`` -> FloatValue (the only floating wrapper a Go mapper accepts). A Go mapper re-encodes
      the float32 as the shortest decimal that round-trips (Go's JSON encoding) before its driver
      parses it, so it sees exactly the value written when that decimal equals it: true for every
      value with up to 6 significant digits and nearly all with 7 (0.1, 1.5, 0.001, -273.15, 1e-05).
      Floats that would change (some with 7 or more digits, beyond float32 range, NaN, infinities)
      raise ``ConversionError`` instead of being silently altered: quote them as strings or round them;
    * ``None``, objects and arrays raise ``ConversionError``: the wire has no way to carry them.

    ``any_to_value`` reverses this; a FloatValue decodes to that shortest decimal (what the Go driver
    sees), so CRD -> DMI -> CRD is the identity for every value the conversion accepts.

Errors name the JSON path of the offending value, e.g. ``spec.properties[0].visitors.configData.scale``.
"""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import any_pb2, wrappers_pb2
from pydantic import BaseModel, ValidationError

import crds
from dmi.v1beta1 import api_pb2

Scalar = str | int | float | bool
ModelT = TypeVar("ModelT", bound=BaseModel)

TYPE_URL_PREFIX = "type.googleapis.com/"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ConversionError(ValueError):
    """A value cannot be converted; ``path`` is its JSON path, ``problem`` says why."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# --- google.protobuf.Any <-> Python scalars -------------------------------------------------------


def _to_float32(value: float) -> float:
    packed: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return packed


def float32_decimal(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (what Go's JSON encoder prints)."""
    if not math.isfinite(value):
        return value
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if _to_float32(candidate) == value:
            return candidate
    return value


def value_to_any(value: object, path: str) -> any_pb2.Any:
    """Pack one configData/anomalyDetection value as a Go mapper expects it (see module docs)."""
    wrapper_any: Any
    if isinstance(value, bool):
        wrapper_any = wrappers_pb2.BoolValue(value=value)
    elif isinstance(value, str):
        wrapper_any = wrappers_pb2.StringValue(value=value)
    elif isinstance(value, int):
        if INT32_MIN <= value <= INT32_MAX:
            wrapper_any = wrappers_pb2.Int32Value(value=value)
        elif INT64_MIN <= value <= INT64_MAX:
            wrapper_any = wrappers_pb2.Int64Value(value=value)
        else:
            raise ConversionError(path, f"integer {value} is outside the 64-bit range DMI can carry")
    elif isinstance(value, float):
        wrapper_any = wrappers_pb2.FloatValue(value=_checked_float32(value, path))
    elif value is None:
        raise ConversionError(path, "null cannot be carried by DMI; remove the key or give it a value")
    elif isinstance(value, Mapping | list | tuple):
        kind = "objects" if isinstance(value, Mapping) else "arrays"
        raise ConversionError(
            path, f"nested {kind} cannot be carried by DMI: each value must be a string, number or boolean"
        )
    else:
        raise ConversionError(path, f"values of type {type(value).__name__} cannot be carried by DMI")
    packed = any_pb2.Any()
    packed.Pack(wrapper_any)
    return packed


def _checked_float32(value: float, path: str) -> float:
    if not math.isfinite(value):
        raise ConversionError(path, f"{value} cannot be carried by DMI (not a finite number)")
    try:
        narrowed = _to_float32(value)
    except OverflowError:
        raise ConversionError(path, f"{value!r} is beyond the 32-bit float range DMI carries") from None
    if float32_decimal(narrowed) != value:
        raise ConversionError(
            path,
            f"{value!r} would reach a Go mapper as {float32_decimal(narrowed)!r}: DMI carries floats as "
            "32-bit FloatValue; round it to 6 significant digits or quote it as a string",
        )
    return narrowed


_UNWRAP: dict[str, type[Any]] = {
    "google.protobuf.StringValue": wrappers_pb2.StringValue,
    "google.protobuf.BoolValue": wrappers_pb2.BoolValue,
    "google.protobuf.Int32Value": wrappers_pb2.Int32Value,
    "google.protobuf.Int64Value": wrappers_pb2.Int64Value,
    "google.protobuf.UInt32Value": wrappers_pb2.UInt32Value,
    "google.protobuf.UInt64Value": wrappers_pb2.UInt64Value,
    "google.protobuf.FloatValue": wrappers_pb2.FloatValue,
    "google.protobuf.DoubleValue": wrappers_pb2.DoubleValue,
}


def any_to_value(packed: any_pb2.Any, path: str = "value") -> Scalar:
    """Unpack a wrapper Any into a Python scalar; FloatValue gives the decimal a Go mapper sees."""
    type_name = packed.type_url.rpartition("/")[2]
    wrapper_type = _UNWRAP.get(type_name)
    if wrapper_type is None:
        raise ConversionError(path, f"unsupported Any type {packed.type_url!r}: expected a protobuf wrapper")
    wrapper = wrapper_type()
    if not packed.Unpack(wrapper):
        raise ConversionError(path, f"cannot decode {packed.type_url!r}")
    value: Scalar = wrapper.value
    if type_name == "google.protobuf.FloatValue":
        return float32_decimal(float(value))
    return value


def pack_values(data: Mapping[str, object], path: str) -> dict[str, any_pb2.Any]:
    """Pack every value of a free-form object; keys are checked in sorted order for stable errors."""
    return {key: value_to_any(data[key], f"{path}.{key}") for key in sorted(data)}


def unpack_values(data: Mapping[str, any_pb2.Any], path: str) -> dict[str, Scalar]:
    return {key: any_to_value(data[key], f"{path}.{key}") for key in sorted(data)}


def _customized(data: Mapping[str, object], path: str) -> api_pb2.CustomizedValue:
    return api_pb2.CustomizedValue(data=pack_values(data, path))


# --- CRD -> DMI -----------------------------------------------------------------------------------


def _twin_property_to_dmi(prop: crds.TwinProperty) -> api_pb2.TwinProperty:
    return api_pb2.TwinProperty(value=prop.value, metadata=prop.metadata or {})


def _visitor_to_dmi(visitor: crds.VisitorConfig | None, path: str) -> api_pb2.VisitorConfig:
    msg = api_pb2.VisitorConfig(protocolName=(visitor.protocol_name or "") if visitor else "")
    msg.configData.SetInParent()
    if visitor is not None and visitor.config_data is not None:
        msg.configData.CopyFrom(_customized(visitor.config_data, f"{path}.configData"))
    return msg


def _int32(value: int | None, path: str) -> int:
    if value is None:
        return 0
    if not INT32_MIN <= value <= INT32_MAX:
        raise ConversionError(path, f"{value} does not fit the 32-bit integer DMI carries here")
    return value


def _db_method_to_dmi(db: crds.DBMethod, path: str) -> api_pb2.DBMethod:
    msg = api_pb2.DBMethod()
    if db.influxdb2 is not None:
        influx = msg.influxdb2
        influx.SetInParent()
        if (client := db.influxdb2.influxdb2_client_config) is not None:
            influx.influxdb2ClientConfig.CopyFrom(
                api_pb2.Influxdb2ClientConfig(
                    url=client.url or "", org=client.org or "", bucket=client.bucket or ""
                )
            )
        if (data := db.influxdb2.influxdb2_data_config) is not None:
            influx.influxdb2DataConfig.CopyFrom(
                api_pb2.Influxdb2DataConfig(
                    measurement=data.measurement or "", tag=data.tag or {}, fieldKey=data.field_key or ""
                )
            )
    if db.redis is not None:
        msg.redis.SetInParent()
        if (redis := db.redis.redis_client_config) is not None:
            where = f"{path}.redis.redisClientConfig"
            msg.redis.redisClientConfig.CopyFrom(
                api_pb2.RedisClientConfig(
                    addr=redis.addr or "",
                    db=_int32(redis.db, f"{where}.db"),
                    poolsize=_int32(redis.poolsize, f"{where}.poolsize"),
                    minIdleConns=_int32(redis.min_idle_conns, f"{where}.minIdleConns"),
                )
            )
    if db.tdengine is not None:
        msg.tdengine.SetInParent()
        if (td := db.tdengine.tdengine_client_config) is not None:
            msg.tdengine.tdEngineClientConfig.CopyFrom(
                api_pb2.TDEngineClientConfig(addr=td.addr or "", dbname=td.db_name or "")
            )
    if db.mysql is not None:
        msg.mysql.SetInParent()
        if (my := db.mysql.mysql_client_config) is not None:
            msg.mysql.mysqlClientConfig.CopyFrom(
                api_pb2.MySQLClientConfig(
                    addr=my.addr or "", database=my.database or "", userName=my.user_name or ""
                )
            )
    return msg


def _push_method_to_dmi(push: crds.PushMethod, path: str) -> api_pb2.PushMethod:
    msg = api_pb2.PushMethod()
    if (http := push.http) is not None:
        msg.http.CopyFrom(
            api_pb2.PushMethodHTTP(
                hostname=http.host_name or "",
                port=http.port or 0,
                requestpath=http.request_path or "",
                timeout=http.timeout or 0,
            )
        )
    if (mqtt := push.mqtt) is not None:
        msg.mqtt.CopyFrom(
            api_pb2.PushMethodMQTT(
                address=mqtt.address or "",
                topic=mqtt.topic or "",
                qos=_int32(mqtt.qos, f"{path}.mqtt.qos"),
                retained=bool(mqtt.retained),
            )
        )
    if (otel := push.otel) is not None:
        msg.otel.CopyFrom(api_pb2.PushMethodOTEL(endpointURL=otel.endpoint_url or ""))
    if push.db_method is not None:
        msg.dbMethod.CopyFrom(_db_method_to_dmi(push.db_method, f"{path}.dbMethod"))
    if push.anomaly_detection is not None:
        msg.anomalyDetection.CopyFrom(
            api_pb2.AnomalyDetection(data=pack_values(push.anomaly_detection, f"{path}.anomalyDetection"))
        )
    return msg


def _property_to_dmi(prop: crds.DeviceProperty, path: str) -> api_pb2.DeviceProperty:
    msg = api_pb2.DeviceProperty(
        name=prop.name,
        reportCycle=prop.report_cycle or 0,
        collectCycle=prop.collect_cycle or 0,
        reportToCloud=bool(prop.report_to_cloud),
    )
    msg.desired.SetInParent()
    if prop.desired is not None:
        msg.desired.CopyFrom(_twin_property_to_dmi(prop.desired))
    msg.visitors.CopyFrom(_visitor_to_dmi(prop.visitors, f"{path}.visitors"))
    if prop.push_method is not None:
        msg.pushMethod.CopyFrom(_push_method_to_dmi(prop.push_method, f"{path}.pushMethod"))
    return msg


def device_to_dmi(device: crds.Device) -> api_pb2.Device:
    """The DMI Device edgecore sends a mapper. Pass ``effective_device(device, model)`` to apply the model.

    Raises ``ConversionError`` naming the path of a value DMI cannot carry.
    """
    spec = device.spec
    msg = api_pb2.Device(name=device.name, namespace=device.namespace)
    msg.spec.deviceModelReference = spec.device_model_ref.name
    protocol = msg.spec.protocol
    protocol.configData.SetInParent()
    if spec.protocol is not None:
        protocol.protocolName = spec.protocol.protocol_name or ""
        if spec.protocol.config_data is not None:
            protocol.configData.CopyFrom(_customized(spec.protocol.config_data, "spec.protocol.configData"))
    for i, prop in enumerate(spec.properties or []):
        msg.spec.properties.append(_property_to_dmi(prop, f"spec.properties[{i}]"))
    for method in spec.methods or []:
        msg.spec.methods.append(
            api_pb2.DeviceMethod(
                name=method.name,
                description=method.description or "",
                propertyNames=method.property_names or [],
            )
        )
    # KubeEdge v1.23: spec.stateReport, when present, replaces the legacy status fields.
    report = spec.state_report if spec.state_report is not None else device.status
    if report is not None:
        msg.status.CopyFrom(
            api_pb2.DeviceStatus(
                reportToCloud=bool(report.report_to_cloud), reportCycle=report.report_cycle or 0
            )
        )
    return msg


def device_model_to_dmi(model: crds.DeviceModel) -> api_pb2.DeviceModel:
    """The DMI DeviceModel: name, namespace and each property's name, description, type, access mode,
    minimum, maximum and unit (the wire carries nothing else of a model)."""
    msg = api_pb2.DeviceModel(name=model.name, namespace=model.namespace)
    msg.spec.SetInParent()
    for prop in model.spec.properties or []:
        msg.spec.properties.append(
            api_pb2.ModelProperty(
                name=prop.name,
                description=prop.description or "",
                type=prop.type.value,
                accessMode=prop.access_mode.value if prop.access_mode is not None else "",
                minimum=prop.minimum or "",
                maximum=prop.maximum or "",
                unit=prop.unit or "",
            )
        )
    return msg


def twin_to_dmi(twin: crds.Twin) -> api_pb2.Twin:
    msg = api_pb2.Twin(propertyName=twin.property_name)
    if twin.reported is not None:
        msg.reported.CopyFrom(_twin_property_to_dmi(twin.reported))
    if twin.observed_desired is not None:
        msg.observedDesired.CopyFrom(_twin_property_to_dmi(twin.observed_desired))
    return msg


# --- DMI -> CRD -----------------------------------------------------------------------------------


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that are set: proto3 reads unset scalars as zero, which Go's omitempty leaves out too."""
    return {k: v for k, v in fields.items() if v}


def _twin_property_from_dmi(msg: api_pb2.TwinProperty) -> dict[str, Any]:
    return {"value": msg.value, **_present(metadata=dict(msg.metadata))}


def _visitor_from_dmi(msg: api_pb2.VisitorConfig, path: str) -> dict[str, Any]:
    out = _present(protocolName=msg.protocolName)
    if msg.configData.data:
        out["configData"] = unpack_values(msg.configData.data, f"{path}.configData")
    return out


def _db_method_from_dmi(msg: api_pb2.DBMethod) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if msg.HasField("influxdb2"):
        influx: dict[str, Any] = out.setdefault("influxdb2", {})
        if msg.influxdb2.HasField("influxdb2ClientConfig"):
            c = msg.influxdb2.influxdb2ClientConfig
            influx["influxdb2ClientConfig"] = _present(url=c.url, org=c.org, bucket=c.bucket)
        if msg.influxdb2.HasField("influxdb2DataConfig"):
            d = msg.influxdb2.influxdb2DataConfig
            influx["influxdb2DataConfig"] = _present(
                measurement=d.measurement, tag=dict(d.tag), fieldKey=d.fieldKey
            )
    if msg.HasField("redis"):
        redis: dict[str, Any] = out.setdefault("redis", {})
        if msg.redis.HasField("redisClientConfig"):
            r = msg.redis.redisClientConfig
            redis["redisClientConfig"] = _present(
                addr=r.addr, db=r.db, poolsize=r.poolsize, minIdleConns=r.minIdleConns
            )
    if msg.HasField("tdengine"):
        td: dict[str, Any] = out.setdefault("TDEngine", {})
        if msg.tdengine.HasField("tdEngineClientConfig"):
            t = msg.tdengine.tdEngineClientConfig
            td["TDEngineClientConfig"] = _present(addr=t.addr, dbName=t.dbname)
    if msg.HasField("mysql"):
        my: dict[str, Any] = out.setdefault("mysql", {})
        if msg.mysql.HasField("mysqlClientConfig"):
            m = msg.mysql.mysqlClientConfig
            my["mysqlClientConfig"] = _present(addr=m.addr, database=m.database, userName=m.userName)
    return out


def _push_method_from_dmi(msg: api_pb2.PushMethod, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if msg.HasField("http"):
        h = msg.http
        out["http"] = _present(hostName=h.hostname, port=h.port, requestPath=h.requestpath, timeout=h.timeout)
    if msg.HasField("mqtt"):
        q = msg.mqtt
        out["mqtt"] = _present(address=q.address, topic=q.topic, qos=q.qos, retained=q.retained)
    if msg.HasField("otel"):
        out["otel"] = _present(endpointURL=msg.otel.endpointURL)
    if msg.HasField("dbMethod"):
        out["dbMethod"] = _db_method_from_dmi(msg.dbMethod)
    if msg.HasField("anomalyDetection"):
        out["anomalyDetection"] = unpack_values(msg.anomalyDetection.data, f"{path}.anomalyDetection")
    return out


def _property_from_dmi(msg: api_pb2.DeviceProperty, path: str) -> dict[str, Any]:
    out = {
        "name": msg.name,
        **_present(
            reportCycle=msg.reportCycle, collectCycle=msg.collectCycle, reportToCloud=msg.reportToCloud
        ),
    }
    if msg.HasField("desired") and (msg.desired.value or msg.desired.metadata):
        out["desired"] = _twin_property_from_dmi(msg.desired)
    if msg.HasField("visitors"):
        visitors = _visitor_from_dmi(msg.visitors, f"{path}.visitors")
        if visitors:
            out["visitors"] = visitors
    if msg.HasField("pushMethod"):
        out["pushMethod"] = _push_method_from_dmi(msg.pushMethod, f"{path}.pushMethod")
    return out


def _validated(model: type[ModelT], data: dict[str, Any], what: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        raise ConversionError(path or what, f"{first['msg']} (in DMI {what})") from exc


def _metadata(name: str, namespace: str) -> dict[str, Any]:
    return _present(name=name, namespace=namespace)


def device_from_dmi(msg: api_pb2.Device) -> crds.Device:
    """The Device a DMI message describes. ``status`` becomes ``spec.stateReport``; its twins are not
    part of a Device (see ``twin_from_dmi``)."""
    spec: dict[str, Any] = {"deviceModelRef": {"name": msg.spec.deviceModelReference}}
    protocol = _present(protocolName=msg.spec.protocol.protocolName)
    if msg.spec.protocol.configData.data:
        protocol["configData"] = unpack_values(msg.spec.protocol.configData.data, "spec.protocol.configData")
    if protocol:
        spec["protocol"] = protocol
    if msg.spec.properties:
        spec["properties"] = [
            _property_from_dmi(p, f"spec.properties[{i}]") for i, p in enumerate(msg.spec.properties)
        ]
    if msg.spec.methods:
        spec["methods"] = [
            {"name": m.name, **_present(description=m.description, propertyNames=list(m.propertyNames))}
            for m in msg.spec.methods
        ]
    if msg.HasField("status"):
        spec["stateReport"] = _present(
            reportToCloud=msg.status.reportToCloud, reportCycle=msg.status.reportCycle
        )
    return _validated(crds.Device, {"metadata": _metadata(msg.name, msg.namespace), "spec": spec}, "Device")


def device_model_from_dmi(msg: api_pb2.DeviceModel) -> crds.DeviceModel:
    spec: dict[str, Any] = {}
    if msg.spec.properties:
        spec["properties"] = [
            {
                "name": p.name,
                "type": p.type,
                **_present(
                    description=p.description,
                    accessMode=p.accessMode,
                    minimum=p.minimum,
                    maximum=p.maximum,
                    unit=p.unit,
                ),
            }
            for p in msg.spec.properties
        ]
    data = {"metadata": _metadata(msg.name, msg.namespace), "spec": spec}
    return _validated(crds.DeviceModel, data, "DeviceModel")


def twin_from_dmi(msg: api_pb2.Twin) -> crds.Twin:
    data: dict[str, Any] = {"propertyName": msg.propertyName}
    if msg.HasField("reported"):
        data["reported"] = _twin_property_from_dmi(msg.reported)
    if msg.HasField("observedDesired"):
        data["observedDesired"] = _twin_property_from_dmi(msg.observedDesired)
    return _validated(crds.Twin, data, "Twin")


# --- model defaults ------------------------------------------------------------------------------


def effective_device(device: crds.Device, model: crds.DeviceModel) -> crds.Device:
    """The device as edgecore hands it to a mapper: the model's defaults with the device's values on top.

    KubeEdge's rules (edgecore dmicache): for each device property whose same-named model property has
    ``visitors``, the model visitor is used, its ``configData`` keys overridden by the device's own
    (top-level keys, device wins; without model configData the device's is used as is). The model's
    visitor ``protocolName`` is taken unless it is empty. ``spec.protocol.configData`` is the model's
    ``protocolConfigData`` with the device's keys on top; the device's ``protocolName`` is kept.
    Neither input is modified.
    """
    result = device.model_copy(deep=True)
    spec = result.spec
    model_props = {p.name: p for p in model.spec.properties or []}
    for prop in spec.properties or []:
        model_prop = model_props.get(prop.name)
        if model_prop is None or model_prop.visitors is None:
            continue
        own = prop.visitors
        merged = copy.deepcopy(model_prop.visitors.config_data)
        if own is not None and own.config_data is not None:
            merged = {**merged, **copy.deepcopy(own.config_data)} if merged is not None else own.config_data
        protocol_name = model_prop.visitors.protocol_name or (own.protocol_name if own is not None else None)
        prop.visitors = crds.VisitorConfig(protocol_name=protocol_name, config_data=merged)
    if model.spec.protocol_config_data is not None:
        defaults = copy.deepcopy(model.spec.protocol_config_data)
        if spec.protocol is None:
            spec.protocol = crds.ProtocolConfig(config_data=defaults)
        else:
            own_config = spec.protocol.config_data
            spec.protocol.config_data = {**defaults, **own_config} if own_config is not None else defaults
    return result


__all__ = [
    "ConversionError",
    "any_to_value",
    "device_from_dmi",
    "device_model_from_dmi",
    "device_model_to_dmi",
    "device_to_dmi",
    "effective_device",
    "float32_decimal",
    "pack_values",
    "twin_from_dmi",
    "twin_to_dmi",
    "unpack_values",
    "value_to_any",
]
