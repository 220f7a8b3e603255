"""The generated DMI stubs (fresh: tests/test_codegen.py): importable, KubeEdge's wire names, and usable
over a real Unix socket."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from dmi.v1beta1 import api_pb2, api_pb2_grpc


def test_wire_names_match_kubeedge() -> None:
    file = api_pb2.DESCRIPTOR
    assert file.package == "v1beta1"
    assert [d.name for d in file.dependencies] == ["google/protobuf/any.proto"]
    manager = file.services_by_name["DeviceManagerService"]
    mapper = file.services_by_name["DeviceMapperService"]
    assert [m.name for m in manager.methods] == ["MapperRegister", "ReportDeviceStatus", "ReportDeviceStates"]
    assert [m.name for m in mapper.methods] == [
        "RegisterDevice",
        "RemoveDevice",
        "UpdateDevice",
        "CreateDeviceModel",
        "RemoveDeviceModel",
        "UpdateDeviceModel",
        "GetDevice",
    ]
    # Spot checks of the odd spellings Go mappers depend on.
    fields = {
        m: {f.name: (f.number, f.type) for f in file.message_types_by_name[m].fields}
        for m in (
            "MapperInfo",
            "PushMethodHTTP",
            "DBMethod",
            "TDEngineClientConfig",
            "DeviceCommand",
            "PushMethod",
        )
    }
    fd = descriptor_pb2.FieldDescriptorProto
    assert fields["MapperInfo"]["api_version"] == (3, fd.TYPE_STRING)
    assert fields["MapperInfo"]["address"] == (5, fd.TYPE_BYTES)
    assert fields["PushMethodHTTP"] == {
        "hostname": (1, fd.TYPE_STRING),
        "port": (2, fd.TYPE_INT64),
        "requestpath": (3, fd.TYPE_STRING),
        "timeout": (4, fd.TYPE_INT64),
    }
    assert fields["DBMethod"]["tdengine"][0] == 3
    assert fields["TDEngineClientConfig"]["dbname"] == (2, fd.TYPE_STRING)
    assert fields["DeviceCommand"]["status_code"] == (4, fd.TYPE_STRING)
    assert {k: v[0] for k, v in fields["PushMethod"].items()} == {
        "http": 1,
        "mqtt": 2,
        "dbMethod": 3,
        "otel": 4,
        "anomalyDetection": 5,
    }


class _Mapper(api_pb2_grpc.DeviceMapperServiceServicer):
    """Just enough of a mapper to answer GetDevice; other rpcs stay unimplemented."""

    async def GetDevice(
        self, request: api_pb2.GetDeviceRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> api_pb2.GetDeviceResponse:
        if request.deviceName != "thermo":
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"device {request.deviceNamespace}/{request.deviceName}"
            )
        twin = api_pb2.Twin(propertyName="temperature", reported=api_pb2.TwinProperty(value="21.5"))
        device = api_pb2.Device(
            name=request.deviceName,
            namespace=request.deviceNamespace,
            status=api_pb2.DeviceStatus(twins=[twin], reportToCloud=True, reportCycle=1000),
        )
        return api_pb2.GetDeviceResponse(device=device)


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer than that.
    directory = Path(tempfile.mkdtemp(prefix="dmi-", dir="/tmp"))
    yield directory / "mapper.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def mapper_server(socket_path: Path) -> AsyncIterator[str]:
    server = grpc.aio.server()
    api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(_Mapper(), server)
    reflection.enable_server_reflection(
        [api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"].full_name, reflection.SERVICE_NAME],
        server,
    )
    target = f"unix://{socket_path}"
    server.add_insecure_port(target)
    await server.start()
    try:
        yield target
    finally:
        await server.stop(grace=None)


async def test_get_device_over_unix_socket(mapper_server: str) -> None:
    async with grpc.aio.insecure_channel(mapper_server) as channel:
        stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
        reply = await stub.GetDevice(
            api_pb2.GetDeviceRequest(deviceName="thermo", deviceNamespace="default"), timeout=5
        )
        assert reply.device.name == "thermo"
        assert reply.device.namespace == "default"
        assert reply.device.status.twins[0].reported.value == "21.5"

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetDevice(
                api_pb2.GetDeviceRequest(deviceName="nope", deviceNamespace="default"), timeout=5
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        with pytest.raises(grpc.aio.AioRpcError) as unimplemented:
            await stub.RemoveDevice(api_pb2.RemoveDeviceRequest(deviceName="thermo"), timeout=5)
        assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_serves_the_dmi_descriptor(mapper_server: str) -> None:
    # grpcurl and other tools discover the service this way, as they do against KubeEdge's mappers.
    async with grpc.aio.insecure_channel(mapper_server) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="v1beta1.DeviceMapperService"),
        ]
        replies = [reply async for reply in stub.ServerReflectionInfo(iter(requests), timeout=5)]
    services = {s.name for s in replies[0].list_services_response.service}
    assert "v1beta1.DeviceMapperService" in services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in replies[1].file_descriptor_response.file_descriptor_proto
    ]
    dmi_file = next(f for f in files if f.package == "v1beta1")
    assert "GetDevice" in {m.name for s in dmi_file.service for m in s.method}
