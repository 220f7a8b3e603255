"""devices.kubeedge.io/v1beta1: Device, DeviceModel and DeviceStatus, field for field as KubeEdge v1.23.

Cycles (``reportCycle``, ``collectCycle``) are milliseconds. ``configData`` and ``anomalyDetection``
are free-form; on their way to a mapper (DMI) every top-level value must be a scalar.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import ConfigDict, Field

from crds._apps import StatusCondition
from crds._base import (
    FreeForm,
    Int32,
    Int64,
    KubeList,
    KubeModel,
    PrinterColumn,
    Resource,
    ResourceInfo,
    Scope,
)
from crds._core import LocalObjectReference

GROUP = "devices.kubeedge.io"
VERSION = "v1beta1"
API_VERSION: Final = "devices.kubeedge.io/v1beta1"
_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


class PropertyType(StrEnum):
    INT = "INT"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    BYTES = "BYTES"
    STREAM = "STREAM"


class AccessMode(StrEnum):
    READ_WRITE = "ReadWrite"
    READ_ONLY = "ReadOnly"


class DeviceState(StrEnum):
    """States mappers report (KubeEdge mapper-framework constants); the CRD accepts any string."""

    OK = "ok"
    ONLINE = "online"
    OFFLINE = "offline"
    DISCONNECTED = "disconnected"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


# --- shared pieces --------------------------------------------------------------------------------


class TwinProperty(KubeModel):
    value: str = Field(description="The property value, always a string.")
    metadata: dict[str, str] | None = Field(
        default=None, description="Additional metadata like the timestamp and type of the value."
    )


class VisitorConfig(KubeModel):
    """How a mapper reaches one property: protocol-specific, free-form ``configData``."""

    protocol_name: str | None = Field(default=None, description="Name of the protocol (mapper).")
    config_data: FreeForm | None = Field(default=None, description="Protocol-specific visitor config.")


class ProtocolConfig(KubeModel):
    protocol_name: str | None = Field(default=None, description="Protocol name; selects the mapper.")
    config_data: FreeForm | None = Field(default=None, description="Protocol-specific connection config.")


# --- Device ---------------------------------------------------------------------------------------


class PushMethodHTTP(KubeModel):
    host_name: str | None = Field(default=None, description="Scheme and host, e.g. http://127.0.0.1.")
    port: Int64 | None = None
    request_path: str | None = None
    timeout: Int64 | None = None


class PushMethodMQTT(KubeModel):
    address: str | None = Field(default=None, description="Broker address, e.g. tcp://127.0.0.1:1883.")
    topic: str | None = None
    qos: Int32 | None = None
    retained: bool | None = None


class PushMethodOTEL(KubeModel):
    endpoint_url: str | None = Field(
        default=None,
        alias="endpointURL",
        description="OTLP/HTTP metrics endpoint, e.g. https://localhost:4318/v1/metrics.",
    )


class Influxdb2ClientConfig(KubeModel):
    url: str | None = None
    org: str | None = None
    bucket: str | None = None


class Influxdb2DataConfig(KubeModel):
    measurement: str | None = None
    tag: dict[str, str] | None = None
    field_key: str | None = None


class DBMethodInfluxdb2(KubeModel):
    influxdb2_client_config: Influxdb2ClientConfig | None = None
    influxdb2_data_config: Influxdb2DataConfig | None = None


class RedisClientConfig(KubeModel):
    addr: str | None = None
    db: int | None = None
    poolsize: int | None = None
    min_idle_conns: int | None = None


class DBMethodRedis(KubeModel):
    redis_client_config: RedisClientConfig | None = None


class TDEngineClientConfig(KubeModel):
    addr: str | None = None
    db_name: str | None = None


class DBMethodTDEngine(KubeModel):
    tdengine_client_config: TDEngineClientConfig | None = Field(default=None, alias="TDEngineClientConfig")


class MySQLClientConfig(KubeModel):
    addr: str | None = None
    database: str | None = None
    user_name: str | None = None


class DBMethodMySQL(KubeModel):
    mysql_client_config: MySQLClientConfig | None = None


class DBMethod(KubeModel):
    """Where a mapper stores property values. Credentials come from the mapper's environment."""

    influxdb2: DBMethodInfluxdb2 | None = None
    redis: DBMethodRedis | None = None
    tdengine: DBMethodTDEngine | None = Field(default=None, alias="TDEngine")
    mysql: DBMethodMySQL | None = None


