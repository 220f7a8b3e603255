"""The mapper's side of DeviceManagerService: register with edgecore and send reports.

Registration retries until edgecore answers, and is repeated whenever edgecore may have forgotten
the mapper: after a report fails because edgecore is unreachable, or when edgecore's socket file is
replaced (a restart creates a new one). Before KubeEdge PR #6597 a restarted edgecore lost every
mapper registration; re-registering is harmless when it did not.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dmi.rpc import Channel, RpcError, StatusCode
from dmi.v1beta1 import api_pb2
from kubeshore.backoff import Backoff
from mappers.sdk import _metrics
from mappers.sdk._dmi_convert import device_from_dmi, model_from_dmi
from mappers.sdk._types import DeviceConfig, DeviceModel, Reading

if TYPE_CHECKING:
    from mappers.sdk._device import DeviceRuntime

log = logging.getLogger("mappers.dmi")

#: status codes meaning "edgecore is not there (any more)": re-register
_GONE = {StatusCode.UNAVAILABLE, StatusCode.CANCELLED}
#: edgecore is there but slow or rate limiting: keep the report for the next round, do not re-register
_BUSY = {StatusCode.DEADLINE_EXCEEDED, StatusCode.RESOURCE_EXHAUSTED}
_SERVICE = "/" + api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"].full_name + "/"

OnRegistered = Callable[[list[DeviceModel], list[DeviceConfig]], Awaitable[None]]


@dataclass(frozen=True)
class MapperIdentity:
    name: str
    version: str
    api_version: str
    protocol: str
    socket_path: str


class DmiClient:
    def __init__(
        self,
        edgecore_sock: str,
        identity: MapperIdentity,
        *,
        timeout_s: float = 5.0,
        retry_max_s: float = 5.0,
    ) -> None:
        self.edgecore_sock = edgecore_sock
        self.identity = identity
        self._timeout = timeout_s
        self._retry_max = retry_max_s
        self._channel: Channel | None = None
        self._lost = asyncio.Event()
        self.registered = asyncio.Event()
        self.registrations = 0
        self._unregistered_why = "registering with edgecore"

    # -- connection ------------------------------------------------------------------------------

    async def _open(self) -> Channel:
        await self._close_channel()
        # MapperRegister(withData) carries every device of the mapper: 4 MiB (gRPC's default) is
        # about 1,500 ten-property devices, so allow more from our own edgecore.
        self._channel = Channel(self.edgecore_sock, max_message_size=64 << 20)
        return self._channel

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    def _socket_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.edgecore_sock)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    # -- registration ----------------------------------------------------------------------------

    async def register(self) -> tuple[list[DeviceModel], list[DeviceConfig]]:
        """One MapperRegister call (withData): the models and devices edgecore holds for us."""
        channel = await self._open()
        ident = self.identity
        request = api_pb2.MapperRegisterRequest(
            withData=True,
            mapper=api_pb2.MapperInfo(
                name=ident.name,
                version=ident.version,
                api_version=ident.api_version,
                protocol=ident.protocol,
                address=ident.socket_path.encode(),
                state="ok",
            ),
        )
        resp = await channel.unary(
            _SERVICE + "MapperRegister", request, api_pb2.MapperRegisterResponse, timeout=self._timeout
        )
        models: list[DeviceModel] = []
        devices: list[DeviceConfig] = []
        for m in resp.modelList:
            try:
                models.append(model_from_dmi(m))
            except ValueError as exc:
                log.error("edgecore sent model %s/%s that cannot be used: %s", m.namespace, m.name, exc)
        for d in resp.deviceList:
            try:
                devices.append(device_from_dmi(d))
            except ValueError as exc:
                log.error("edgecore sent device %s/%s that cannot be used: %s", d.namespace, d.name, exc)
        return models, devices

    async def run(self, on_registered: OnRegistered, *, on_lost: Callable[[], None] | None = None) -> None:
        """Stay registered: register (retrying), hand over the device list, watch for edgecore loss."""
        backoff = Backoff(0.2, self._retry_max)
        failures = 0
        while True:
            identity = self._socket_identity()
            try:
                models, devices = await self.register()
            except (RpcError, OSError) as exc:
                failures += 1
                self._unregistered_why = (
                    f"cannot register with edgecore at {self.edgecore_sock}: {_brief(exc)}"
                )
                if failures == 1 or failures % 30 == 0:
                    log.warning(
                        "cannot register with edgecore at %s (%s); retrying", self.edgecore_sock, _brief(exc)
                    )
                await backoff.sleep()
                continue
            failures = 0
            backoff.reset()
            self.registrations += 1
            _metrics.registrations.inc()
            log.info(
                "registered with edgecore as %s (protocol %s): %d devices, %d models",
                self.identity.name,
                self.identity.protocol,
                len(devices),
                len(models),
            )
            self._lost.clear()
            await on_registered(models, devices)
            self.registered.set()
            _metrics.registered.set(1)
            await self._watch(identity)
            self.registered.clear()
            _metrics.registered.set(0)
            self._unregistered_why = (
                f"edgecore at {self.edgecore_sock} went away or restarted; registering again"
            )
            if on_lost is not None:
                on_lost()
            log.warning("edgecore went away or restarted; registering again")

    def not_ready(self) -> str | None:
        """None while registered with edgecore, else why not (the mapper's readiness)."""
        return None if self.registered.is_set() else self._unregistered_why

    async def _watch(self, identity: tuple[int, int] | None) -> None:
        while True:
            try:
                async with asyncio.timeout(1.0):
                    await self._lost.wait()
                return
            except TimeoutError:
                pass
            now = self._socket_identity()
            # Gone: edgecore stopped (it removes its socket); replaced: it restarted.
            if now != identity:
                return

    def report_failed(self, exc: BaseException) -> bool:
        """Reporter callback: True when edgecore is unreachable (keep the report, re-register)."""
        if isinstance(exc, OSError):
            self._lost.set()
            return True
        if isinstance(exc, RpcError):
            if exc.code in _GONE:
                self._lost.set()
                return True
            if exc.code in _BUSY or "too many request" in exc.details:
                return True  # edgecore's rate limiter: try again with the next batch
        log.warning("edgecore rejected a report: %s", _brief(exc))
        return False

    # -- reports ---------------------------------------------------------------------------------

    async def report_status(self, device: DeviceRuntime, readings: list[Reading]) -> None:
        channel = self._channel
        if channel is None:
            raise ConnectionError("not connected to edgecore")
        twins = []
        for r in readings:
            prop = device.config.property(r.property)
            desired = prop.desired if prop is not None else ""
            twins.append(
                api_pb2.Twin(
                    propertyName=r.property,
                    reported=api_pb2.TwinProperty(
                        value=r.value, metadata={"type": r.type, "timestamp": str(r.timestamp_ms)}
                    ),
                    observedDesired=api_pb2.TwinProperty(
                        value=desired, metadata=_refusal(device, r.property)
                    ),
                )
            )
        request = api_pb2.ReportDeviceStatusRequest(
            deviceName=device.config.name,
            deviceNamespace=device.config.namespace,
            reportedDevice=api_pb2.DeviceStatus(
                twins=twins,
                reportToCloud=device.config.report_to_cloud,
                reportCycle=device.config.state_report_cycle_ms,
            ),
        )
        await channel.unary(
            _SERVICE + "ReportDeviceStatus",
            request,
            api_pb2.ReportDeviceStatusResponse,
            timeout=self._timeout,
        )

    async def report_state(self, device: DeviceRuntime) -> None:
        channel = self._channel
        if channel is None:
            raise ConnectionError("not connected to edgecore")
        request = api_pb2.ReportDeviceStatesRequest(
            deviceName=device.config.name, deviceNamespace=device.config.namespace, state=device.state.value
        )
        await channel.unary(
            _SERVICE + "ReportDeviceStates",
            request,
            api_pb2.ReportDeviceStatesResponse,
            timeout=self._timeout,
        )

    async def close(self) -> None:
        await self._close_channel()


def _refusal(device: DeviceRuntime, prop: str) -> dict[str, str]:
    """Why the desired value of ``prop`` was not applied, in the metadata edgecore reads
    (``error``; KubeEdge's edgecore ignores it)."""
    error = device.desired_errors.get(prop)
    return {"error": error} if error else {}


def _brief(exc: BaseException) -> str:
    if isinstance(exc, RpcError):
        return f"{exc.code.name}: {exc.details}"
    return f"{type(exc).__name__}: {exc}"
