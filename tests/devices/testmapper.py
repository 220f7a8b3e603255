"""A test mapper written directly against the DMI v1beta1 proto (no SDK).

In-process (``ProtoMapper``) for the DMI tests, or as a process for the end-to-end test:
``python testmapper.py --edgecore-sock S --socket M --protocol P --name N --record calls.jsonl``.
It records every DeviceMapperService call, registers with withData, and reports each property's
value (the desired value when there is one, else a counter) plus state online every ``--period`` s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, wrappers_pb2

from dmi.v1beta1 import api_pb2, api_pb2_grpc

_ = wrappers_pb2  # registers the wrapper types so Any values in configData decode in the record


class ProtoMapper(api_pb2_grpc.DeviceMapperServiceServicer):
    def __init__(self, socket: str, name: str = "test-mapper", protocol: str = "virtual") -> None:
        self.socket = socket
        self.name = name
        self.protocol = protocol
        self.calls: list[tuple[str, Any]] = []
        self.devices: dict[str, api_pb2.Device] = {}
        self.models: dict[str, api_pb2.DeviceModel] = {}
        self.event = asyncio.Event()
        self.record: Path | None = None
        self._server: grpc.aio.Server | None = None

    def _note(self, call: str, msg: Any) -> None:
        self.calls.append((call, msg))
        self.event.set()
        if self.record is not None:
            with self.record.open("a") as f:
                f.write(json.dumps({"call": call, "msg": json_format.MessageToDict(msg)}) + "\n")

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)
        self._server = grpc.aio.server()
        api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix:{self.socket}")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)

    async def register(self, edgecore_sock: str, with_data: bool = True) -> api_pb2.MapperRegisterResponse:
        async with grpc.aio.insecure_channel(f"unix:{edgecore_sock}") as ch:
            stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
            resp = await stub.MapperRegister(
                api_pb2.MapperRegisterRequest(
                    withData=with_data,
                    mapper=api_pb2.MapperInfo(
                        name=self.name,
                        version="v1",
                        api_version="v1beta1",
                        protocol=self.protocol,
                        address=self.socket.encode(),
                        state="ok",
                    ),
                ),
                timeout=10,
            )
        for m in resp.modelList:
            self.models[f"{m.namespace}/{m.name}"] = m
        for d in resp.deviceList:
            self.devices[f"{d.namespace}/{d.name}"] = d
        self._note("MapperRegister", resp)
        return resp

    async def wait_for(self, call: str, pred: Any = None, within: float = 10) -> Any:
        timeout = within
        deadline = time.monotonic() + timeout
        while True:
            for c, msg in self.calls:
                if c == call and (pred is None or pred(msg)):
                    return msg
            self.event.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"{self.name}: no {call} matching within {timeout}s; got {[c for c, _ in self.calls]}"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self.event.wait()

    # DeviceMapperService ----------------------------------------------------------------------

    async def RegisterDevice(self, request: Any, context: Any) -> api_pb2.RegisterDeviceResponse:
        d = request.device
        self.devices[f"{d.namespace}/{d.name}"] = d
        self._note("RegisterDevice", request)
        return api_pb2.RegisterDeviceResponse(deviceName=d.name, deviceNamespace=d.namespace)

    async def UpdateDevice(self, request: Any, context: Any) -> api_pb2.UpdateDeviceResponse:
        d = request.device
        self.devices[f"{d.namespace}/{d.name}"] = d
        self._note("UpdateDevice", request)
        return api_pb2.UpdateDeviceResponse()

    async def RemoveDevice(self, request: Any, context: Any) -> api_pb2.RemoveDeviceResponse:
        self.devices.pop(f"{request.deviceNamespace}/{request.deviceName}", None)
        self._note("RemoveDevice", request)
        return api_pb2.RemoveDeviceResponse()

    async def CreateDeviceModel(self, request: Any, context: Any) -> api_pb2.CreateDeviceModelResponse:
        m = request.model
        self.models[f"{m.namespace}/{m.name}"] = m
        self._note("CreateDeviceModel", request)
        return api_pb2.CreateDeviceModelResponse(deviceModelName=m.name, deviceModelNamespace=m.namespace)

    async def UpdateDeviceModel(self, request: Any, context: Any) -> api_pb2.UpdateDeviceModelResponse:
        m = request.model
        self.models[f"{m.namespace}/{m.name}"] = m
        self._note("UpdateDeviceModel", request)
        return api_pb2.UpdateDeviceModelResponse()

    async def RemoveDeviceModel(self, request: Any, context: Any) -> api_pb2.RemoveDeviceModelResponse:
        self.models.pop(f"{request.modelNamespace}/{request.modelName}", None)
        self._note("RemoveDeviceModel", request)
        return api_pb2.RemoveDeviceModelResponse()

    async def GetDevice(self, request: Any, context: Any) -> api_pb2.GetDeviceResponse:
        d = self.devices.get(f"{request.deviceNamespace}/{request.deviceName}")
        if d is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such device")
        return api_pb2.GetDeviceResponse(device=d)


async def _report_loop(mapper: ProtoMapper, edgecore_sock: str, period: float) -> None:
    counter = 0
    async with grpc.aio.insecure_channel(f"unix:{edgecore_sock}") as ch:
        stub = api_pb2_grpc.DeviceManagerServiceStub(ch)
        while True:
            counter += 1
            for d in list(mapper.devices.values()):
                twins = []
                for p in d.spec.properties:
                    value = p.desired.value if p.desired.value else str(counter)
                    twins.append(
                        api_pb2.Twin(
                            propertyName=p.name,
                            reported=api_pb2.TwinProperty(
                                value=value,
                                metadata={"timestamp": str(int(time.time() * 1000)), "type": "string"},
                            ),
                            observedDesired=api_pb2.TwinProperty(value=p.desired.value),
                        )
                    )
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.ReportDeviceStatus(
                        api_pb2.ReportDeviceStatusRequest(
                            deviceName=d.name,
                            deviceNamespace=d.namespace,
                            reportedDevice=api_pb2.DeviceStatus(twins=twins),
                        ),
                        timeout=5,
                    )
                    await stub.ReportDeviceStates(
                        api_pb2.ReportDeviceStatesRequest(
                            deviceName=d.name, deviceNamespace=d.namespace, state="online"
                        ),
                        timeout=5,
                    )
            await asyncio.sleep(period)


async def _main(args: argparse.Namespace) -> None:
    mapper = ProtoMapper(args.socket, args.name, args.protocol)
    mapper.record = Path(args.record) if args.record else None
    await mapper.start()
    while True:  # edgecore may not be up yet (or restarting)
        try:
            await mapper.register(args.edgecore_sock)
            break
        except grpc.aio.AioRpcError:
            await asyncio.sleep(0.3)
    print("registered", flush=True)
    await _report_loop(mapper, args.edgecore_sock, args.period)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgecore-sock", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--protocol", default="virtual")
    ap.add_argument("--name", default="test-mapper")
    ap.add_argument("--record", default="")
    ap.add_argument("--period", type=float, default=0.5)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(ap.parse_args()))
    sys.exit(0)
