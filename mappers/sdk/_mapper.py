"""The set of models and devices one mapper runs, and what happens to their readings.

Entry points are the DMI calls (add/update/remove devices and models, reconcile after registering)
and the REST API (read, write). Readings flow from devices to the reporter (edgecore), the SQLite
time series and the devices' push targets.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from mappers.sdk import _metrics
from mappers.sdk._device import DeviceRuntime, RuntimeSettings, UpdateResult
from mappers.sdk._report import Reporter
from mappers.sdk._types import DeviceConfig, DeviceModel, DeviceState, PropertyConfig, Reading
from mappers.sdk.driver import Driver
from mappers.sdk.sinks import SinkHub

log = logging.getLogger("mappers.mapper")


class UnknownDevice(LookupError):
    pass


class Mapper:
    def __init__(
        self,
        driver_cls: type[Driver],
        *,
        settings: RuntimeSettings | None = None,
        sinks: SinkHub | None = None,
        reporter: Reporter | None = None,
        driver_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.driver_cls = driver_cls
        self.protocol = driver_cls.protocol
        self.settings = settings or RuntimeSettings()
        self.sinks = sinks or SinkHub()
        self.reporter = reporter
        self.driver_options = driver_options or {}
        self.models: dict[str, DeviceModel] = {}
        self.devices: dict[str, DeviceRuntime] = {}
        self._lock = asyncio.Lock()
        self._m_readings = _metrics.readings.labels(self.protocol or driver_cls.__name__)

    # -- models ----------------------------------------------------------------------------------

    def model_for(self, config: DeviceConfig) -> DeviceModel:
        return self.models.get(config.model_key) or DeviceModel(config.namespace, config.model)

    async def upsert_model(self, model: DeviceModel) -> None:
        async with self._lock:
            old = self.models.get(model.key)
            self.models[model.key] = model
            if old == model:
                return
            for rt in self.devices.values():
                if rt.config.model_key == model.key:
                    await rt.update(rt.config, model)

    async def remove_model(self, namespace: str, name: str) -> None:
        async with self._lock:
            self.models.pop(f"{namespace}/{name}", None)

    # -- devices ---------------------------------------------------------------------------------

    async def add_device(self, config: DeviceConfig) -> UpdateResult | None:
        async with self._lock:
            return await self._add_or_update(config)

    async def _add_or_update(self, config: DeviceConfig) -> UpdateResult | None:
        existing = self.devices.get(config.id)
        if existing is not None:
            result = await existing.update(config, self.model_for(config))
            if result.changes:
                log.info("device %s updated: %s", config.id, "; ".join(result.changes))
            return result
        rt = DeviceRuntime(
            config, self.model_for(config), self.driver_cls, self, self.settings, self.driver_options
        )
        self.devices[config.id] = rt
        rt.start()
        log.info("device %s added (%d properties)", config.id, len(config.properties))
        return None

    async def update_device(self, config: DeviceConfig) -> UpdateResult | None:
        return await self.add_device(config)

    async def remove_device(self, namespace: str, name: str) -> bool:
        async with self._lock:
            rt = self.devices.pop(f"{namespace}/{name}", None)
            if rt is None:
                return False
            await rt.stop()
            if self.reporter is not None:
                self.reporter.forget(rt.id)
            self._count_states()
            log.info("device %s removed", rt.id)
            return True

    async def reconcile(self, models: Iterable[DeviceModel], devices: Iterable[DeviceConfig]) -> None:
        """Make the running set equal edgecore's view, as returned by MapperRegister."""
        async with self._lock:
            for model in models:
                self.models[model.key] = model
            wanted = {d.id: d for d in devices}
            for device_id in list(self.devices.keys() - wanted.keys()):
                rt = self.devices.pop(device_id)
                await rt.stop()
                if self.reporter is not None:
                    self.reporter.forget(device_id)
                log.info("device %s removed: edgecore no longer lists it", device_id)
            for config in wanted.values():
                await self._add_or_update(config)
            self._count_states()

    def get(self, namespace: str, name: str) -> DeviceRuntime:
        rt = self.devices.get(f"{namespace}/{name}")
        if rt is None:
            raise UnknownDevice(f"device {namespace}/{name} is not managed by this mapper")
        return rt

    async def write(self, namespace: str, name: str, prop: str, text: str) -> Any:
        return await self.get(namespace, name).write(prop, text)

    async def close(self) -> None:
        async with self._lock:
            await asyncio.gather(*(rt.stop() for rt in self.devices.values()), return_exceptions=True)
            self.devices.clear()
        await self.sinks.close()

    # -- RuntimeEvents ---------------------------------------------------------------------------

    def twin_updated(self, device: DeviceRuntime, reading: Reading) -> None:
        self._m_readings.inc()
        self.sinks.record(reading)
        if self.reporter is not None:
            self.reporter.twin(device, reading)

    def state_changed(self, device: DeviceRuntime) -> None:
        if self.reporter is not None:
            self.reporter.state(device)
        self._count_states()

    def push(self, device: DeviceRuntime, prop: PropertyConfig, reading: Reading) -> None:
        if prop.push is None:
            return
        for target in prop.push.targets():
            try:
                self.sinks.push(target, reading)
            except Exception as exc:
                log.warning("device %s property %s: cannot push: %s", device.id, prop.name, exc)

    def _count_states(self) -> None:
        counts = Counter(rt.state for rt in self.devices.values())
        for state in DeviceState:
            _metrics.devices.labels(state.value).set(counts.get(state, 0))
