"""The one class a protocol author implements.

The SDK creates one driver instance per device and never overlaps two calls on the same instance, so
a driver needs no locks; different devices run concurrently, each with its own instance. Everything
else (DMI, cycles, retries, conversion, state reporting, pushes, REST) is the SDK's job.

Errors a driver raises tell the SDK what happened:

- :class:`DeviceUnavailable` (or ``OSError``/``ConnectionError``/``TimeoutError``): the device cannot
  be reached. The SDK reports it ``offline``, closes the driver and reopens it with backoff.
- any other exception from :meth:`Driver.read`: this property could not be read. The device stays
  connected and is reported ``unhealthy`` until a read succeeds again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from mappers.sdk._types import DeviceConfig, DeviceState


class DeviceUnavailable(Exception):
    """The device cannot be reached; the SDK reconnects."""


class WriteRejected(Exception):
    """A write was refused before reaching the device (read-only, out of range, wrong type)."""


OnValue = Callable[[Any], None]


class Driver:
    """Base class of every mapper driver. Override ``open``, ``read`` and, for writable devices, ``write``.

    ``protocol`` names the protocol this driver serves (``Device.spec.protocol.protocolName``,
    ``DeviceModel.spec.protocol``); the mapper registers with edgecore under it.
    """

    protocol: ClassVar[str] = ""

    def __init__(self, device: DeviceConfig, options: Mapping[str, Any] | None = None) -> None:
        self.device = device
        #: the ``driver:`` section of the mapper configuration file, shared by all devices
        self.options: Mapping[str, Any] = options or {}

    async def open(self, protocol: Mapping[str, Any]) -> None:
        """Connect to the device described by ``Device.spec.protocol.configData``."""

    async def read(self, visitor: Mapping[str, Any]) -> Any:
        """Return the current value of the property addressed by ``visitor`` (its ``configData``).

        Return a Python value (int, float, bool, str, bytes); the SDK converts it to the model type.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement read()")

    async def write(self, visitor: Mapping[str, Any], value: Any) -> None:
        """Write ``value`` (already converted to the model type and range-checked) to the device."""
        raise WriteRejected(f"the {self.protocol or type(self).__name__} driver does not support writes")

    async def subscribe(self, visitor: Mapping[str, Any], on_value: OnValue) -> bool:
        """Ask the device to push changes of this property instead of being polled.

        Return True when a subscription was set up; the SDK then stops polling the property and
        reports whatever ``on_value`` receives. The default polls.
        """
        return False

    async def unsubscribe(self, visitor: Mapping[str, Any]) -> None:
        """Undo :meth:`subscribe` when the property changes or goes away."""

    async def state(self) -> DeviceState | None:
        """The device's own view of its health; ``None`` lets the SDK decide from reads."""
        return None

    async def close(self) -> None:
        """Disconnect; called on removal, on reconnect and at shutdown. Must not raise."""


DriverFactory = type[Driver]
