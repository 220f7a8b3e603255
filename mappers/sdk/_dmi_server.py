"""DeviceMapperService: what edgecore calls on this mapper, served on the mapper's own Unix socket.

edgecore dials the path the mapper registered (``MapperInfo.address``). A socket file left by a
previous run is removed first unless another process still answers on it; the file is made
group-accessible (0660) so a non-root edgecore in the same group can dial it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from pathlib import Path

from dmi.convert import ConversionError
from dmi.rpc import RpcError, Server, StatusCode
from dmi.v1beta1 import api_pb2
from mappers.sdk._dmi_convert import device_from_dmi, model_from_dmi
from mappers.sdk._mapper import Mapper
from mappers.sdk._types import DeviceConfig

log = logging.getLogger("mappers.dmi")

#: how long RegisterDevice waits for the device's model (KubeEdge: 3 x 1 s)
MODEL_WAIT_S = 3.0


def _refuse(code: StatusCode, msg: str) -> RpcError:
    log.warning("DMI call rejected: %s", msg)
    return RpcError(code, msg)


class MapperService:
    """DeviceMapperService: one method per rpc, as ``dmi.rpc.Server.add_service`` expects."""

    def __init__(self, mapper: Mapper) -> None:
        self.mapper = mapper

    async def _device(self, msg: api_pb2.Device) -> DeviceConfig:
        try:
            config = device_from_dmi(msg)
        except (ConversionError, ValueError) as exc:
            raise _refuse(StatusCode.INVALID_ARGUMENT, f"device {msg.namespace}/{msg.name}: {exc}") from None
        protocol = self.mapper.protocol
        if protocol and config.protocol_name and config.protocol_name != protocol:
            raise _refuse(
                StatusCode.INVALID_ARGUMENT,
                f"device {config.id} uses protocol {config.protocol_name!r}; this mapper serves {protocol!r}",
            )
        return config

    async def _wait_for_model(self, config: DeviceConfig) -> None:
        for _ in range(int(MODEL_WAIT_S * 10)):
            if config.model_key in self.mapper.models:
                return
            await asyncio.sleep(0.1)
        # Run it untyped rather than fail: values are strings until the model arrives.
        log.warning("device %s: model %s unknown; values untyped until it arrives", config.id, config.model)

    async def RegisterDevice(self, request: api_pb2.RegisterDeviceRequest) -> api_pb2.RegisterDeviceResponse:
        config = await self._device(request.device)
        await self._wait_for_model(config)
        await self.mapper.add_device(config)
        return api_pb2.RegisterDeviceResponse(deviceName=config.name, deviceNamespace=config.namespace)

    async def UpdateDevice(self, request: api_pb2.UpdateDeviceRequest) -> api_pb2.UpdateDeviceResponse:
        config = await self._device(request.device)
        await self.mapper.update_device(config)
        return api_pb2.UpdateDeviceResponse()

    async def RemoveDevice(self, request: api_pb2.RemoveDeviceRequest) -> api_pb2.RemoveDeviceResponse:
        namespace = request.deviceNamespace or "default"
        await self.mapper.remove_device(namespace, request.deviceName)
        return api_pb2.RemoveDeviceResponse()

    async def CreateDeviceModel(
        self, request: api_pb2.CreateDeviceModelRequest
    ) -> api_pb2.CreateDeviceModelResponse:
        try:
            model = model_from_dmi(request.model)
        except ValueError as exc:
            raise _refuse(StatusCode.INVALID_ARGUMENT, f"model {request.model.name}: {exc}") from None
        await self.mapper.upsert_model(model)
        return api_pb2.CreateDeviceModelResponse(
            deviceModelName=model.name, deviceModelNamespace=model.namespace
        )

    async def UpdateDeviceModel(
        self, request: api_pb2.UpdateDeviceModelRequest
    ) -> api_pb2.UpdateDeviceModelResponse:
        try:
            model = model_from_dmi(request.model)
        except ValueError as exc:
            raise _refuse(StatusCode.INVALID_ARGUMENT, f"model {request.model.name}: {exc}") from None
        await self.mapper.upsert_model(model)
        return api_pb2.UpdateDeviceModelResponse()

    async def RemoveDeviceModel(
        self, request: api_pb2.RemoveDeviceModelRequest
    ) -> api_pb2.RemoveDeviceModelResponse:
        await self.mapper.remove_model(request.modelNamespace or "default", request.modelName)
        return api_pb2.RemoveDeviceModelResponse()

    async def GetDevice(self, request: api_pb2.GetDeviceRequest) -> api_pb2.GetDeviceResponse:
        namespace = request.deviceNamespace or "default"
        rt = self.mapper.devices.get(f"{namespace}/{request.deviceName}")
        if rt is None:
            raise _refuse(StatusCode.NOT_FOUND, f"device {namespace}/{request.deviceName} not found")
        twins = []
        for prop in rt.config.properties:
            twin = rt.twins.get(prop.name)
            reading = twin.reading if twin is not None else None
            twins.append(
                api_pb2.Twin(
                    propertyName=prop.name,
                    reported=api_pb2.TwinProperty(
                        value=reading.value if reading else "",
                        metadata={"type": reading.type, "timestamp": str(reading.timestamp_ms)}
                        if reading
                        else {},
                    ),
                    observedDesired=api_pb2.TwinProperty(value=prop.desired),
                )
            )
        device = api_pb2.Device(
            name=rt.config.name,
            namespace=rt.config.namespace,
            status=api_pb2.DeviceStatus(
                twins=twins,
                reportToCloud=rt.config.report_to_cloud,
                reportCycle=rt.config.state_report_cycle_ms,
            ),
        )
        return api_pb2.GetDeviceResponse(device=device)


def _prepare_socket(path: str) -> None:
    p = Path(path)
    if not p.parent.is_dir():
        # Not created: a mapper run with the wrong paths must leave nothing behind (e.g. /etc/kubeedge).
        raise RuntimeError(
            f"directory {p.parent} does not exist; is edgecore running on this node? Name its DMI socket "
            "with --node, --data-dir or --edgecore-sock (this mapper's socket goes beside it) or --socket"
        )
    try:
        mode = p.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        p.unlink()  # stale: nobody listens
        return
    finally:
        probe.close()
    raise RuntimeError(f"another process is serving on {path}; is this mapper already running?")


class DmiServer:
    def __init__(self, mapper: Mapper, socket_path: str) -> None:
        self.socket_path = socket_path
        self.service = MapperService(mapper)
        self._server: Server | None = None

    async def start(self) -> None:
        _prepare_socket(self.socket_path)
        server = Server()
        server.add_service(api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"], self.service)
        await server.start(self.socket_path)
        os.chmod(self.socket_path, 0o660)
        self._server = server
        log.info("DeviceMapperService on unix:%s", self.socket_path)

    async def stop(self, grace_s: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