class PushMethod(KubeModel):
    """Where a mapper pushes property values every ``reportCycle``."""

    http: PushMethodHTTP | None = None
    mqtt: PushMethodMQTT | None = None
    otel: PushMethodOTEL | None = None
    db_method: DBMethod | None = None
    anomaly_detection: FreeForm | None = Field(
        default=None, description="Free-form anomaly detection settings (KubeEdge v1.23)."
    )


class DeviceProperty(KubeModel):
    name: str = Field(description="Property name; must match a property of the DeviceModel.")
    desired: TwinProperty | None = Field(default=None, description="Desired value, written to the device.")
    visitors: VisitorConfig | None = Field(default=None, description="How the mapper accesses the property.")
    report_cycle: Int64 | None = Field(default=None, description="Push interval in milliseconds.")
    collect_cycle: Int64 | None = Field(default=None, description="Collect interval in milliseconds.")
    report_to_cloud: bool | None = Field(default=None, description="Report the twin to the cloud.")
    push_method: PushMethod | None = Field(
        default=None, description="Where the mapper pushes the value: HTTP, MQTT, OTEL or a database."
    )


class DeviceMethod(KubeModel):
    name: str = Field(description="Method name, unique in the device.")
    description: str | None = None
    property_names: list[str] | None = Field(default=None, description="Properties the method writes.")


class StateReport(KubeModel):
    """Whether and how often the mapper reports the device state (wins over status.reportCycle)."""

    report_to_cloud: bool | None = Field(default=None, description="Report the device state to the cloud.")
    report_cycle: Int64 | None = Field(default=None, description="State report interval in milliseconds.")


class DeviceSpec(KubeModel):
    """The desired state of a device: its model, node, protocol, properties and methods."""

    device_model_ref: LocalObjectReference = Field(
        description="The DeviceModel (same namespace) this device instantiates."
    )
    node_name: str | None = Field(default=None, description="Edge node the device is bound to.")
    properties: list[DeviceProperty] | None = Field(
        default=None,
        description="Per-property settings: desired value, visitor, report and collect cycles, push methods.",
    )
    protocol: ProtocolConfig | None = Field(
        default=None, description="Protocol name (selects the mapper) and its connection configData."
    )
    methods: list[DeviceMethod] | None = Field(
        default=None, description="Named groups of properties an application may write together."
    )
    state_report: StateReport | None = Field(
        default=None, description="Whether and how often the mapper reports the device state."
    )


class DeviceConditionType(StrEnum):
    """kubeshore's conditions of a Device (KubeEdge has none): why a device is silent."""

    MODEL_FOUND = "ModelFound"
    MAPPER_AVAILABLE = "MapperAvailable"
    REPORTING = "Reporting"
    DESIRED_APPLIED = "DesiredApplied"


_CONDITIONS_DESCRIPTION = (
    "kubeshore: ModelFound, MapperAvailable, Reporting and DesiredApplied, each with a reason and a "
    "message saying why a device is silent or a desired value was not applied."
)


class DeviceStatusOld(KubeModel):
    """``Device.status`` since v1.23: only the state-report settings (``spec.stateReport`` wins).

    Unknown keys are kept: objects written by KubeEdge <= v1.22 carry twins, state, lastOnlineTime here.
    ``conditions`` is kubeshore's addition (the same as the DeviceStatus's).
    """

    model_config = ConfigDict(extra="allow")

    report_to_cloud: bool | None = None
    report_cycle: Int64 | None = None
    conditions: list[StatusCondition] | None = Field(default=None, description=_CONDITIONS_DESCRIPTION)


