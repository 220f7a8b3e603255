"""The SDK's own view of devices and models: plain frozen dataclasses, independent of protobuf.

DMI messages are converted into these once, at the edge of the SDK (``_dmi_convert``), so the device
runtime can compare an old and a new device with ``==`` and restart only what changed.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The DeviceModel's property types are the CRD's enum: one definition for cloud, edge and mappers.
from crds import PropertyType as PropertyType

DEFAULT_CYCLE_MS = 1000


class DeviceState(enum.StrEnum):
    """KubeEdge's device state strings (mapper-framework ``common/const.go``)."""

    OK = "ok"
    ONLINE = "online"
    OFFLINE = "offline"
    DISCONNECTED = "disconnected"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ModelProperty:
    name: str
    type: PropertyType = PropertyType.STRING
    access_mode: str = "ReadWrite"
    minimum: str = ""
    maximum: str = ""
    unit: str = ""
    description: str = ""

    @property
    def read_only(self) -> bool:
        return self.access_mode.lower() == "readonly"


@dataclass(frozen=True)
class DeviceModel:
    namespace: str
    name: str
    properties: Mapping[str, ModelProperty] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class HttpPush:
    host_name: str
    port: int
    request_path: str
    timeout_ms: int = 0


@dataclass(frozen=True)
class MqttPush:
    address: str
    topic: str
    qos: int = 0
    retained: bool = False


@dataclass(frozen=True)
class RedisPush:
    addr: str
    db: int = 0


@dataclass(frozen=True)
class MySQLPush:
    addr: str
    database: str
    user_name: str


@dataclass(frozen=True)
class PushMethod:
    """A property's ``pushMethod``; every configured target receives the value on ``reportCycle``."""

    http: HttpPush | None = None
    mqtt: MqttPush | None = None
    redis: RedisPush | None = None
    mysql: MySQLPush | None = None

    def targets(self) -> list[HttpPush | MqttPush | RedisPush | MySQLPush]:
        return [t for t in (self.http, self.mqtt, self.redis, self.mysql) if t is not None]


@dataclass(frozen=True)
class PropertyConfig:
    """One ``Device.spec.properties[]`` entry with its visitor already merged and decoded."""

    name: str
    visitor: Mapping[str, Any] = field(default_factory=dict)
    visitor_protocol: str = ""
    desired: str = ""
    collect_cycle_ms: int = DEFAULT_CYCLE_MS
    report_cycle_ms: int = DEFAULT_CYCLE_MS
    report_to_cloud: bool = True
    push: PushMethod | None = None

    def collection_key(self) -> tuple[Any, ...]:
        """What, when changed, needs the property's collect loop restarted."""
        return (_freeze(self.visitor), self.visitor_protocol, self.collect_cycle_ms)


@dataclass(frozen=True)
class DeviceMethod:
    name: str
    description: str = ""
    property_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceConfig:
    """A device as the mapper runs it: identity, protocol config, properties, methods."""

    namespace: str
    name: str
    model: str
    protocol_name: str = ""
    protocol: Mapping[str, Any] = field(default_factory=dict)
    properties: tuple[PropertyConfig, ...] = ()
    methods: tuple[DeviceMethod, ...] = ()
    report_to_cloud: bool = True
    state_report_cycle_ms: int = DEFAULT_CYCLE_MS

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def model_key(self) -> str:
        return f"{self.namespace}/{self.model}"

    @functools.cached_property
    def _by_name(self) -> dict[str, PropertyConfig]:
        return {p.name: p for p in self.properties}

    def property(self, name: str) -> PropertyConfig | None:
        return self._by_name.get(name)

    def connection_key(self) -> tuple[Any, ...]:
        """What, when changed, needs the driver reopened."""
        return (self.protocol_name, _freeze(self.protocol))


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Reading:
    """One collected value as sinks and the REST API see it."""

    namespace: str
    device: str
    property: str
    value: str
    type: str
    timestamp_ms: int

    def as_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "deviceName": self.device,
            "propertyName": self.property,
            "value": self.value,
            "type": self.type,
            "timestamp": self.timestamp_ms,
        }
