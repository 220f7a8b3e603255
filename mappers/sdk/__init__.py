"""The kubeshore mapper SDK: write one :class:`Driver`, get a complete KubeEdge mapper.

See docs/mapper-guide.md. A mapper module names its driver ``Driver`` (or exports a ``Driver``
subclass) and runs with ``kubeshore mapper run <module>``.
"""

from mappers.sdk._types import (
    DeviceConfig,
    DeviceMethod,
    DeviceModel,
    DeviceState,
    ModelProperty,
    PropertyConfig,
    PropertyType,
    Reading,
)
from mappers.sdk.driver import DeviceUnavailable, Driver, OnValue, WriteRejected

__all__ = [
    "DeviceConfig",
    "DeviceMethod",
    "DeviceModel",
    "DeviceState",
    "DeviceUnavailable",
    "Driver",
    "ModelProperty",
    "OnValue",
    "PropertyConfig",
    "PropertyType",
    "Reading",
    "WriteRejected",
]