class Device(Resource):
    """A device instance bound to an edge node; its twins are reported in the DeviceStatus of its name."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="Device",
        plural="devices",
        singular="device",
        scope=Scope.NAMESPACED,
        short_names=("dev",),
        categories=("kubeedge",),
        printer_columns=(
            PrinterColumn("Node", ".spec.nodeName", description="Edge node the device is bound to"),
            PrinterColumn("Model", ".spec.deviceModelRef.name", description="DeviceModel"),
            PrinterColumn("Protocol", ".spec.protocol.protocolName", description="Protocol (mapper)"),
            PrinterColumn(
                "Reporting",
                '.status.conditions[?(@.type=="Reporting")].reason',
                description="Why the device reports or is silent (the Reporting condition's reason)",
            ),
            _AGE,
        ),
        description="Device is a device instance managed by KubeEdge mappers.",
    )

    api_version: Literal["devices.kubeedge.io/v1beta1"] = API_VERSION
    kind: Literal["Device"] = "Device"
    spec: DeviceSpec
    status: DeviceStatusOld | None = None


# --- DeviceModel ----------------------------------------------------------------------------------


class ModelProperty(KubeModel):
    name: str = Field(description="Property name; saveFrame/saveVideo enable mapper stream handling.")
    description: str | None = None
    type: PropertyType = Field(description="Value type: INT, FLOAT, DOUBLE, STRING, BOOLEAN, BYTES, STREAM.")
    access_mode: AccessMode | None = Field(default=None, description="ReadWrite or ReadOnly.")
    minimum: str | None = None
    maximum: str | None = None
    unit: str | None = None
    visitors: VisitorConfig | None = Field(
        default=None, description="Default visitor; a Device's visitor configData keys override it."
    )


class DeviceModelSpec(KubeModel):
    """The protocol and properties shared by the devices of this model."""

    protocol: str | None = Field(default=None, description="Protocol name (the mapper's protocol).")
    protocol_config_data: FreeForm | None = Field(
        default=None, description="Default protocol configData; a Device's configData keys override it."
    )
    properties: list[ModelProperty] | None = None


class DeviceModel(Resource):
    """A device model: the properties, their types and default access settings shared by devices."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="DeviceModel",
        plural="devicemodels",
        singular="devicemodel",
        scope=Scope.NAMESPACED,
        short_names=("dm",),
        categories=("kubeedge",),
        printer_columns=(
            PrinterColumn("Protocol", ".spec.protocol", description="Protocol (mapper)"),
            _AGE,
        ),
        description="DeviceModel describes the properties of a kind of device.",
    )

    api_version: Literal["devices.kubeedge.io/v1beta1"] = API_VERSION
    kind: Literal["DeviceModel"] = "DeviceModel"
    spec: DeviceModelSpec


# --- DeviceStatus ---------------------------------------------------------------------------------


class Twin(KubeModel):
    property_name: str
    reported: TwinProperty | None = Field(default=None, description="Value last read from the device.")
    observed_desired: TwinProperty | None = Field(
        default=None, description="Desired value as the mapper last saw it."
    )


class DeviceStatusSpec(KubeModel):
    """Intentionally empty."""


class DeviceStatusStatus(KubeModel):
    """Twins and state reported from the edge."""

    twins: list[Twin] | None = None
    state: str | None = Field(default=None, description="Device state: ok, online, offline, unhealthy ...")
    last_online_time: str | None = Field(
        default=None, description="RFC 3339 time the device was last online."
    )
    extensions: FreeForm | None = Field(default=None, description="Free-form data, e.g. anomaly detection.")
    conditions: list[StatusCondition] | None = Field(default=None, description=_CONDITIONS_DESCRIPTION)


