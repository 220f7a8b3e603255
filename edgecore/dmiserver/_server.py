"""DeviceManagerService (DMI v1beta1) on a Unix socket: mappers register and report here.

Served by ``dmi.rpc`` rather than grpcio, which costs three times the CPU per call. Unlike
KubeEdge there is no shared 1 request/s limiter: reports are cheap (an in-memory twin update, a
row in the next group commit and a few MQTT publishes), and throttling them only loses data.

A report is answered OK only once it is committed to SQLite (the twin store's group commit: the
reports that arrive while one transaction commits share the next), so an OK survives a kill -9 of
edgecore; when the store cannot write, reports are answered UNAVAILABLE and the mapper keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from pathlib import Path
from typing import TypeVar

from dmi.rpc import RpcError, Server, StatusCode, enable_reflection
from dmi.v1beta1 import api_pb2
from edgecore.devicetwin import DeviceTwin, TwinError
from edgecore.dmiserver._registry import MapperRegistry

log = logging.getLogger(__name__)

R = TypeVar("R")

DEFAULT_SOCKET = "/etc/kubeedge/dmi.sock"
# kubeshore's mappers say why a desired value was not applied in the metadata of observedDesired
# (a free-form map KubeEdge's edgecore ignores).
DESIRED_ERROR = "error"


def socket_path(configured: str) -> str:
    """A directory (KubeEdge master's form) gets ``dmi.sock`` appended; a file path is used as is."""
    if configured.endswith("/") or Path(configured).is_dir():
        return str(Path(configured) / "dmi.sock")
    return configured


_CODES = {400: StatusCode.INVALID_ARGUMENT, 404: StatusCode.NOT_FOUND, 409: StatusCode.ABORTED}


class _Servicer:
    """DeviceManagerService."""

    def __init__(self, twin: DeviceTwin, registry: MapperRegistry, calls: Counter[tuple[str, str]]) -> None:
        self.twin = twin
        self.registry = registry
        self.calls = calls

    def _refuse(self, rpc: str, code: StatusCode, reason: str) -> RpcError:
        self.calls[rpc, code.name] += 1
        return RpcError(code, reason)

    async def MapperRegister(self, request: api_pb2.MapperRegisterRequest) -> api_pb2.MapperRegisterResponse:
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
            raise self._refuse(
                "MapperRegister",
                StatusCode.INVALID_ARGUMENT,
                f"MapperRegister: missing {', '.join(missing) or 'mapper'}",
            )
        response = await self.registry.register(mapper, request.withData)
        self.calls["MapperRegister", "OK"] += 1
        return response

    def _durable(self, rpc: str, response: R) -> asyncio.Future[R]:
        """``response``, once what the call changed is committed (the twin store's group commit);
        UNAVAILABLE when the store cannot write. A future, not a coroutine: the report is applied
        at once and costs no task."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()

        def committed(group: asyncio.Future[None]) -> None:
            if answer.done():
                return
            exc = None if group.cancelled() else group.exception()
            if group.cancelled() or exc is not None:
                answer.set_exception(self._refuse(rpc, StatusCode.UNAVAILABLE, str(exc or "store closed")))
            else:
                self.calls[rpc, "OK"] += 1
                answer.set_result(response)

        self.twin.store.committed().add_done_callback(committed)
        return answer

    def ReportDeviceStatus(
        self, request: api_pb2.ReportDeviceStatusRequest
    ) -> asyncio.Future[api_pb2.ReportDeviceStatusResponse]:
        rpc = "ReportDeviceStatus"
        if not request.deviceName:
            raise self._refuse(rpc, StatusCode.INVALID_ARGUMENT, "ReportDeviceStatus: missing deviceName")
        if not request.HasField("reportedDevice") or not request.reportedDevice.twins:
            raise self._refuse(
                rpc, StatusCode.INVALID_ARGUMENT, "ReportDeviceStatus: reportedDevice has no twins"
            )
        twins: list[tuple[str, str | None, dict[str, str], str | None]] = []
        refused: dict[str, str] = {}
        for t in request.reportedDevice.twins:
            if not t.propertyName:
                raise self._refuse(
                    rpc, StatusCode.INVALID_ARGUMENT, "ReportDeviceStatus: a twin has no propertyName"
                )
            reported = t.reported.value if t.HasField("reported") else None
            observed = (
                t.observedDesired.value if t.HasField("observedDesired") and t.observedDesired.value else None
            )
            twins.append((t.propertyName, reported, dict(t.reported.metadata), observed))
            error = t.observedDesired.metadata.get(DESIRED_ERROR) if t.HasField("observedDesired") else None
            if error:
                refused[t.propertyName] = error
        try:
            namespace = request.deviceNamespace or "default"
            self.twin.report_status(namespace, request.deviceName, twins)
            self.twin.desired_outcome(namespace, request.deviceName, [t[0] for t in twins], refused)
        except TwinError as err:
            raise self._refuse(rpc, _CODES.get(err.code, StatusCode.INTERNAL), err.reason) from None
        return self._durable(rpc, api_pb2.ReportDeviceStatusResponse())

    def ReportDeviceStates(
        self, request: api_pb2.ReportDeviceStatesRequest
    ) -> asyncio.Future[api_pb2.ReportDeviceStatesResponse]:
        rpc = "ReportDeviceStates"
        if not request.deviceName or not request.state:
            raise self._refuse(
                rpc, StatusCode.INVALID_ARGUMENT, "ReportDeviceStates: deviceName and state are required"
            )
        try:
            self.twin.report_state(request.deviceNamespace or "default", request.deviceName, request.state)
        except TwinError as err:
            raise self._refuse(rpc, _CODES.get(err.code, StatusCode.INTERNAL), err.reason) from None
        return self._durable(rpc, api_pb2.ReportDeviceStatesResponse())


class DmiServer:
    """The DMI server plus the mapper registry it feeds; ``start`` binds the socket (mode 0660)."""

    def __init__(self, twin: DeviceTwin, path: str = DEFAULT_SOCKET) -> None:
        self.twin = twin
        self.path = socket_path(path)
        self.registry = MapperRegistry(twin)
        #: (rpc, "ok" | grpc status code name) -> calls, for /metrics
        self.calls: Counter[tuple[str, str]] = Counter()
        self._server: Server | None = None

    async def start(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a stale socket from a killed edgecore
        server = Server()
        server.add_service(
            api_pb2.DESCRIPTOR.services_by_name["DeviceManagerService"],
            _Servicer(self.twin, self.registry, self.calls),
        )
        enable_reflection(server)  # as KubeEdge's, so grpcurl can list and call the service
        await server.start(self.path)
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
