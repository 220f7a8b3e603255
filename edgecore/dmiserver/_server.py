"""DeviceManagerService (DMI v1beta1) on a Unix socket: mappers register and report here.

Unlike KubeEdge there is no shared 1 request/s limiter: reports are cheap (an in-memory twin
update, a write-behind row and a few MQTT publishes), and throttling them only loses data.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc

from dmi.v1beta1 import api_pb2, api_pb2_grpc
from edgecore.devicetwin import DeviceTwin, TwinError
from edgecore.dmiserver._registry import MapperRegistry

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/etc/kubeedge/dmi.sock"


def socket_path(configured: str) -> str:
    """A directory (KubeEdge master's form) gets ``dmi.sock`` appended; a file path is used as is."""
    if configured.endswith("/") or Path(configured).is_dir():
        return str(Path(configured) / "dmi.sock")
    return configured


_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND, 409: grpc.StatusCode.ABORTED}


_Rpc = TypeVar("_Rpc", bound=Callable[..., Awaitable[Any]])


def _counted(rpc: _Rpc) -> _Rpc:
    """Count each call of ``rpc`` by result; an abort counts under its status code."""

    @functools.wraps(rpc)
    async def wrapper(self: _Servicer, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            response = await rpc(self, request, context)
        except BaseException:
            code = context.code()
            self.calls[rpc.__name__, code.name if isinstance(code, grpc.StatusCode) else "ERROR"] += 1
            raise
        self.calls[rpc.__name__, "OK"] += 1
        return response

    return cast(_Rpc, wrapper)


class _Servicer(api_pb2_grpc.DeviceManagerServiceServicer):
    def __init__(self, twin: DeviceTwin, registry: MapperRegistry, calls: Counter[tuple[str, str]]) -> None:
        self.twin = twin
        self.registry = registry
        self.calls = calls

    @_counted
    async def MapperRegister(
        self, request: api_pb2.MapperRegisterRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.MapperRegisterResponse:
        mapper = request.mapper
        missing = [
            f
            for f, v in (
                ("mapper.name", mapper.name),
                ("mapper.protocol", mapper.protocol),
                ("mapper.address", mapper.address),
            )
            if not v
        ]
        if not request.HasField("mapper") or missing:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"MapperRegister: missing {', '.join(missing) or 'mapper'}"
            )
        return await self.registry.register(mapper, request.withData)

    @_counted
    async def ReportDeviceStatus(
        self, request: api_pb2.ReportDeviceStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.ReportDeviceStatusResponse:
        if not request.deviceName:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ReportDeviceStatus: missing deviceName")
        if not request.HasField("reportedDevice") or not request.reportedDevice.twins:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "ReportDeviceStatus: reportedDevice has no twins"
            )
        twins: list[tuple[str, str | None, dict[str, str], str | None]] = []
        for t in request.reportedDevice.twins:
            if not t.propertyName:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "ReportDeviceStatus: a twin has no propertyName"
                )
            reported = t.reported.value if t.HasField("reported") else None
            observed = (
                t.observedDesired.value if t.HasField("observedDesired") and t.observedDesired.value else None
            )
            twins.append((t.propertyName, reported, dict(t.reported.metadata), observed))
        try:
            self.twin.report_status(request.deviceNamespace or "default", request.deviceName, twins)
        except TwinError as err:
            await context.abort(_CODES.get(err.code, grpc.StatusCode.INTERNAL), err.reason)
        return api_pb2.ReportDeviceStatusResponse()

    @_counted
    async def ReportDeviceStates(
        self, request: api_pb2.ReportDeviceStatesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> api_pb2.ReportDeviceStatesResponse:
        if not request.deviceName or not request.state:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "ReportDeviceStates: deviceName and state are required"
            )
        try:
            self.twin.report_state(request.deviceNamespace or "default", request.deviceName, request.state)
        except TwinError as err:
            await context.abort(_CODES.get(err.code, grpc.StatusCode.INTERNAL), err.reason)
        return api_pb2.ReportDeviceStatesResponse()


class DmiServer:
    """The DMI server plus the mapper registry it feeds; ``start`` binds the socket (mode 0660)."""

    def __init__(self, twin: DeviceTwin, path: str = DEFAULT_SOCKET) -> None:
        self.twin = twin
        self.path = socket_path(path)
        self.registry = MapperRegistry(twin)
        #: (rpc, "ok" | grpc status code name) -> calls, for /metrics
        self.calls: Counter[tuple[str, str]] = Counter()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a stale socket from a killed edgecore
        server = grpc.aio.server()
        api_pb2_grpc.add_DeviceManagerServiceServicer_to_server(
            _Servicer(self.twin, self.registry, self.calls), server
        )
        # As KubeEdge's, so grpcurl can list and call the service.
        from grpc_reflection.v1alpha import reflection

        service = api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"].full_name
        reflection.enable_server_reflection([service, reflection.SERVICE_NAME], server)
        server.add_insecure_port(f"unix:{self.path}")
        await server.start()
        os.chmod(self.path, 0o660)
        self._server = server
        self.twin.listeners.append(self.registry)
        await self.registry.start()
        log.info("DMI server listening on %s", self.path)

    async def stop(self) -> None:
        await self.registry.stop()
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
