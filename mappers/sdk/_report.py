"""Batching of device twins and states towards edgecore.

Collect loops only drop their newest reading here; one task sends, per device, a single
ReportDeviceStatus carrying every property read since the last send. While edgecore is unreachable
only the newest reading per property is kept (bounded by the number of properties), and every
device's state is sent again once the mapper has registered anew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

from mappers.sdk import _metrics
from mappers.sdk._types import Reading

if TYPE_CHECKING:
    from mappers.sdk._device import DeviceRuntime

log = logging.getLogger("mappers.report")

SendStatus = Callable[["DeviceRuntime", list[Reading]], Awaitable[None]]
SendState = Callable[["DeviceRuntime"], Awaitable[None]]


class Reporter:
    def __init__(
        self,
        send_status: SendStatus,
        send_state: SendState,
        on_failure: Callable[[BaseException], bool],
        *,
        window_s: float = 0.05,
        concurrency: int = 16,
    ) -> None:
        self._send_status = send_status
        self._send_state = send_state
        self._on_failure = on_failure
        self._window_s = window_s
        self._concurrency = concurrency
        self._failing = False
        self._twins: dict[str, dict[str, Reading]] = {}
        self._devices: dict[str, DeviceRuntime] = {}
        self._states: dict[str, DeviceRuntime] = {}
        self._wake = asyncio.Event()
        #: set while registered with edgecore; reports wait for it
        self.ready = asyncio.Event()

    def twin(self, device: DeviceRuntime, reading: Reading) -> None:
        prop = device.config.property(reading.property)
        if prop is None or not prop.report_to_cloud:
            return
        self._devices[device.id] = device
        self._twins.setdefault(device.id, {})[reading.property] = reading
        self._wake.set()

    def state(self, device: DeviceRuntime) -> None:
        self._states[device.id] = device
        self._wake.set()

    def forget(self, device_id: str) -> None:
        self._twins.pop(device_id, None)
        self._devices.pop(device_id, None)
        self._states.pop(device_id, None)

    def resend_states(self, devices: list[DeviceRuntime]) -> None:
        for device in devices:
            self.state(device)

    @property
    def pending(self) -> int:
        return sum(len(t) for t in self._twins.values()) + len(self._states)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await self.ready.wait()
            await asyncio.sleep(self._window_s)
            self._wake.clear()
            twins, self._twins = self._twins, {}
            devices, self._devices = self._devices, {}
            states, self._states = self._states, {}
            # States first: online/offline matters more than one more value.
            jobs: list[Callable[[], Awaitable[None]]] = [partial(self._state, dev) for dev in states.values()]
            jobs += [partial(self._status, devices[d], readings) for d, readings in twins.items()]
            # A few workers rather than one task per device: flushes of thousands of devices stay cheap,
            # and while edgecore is slow the next flush simply carries the newest values.
            queue = iter(jobs)
            await asyncio.gather(*(_drain(queue) for _ in range(min(self._concurrency, len(jobs)))))

    async def _status(self, device: DeviceRuntime, readings: dict[str, Reading]) -> None:
        try:
            await self._send_status(device, list(readings.values()))
        except Exception as exc:
            _metrics.reports.labels("ReportDeviceStatus", "error").inc()
            if self._failed(exc):
                # Keep the newest values for the next attempt unless newer ones arrived meanwhile.
                pending = self._twins.setdefault(device.id, {})
                for name, reading in readings.items():
                    pending.setdefault(name, reading)
                self._devices.setdefault(device.id, device)
        else:
            self._delivered()
            _metrics.reports.labels("ReportDeviceStatus", "ok").inc()
            _metrics.twins_reported.inc(len(readings))

    async def _state(self, device: DeviceRuntime) -> None:
        try:
            await self._send_state(device)
        except Exception as exc:
            _metrics.reports.labels("ReportDeviceStates", "error").inc()
            if self._failed(exc):
                self._states.setdefault(device.id, device)
        else:
            self._delivered()
            _metrics.reports.labels("ReportDeviceStates", "ok").inc()

    def _delivered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("reports reach edgecore again")

    def _failed(self, exc: BaseException) -> bool:
        """Log once per outage and ask the client whether to keep the report for the next round."""
        if not self._failing:
            self._failing = True
            log.warning("report to edgecore failed (%s); keeping the newest values", _brief(exc))
        retry = self._on_failure(exc)
        if retry:
            self._wake.set()
        return retry


async def _drain(jobs: Iterator[Callable[[], Awaitable[None]]]) -> None:
    for job in jobs:
        await job()


def _brief(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):
        details = getattr(exc, "details", lambda: "")()
        return f"{code().name}: {details}"
    return f"{type(exc).__name__}: {exc}"