class DeviceStatus(Resource):
    """Reported twins and state of the Device with the same name (created and owned by the Device)."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="DeviceStatus",
        plural="devicestatuses",
        singular="devicestatus",
        scope=Scope.NAMESPACED,
        short_names=("devst",),
        categories=("kubeedge",),
        printer_columns=(
            PrinterColumn("State", ".status.state", description="Device state reported by the mapper"),
            PrinterColumn(
                "Reason",
                '.status.conditions[?(@.type=="Reporting")].reason',
                description="Why the device reports or is silent (the Reporting condition's reason)",
            ),
            PrinterColumn(
                "Property", ".status.twins[0].propertyName", description="The first reported property"
            ),
            PrinterColumn("Value", ".status.twins[0].reported.value", description="Its reported value"),
            PrinterColumn(
                "Last-Online", ".status.lastOnlineTime", "date", description="Time last seen online"
            ),
            _AGE,
        ),
        description="DeviceStatus holds the reported twins and state of a Device.",
    )

    api_version: Literal["devices.kubeedge.io/v1beta1"] = API_VERSION
    kind: Literal["DeviceStatus"] = "DeviceStatus"
    spec: DeviceStatusSpec | None = None
    status: DeviceStatusStatus | None = None


class DeviceList(KubeList[Device]):
    pass


class DeviceModelList(KubeList[DeviceModel]):
    pass


class DeviceStatusList(KubeList[DeviceStatus]):
    pass


# --- validation beyond the schema -----------------------------------------------------------------


def _converts(value: str, ptype: str) -> bool:
    try:
        if ptype == PropertyType.INT:
            int(value.strip())
        elif ptype in (PropertyType.FLOAT, PropertyType.DOUBLE):
            float(value.strip())
        elif ptype == PropertyType.BOOLEAN:
            return value.strip().lower() in ("true", "false")
    except ValueError:
        return False
    return True


def device_properties_changed(device: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Whether a write of ``device`` over the stored ``old`` (None: a create) touches its properties."""
    if old is None:
        return True
    return bool((old.get("spec") or {}).get("properties") != (device.get("spec") or {}).get("properties"))


def duplicate_property_names(
    device: dict[str, Any], old: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """(field path, name) of each property of ``device`` whose name an earlier one already has: KubeEdge's
    admission refuses those ("property names must be unique"), and the edge keys twins by name, so the
    second would silently shadow the first. Writes that leave the properties alone are not checked."""
    if not device_properties_changed(device, old):
        return []
    seen: set[str] = set()
    out = []
    for i, prop in enumerate((device.get("spec") or {}).get("properties") or []):
        if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
            continue
        if prop["name"] in seen:
            out.append((f"spec.properties[{i}].name", prop["name"]))
        seen.add(prop["name"])
    return out


def desired_value_problems(
    device: dict[str, Any], model: dict[str, Any] | None, old: dict[str, Any] | None = None
) -> list[tuple[str, str, str]]:
    """(field path, value, why) for each desired value of ``device`` that cannot be converted to the type
    of its property in ``model`` (none when the model is missing: the Device is accepted and its
    ModelFound condition says so). ``old`` is the stored Device of an update: when its properties are
    the new ones, nothing is checked (a status or metadata write: what was admitted stays admitted,
    even if its model changed since). The one check of the embedded API server's admission and of
    cloudcore's validating webhook."""
    if not model or not device_properties_changed(device, old):
        return []
    types = {
        str(p.get("name")): str(p.get("type", "")).upper()
        for p in (model.get("spec") or {}).get("properties") or []
        if isinstance(p, dict)
    }
    problems = []
    for i, prop in enumerate((device.get("spec") or {}).get("properties") or []):
        if not isinstance(prop, dict) or not isinstance(prop.get("desired"), dict):
            continue
        value = prop["desired"].get("value")
        ptype = types.get(str(prop.get("name")))
        if not isinstance(value, str) or ptype is None or _converts(value, ptype):
            continue
        problems.append(
            (
                f"spec.properties[{i}].desired.value",
                value,
                f"property {prop.get('name')} is of type {ptype} in DeviceModel "
                f"{(model.get('metadata') or {}).get('name')}",
            )
        )
    return problems
