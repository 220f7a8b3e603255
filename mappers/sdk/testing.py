"""Run one device on a driver without edgecore: for a mapper's own tests.

    async with run_device(MyDriver, DEVICE, MODEL) as dev:
        await dev.wait_for("temperature", "21.5")
        await dev.write("setpoint", "30")

``DEVICE`` and ``MODEL`` are Device and DeviceModel manifests (dicts as in YAML, or ``crds``
models); the model's visitors and protocolConfigData are merged into the device as edgecore does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import crds
from dmi.convert import effective_device
from mappers.sdk._device import RuntimeSettings
from mappers.sdk._dmi_convert import device_from_crd, model_from_crd
from mappers.sdk._mapper import Mapper
from mappers.sdk._types import DeviceState
from mappers.sdk.driver import Driver

FAST = RuntimeSettings(read_timeout_s=2, open_timeout_s=5, reconnect_min_s=0.1, reconnect_max_s=1)


class DeviceUnderTest:
    def __init__(self, mapper: Mapper, device_id: str) -> None:
        self.mapper = mapper
        self.runtime = mapper.devices[device_id]

    def value(self, prop: str) -> str | None:
        twin = self.runtime.twins.get(prop)
        return twin.reading.value if twin is not None and twin.reading is not None else None

    @property
    def state(self) -> DeviceState:
        return self.runtime.state

    async def wait_for(self, prop: str, expected: str | Callable[[str], bool], within: float = 5.0) -> str:
        """Wait until ``prop`` has been collected with the expected value (or one the check accepts)."""
        check = expected if callable(expected) else (lambda v: v == expected)
        try:
            async with asyncio.timeout(within):
                while True:
                    value = self.value(prop)
                    if value is not None and check(value):
                        return value
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(
                f"{prop} is {self.value(prop)!r} after {within}s, expected {expected!r}"
                f" (device {self.state.value}, error {self.runtime.twins.get(prop)})"
            ) from None

    async def wait_state(self, state: DeviceState | str, within: float = 5.0) -> None:
        for _ in range(max(1, int(within / 0.02))):
            if self.state == state:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"device is {self.state.value} after {within}s, expected {state}")

    async def write(self, prop: str, value: str) -> Any:
        return await self.runtime.write(prop, value)


@contextlib.asynccontextmanager
async def run_device(
    driver_cls: type[Driver],
    device: Mapping[str, Any] | crds.Device,
    model: Mapping[str, Any] | crds.DeviceModel | None = None,
    *,
    settings: RuntimeSettings | None = None,
    driver_options: Mapping[str, Any] | None = None,
) -> AsyncIterator[DeviceUnderTest]:
    dev = device if isinstance(device, crds.Device) else crds.Device.model_validate(device)
    mapper = Mapper(driver_cls, settings=settings or FAST, driver_options=driver_options)
    if model is not None:
        mod = model if isinstance(model, crds.DeviceModel) else crds.DeviceModel.model_validate(model)
        if mod.metadata.namespace is None:
            mod.metadata.namespace = dev.metadata.namespace or "default"
        dev = effective_device(dev, mod)
        await mapper.upsert_model(model_from_crd(mod))
    config = device_from_crd(dev)
    await mapper.add_device(config)
    try:
        yield DeviceUnderTest(mapper, config.id)
    finally:
        await mapper.close()
