"""dmi.rpc against grpcio in both directions, over real Unix sockets: the wire must be gRPC's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dmi.rpc import Channel, RpcError, Server, StatusCode, enable_reflection
from dmi.rpc._hpack import Decoder, encode
from dmi.rpc._http2 import PREFACE, frame
from dmi.v1beta1 import api_pb2, api_pb2_grpc

MAPPER = api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"]
GET = "/v1beta1.DeviceMapperService/GetDevice"
REMOVE = "/v1beta1.DeviceMapperService/RemoveDevice"
BIG = 3 * 1024 * 1024  # far beyond HTTP/2's default 64 KiB windows and 16 KiB frames


class Mapper:
    """GetDevice echoes the name (an async handler); RemoveDevice is a plain function that refuses."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def GetDevice(self, request: api_pb2.GetDeviceRequest) -> api_pb2.GetDeviceResponse:
        name = request.deviceName
        if name == "slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if name == "boom":
            raise ValueError("the handler broke")
        if name.startswith("big:"):
            name = "x" * int(name[4:])
        return api_pb2.GetDeviceResponse(
            device=api_pb2.Device(name=name, namespace=str(len(request.deviceName)))
        )

    def RemoveDevice(self, request: api_pb2.RemoveDeviceRequest) -> api_pb2.RemoveDeviceResponse:
        if request.deviceName == "missing":
            raise RpcError(StatusCode.NOT_FOUND, "device default/missing: 100% gone, naïve ☃")
        return api_pb2.RemoveDeviceResponse()

    def CreateDeviceModel(
        self, request: api_pb2.CreateDeviceModelRequest
    ) -> asyncio.Future[api_pb2.CreateDeviceModelResponse]:
        """A plain function that answers later: done now, answered when its future is."""
        answer: asyncio.Future[api_pb2.CreateDeviceModelResponse] = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        if request.model.name == "refused":
            loop.call_later(0.05, answer.set_exception, RpcError(StatusCode.UNAVAILABLE, "store is full"))
        else:
            response = api_pb2.CreateDeviceModelResponse(deviceModelName=request.model.name)
            loop.call_later(0.05, answer.set_result, response)
        return answer


@pytest.fixture
async def ours(tmp_path: Path) -> AsyncIterator[tuple[str, Mapper]]:
    server = Server()
    impl = Mapper()
    server.add_service(MAPPER, impl)
    enable_reflection(server)
    path = str(tmp_path / "ours.sock")
    await server.start(path)
    yield path, impl
    await server.stop(0.1)


class GrpcioMapper(api_pb2_grpc.DeviceMapperServiceServicer):
    async def GetDevice(
        self, request: api_pb2.GetDeviceRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> api_pb2.GetDeviceResponse:
        name = request.deviceName
        if name == "slow":
            await asyncio.sleep(30)
        if name == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "device default/missing: 100% gone, naïve ☃")
        if name.startswith("big:"):
            name = "x" * int(name[4:])
        return api_pb2.GetDeviceResponse(
            device=api_pb2.Device(name=name, namespace=str(len(request.deviceName)))
        )


async def grpcio_server(path: str, compression: grpc.Compression | None = None) -> grpc.aio.Server:
    server = grpc.aio.server(
        compression=compression, options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)]
    )
    api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(GrpcioMapper(), server)
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    return server


# ---- grpcio client -> our server ----------------------------------------------------------------


async def test_grpcio_client_calls_our_server(ours: tuple[str, Mapper]) -> None:
    path, _ = ours
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
        reply = await stub.GetDevice(api_pb2.GetDeviceRequest(deviceName="d1"), timeout=5)
        assert reply.device.name == "d1"
        await stub.RemoveDevice(api_pb2.RemoveDeviceRequest(deviceName="d1"), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RemoveDevice(api_pb2.RemoveDeviceRequest(deviceName="missing"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == "device default/missing: 100% gone, naïve ☃"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDevice(api_pb2.GetDeviceRequest(deviceName="boom"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNKNOWN
        assert "the handler broke" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateDevice(api_pb2.UpdateDeviceRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # Many calls at once share the connection.
        replies = await asyncio.gather(
            *(stub.GetDevice(api_pb2.GetDeviceRequest(deviceName=f"d{i}"), timeout=10) for i in range(300))
        )
        assert [r.device.name for r in replies] == [f"d{i}" for i in range(300)]


async def test_a_plain_handler_may_answer_later(ours: tuple[str, Mapper]) -> None:
    path, _ = ours
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
        model = api_pb2.DeviceModel(name="m1")
        reply = await stub.CreateDeviceModel(api_pb2.CreateDeviceModelRequest(model=model), timeout=5)
        assert reply.deviceModelName == "m1"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            refused = api_pb2.DeviceModel(name="refused")
            await stub.CreateDeviceModel(api_pb2.CreateDeviceModelRequest(model=refused), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and err.value.details() == "store is full"


async def test_grpcio_deadline_cancels_our_handler(ours: tuple[str, Mapper]) -> None:
    path, impl = ours
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDevice(api_pb2.GetDeviceRequest(deviceName="slow"), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await asyncio.wait_for(impl.cancelled.wait(), 5)


async def test_large_messages_both_ways_with_grpcio_client(ours: tuple[str, Mapper]) -> None:
    path, _ = ours
    options = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"unix:{path}", options=options) as channel:
        stub = api_pb2_grpc.DeviceMapperServiceStub(channel)
        reply = await stub.GetDevice(api_pb2.GetDeviceRequest(deviceName="n" * BIG), timeout=20)
        assert reply.device.namespace == str(BIG)
        reply = await stub.GetDevice(api_pb2.GetDeviceRequest(deviceName=f"big:{BIG}"), timeout=20)
        assert len(reply.device.name) == BIG
        # Compressed requests are accepted.
        reply = await stub.GetDevice(
            api_pb2.GetDeviceRequest(deviceName="z" * 100_000), timeout=20, compression=grpc.Compression.Gzip
        )
        assert reply.device.namespace == "100000"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetDevice(api_pb2.GetDeviceRequest(deviceName="n" * (5 * 1024 * 1024)), timeout=20)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_reflection_lists_and_describes_the_services(ours: tuple[str, Mapper]) -> None:
    path, _ = ours
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="v1beta1.DeviceMapperService"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests))]
    names = {s.name for s in responses[0].list_services_response.service}
    assert "v1beta1.DeviceMapperService" in names
    assert "grpc.reflection.v1alpha.ServerReflection" in names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(b)
        for b in responses[1].file_descriptor_response.file_descriptor_proto
    ]
    api = next(f for f in files if f.package == "v1beta1")
    assert "DeviceMapperService" in [s.name for s in api.service]
    assert "google/protobuf/any.proto" in [f.name for f in files]  # dependencies come along
    assert responses[2].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


# ---- our client -> grpcio server ----------------------------------------------------------------


async def test_our_client_calls_a_grpcio_server(tmp_path: Path) -> None:
    path = str(tmp_path / "grpcio.sock")
    server = await grpcio_server(path)
    channel = Channel(path, max_message_size=8 * 1024 * 1024)
    try:
        reply = await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName="d1"), api_pb2.GetDeviceResponse, timeout=5
        )
        assert reply.device.name == "d1"
        with pytest.raises(RpcError) as err:
            await channel.unary(
                GET, api_pb2.GetDeviceRequest(deviceName="missing"), api_pb2.GetDeviceResponse, timeout=5
            )
        assert err.value.code == StatusCode.NOT_FOUND
        assert err.value.details == "device default/missing: 100% gone, naïve ☃"
        with pytest.raises(RpcError) as err:
            await channel.unary(
                "/v1beta1.DeviceMapperService/Nope", api_pb2.GetDeviceRequest(), api_pb2.GetDeviceResponse
            )
        assert err.value.code == StatusCode.UNIMPLEMENTED
        with pytest.raises(RpcError) as err:
            await channel.unary(
                GET, api_pb2.GetDeviceRequest(deviceName="slow"), api_pb2.GetDeviceResponse, timeout=0.3
            )
        assert err.value.code == StatusCode.DEADLINE_EXCEEDED
        big = await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName="n" * BIG), api_pb2.GetDeviceResponse, timeout=20
        )
        assert big.device.namespace == str(BIG)
        big = await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName=f"big:{BIG}"), api_pb2.GetDeviceResponse, timeout=20
        )
        assert len(big.device.name) == BIG
        replies = await asyncio.gather(
            *(
                channel.unary(
                    GET, api_pb2.GetDeviceRequest(deviceName=f"d{i}"), api_pb2.GetDeviceResponse, timeout=10
                )
                for i in range(300)
            )
        )
        assert [r.device.name for r in replies] == [f"d{i}" for i in range(300)]
    finally:
        await channel.close()
        await server.stop(None)


async def test_our_client_reads_gzip_responses(tmp_path: Path) -> None:
    path = str(tmp_path / "gzip.sock")
    server = await grpcio_server(path, compression=grpc.Compression.Gzip)
    channel = Channel(path)
    try:
        reply = await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName="g" * 50_000), api_pb2.GetDeviceResponse, timeout=5
        )
        assert reply.device.name == "g" * 50_000
    finally:
        await channel.close()
        await server.stop(None)


async def test_our_client_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    path = str(tmp_path / "restart.sock")
    channel = Channel(path)
    with pytest.raises(RpcError) as err:
        await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName="d"), api_pb2.GetDeviceResponse, timeout=2
        )
    assert err.value.code == StatusCode.UNAVAILABLE
    server = await grpcio_server(path)
    try:
        reply = await channel.unary(GET, api_pb2.GetDeviceRequest(deviceName="a"), api_pb2.GetDeviceResponse)
        assert reply.device.name == "a"
        await server.stop(None)
        with pytest.raises(RpcError) as err:
            await channel.unary(GET, api_pb2.GetDeviceRequest(deviceName="b"), api_pb2.GetDeviceResponse)
        assert err.value.code == StatusCode.UNAVAILABLE
        server = await grpcio_server(path)
        reply = await channel.unary(GET, api_pb2.GetDeviceRequest(deviceName="c"), api_pb2.GetDeviceResponse)
        assert reply.device.name == "c"
    finally:
        await channel.close()
        await server.stop(None)


# ---- ours to ours, and bad input ----------------------------------------------------------------


async def test_cancelling_a_call_cancels_the_handler(ours: tuple[str, Mapper]) -> None:
    path, impl = ours
    channel = Channel(path)
    try:
        call = asyncio.ensure_future(
            channel.unary(GET, api_pb2.GetDeviceRequest(deviceName="slow"), api_pb2.GetDeviceResponse)
        )
        await asyncio.sleep(0.2)
        call.cancel()
        await asyncio.wait_for(impl.cancelled.wait(), 5)
        # The connection is still good for the next call.
        reply = await channel.unary(GET, api_pb2.GetDeviceRequest(deviceName="ok"), api_pb2.GetDeviceResponse)
        assert reply.device.name == "ok"
    finally:
        await channel.close()


def request_headers(content_type: str) -> bytes:
    """The header block of a GetDevice request, for tests that speak raw HTTP/2."""
    return encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", GET),
            (":authority", "x"),
            ("content-type", content_type),
        ]
    )


def frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, stream, payload) of the complete HTTP/2 frames in ``data``."""
    out = []
    pos = 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos : pos + 3], "big")
        if len(data) - pos - 9 < length:
            break
        out.append(
            (data[pos + 3], int.from_bytes(data[pos + 5 : pos + 9], "big"), data[pos + 9 : pos + 9 + length])
        )
        pos += 9 + length
    return out


@pytest.mark.parametrize(
    ("garbage", "error"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1),
        (PREFACE + b"\x00\x00\x04\x01\x05\x00\x00\x00\x01\xff\xff\xff\xff", 9),
        (PREFACE + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01", 6),
    ],
    ids=["http1", "bad-hpack", "oversized-frame"],
)
async def test_garbage_closes_only_that_connection(
    ours: tuple[str, Mapper], garbage: bytes, error: int
) -> None:
    path, _ = ours
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(garbage)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)  # returns at EOF: the server closed the connection
    writer.close()
    goaway = [payload for kind, _, payload in frames(data) if kind == 7]
    assert goaway, "no GOAWAY before the close"
    assert int.from_bytes(goaway[0][4:8], "big") == error
    channel = Channel(path)
    try:
        reply = await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName="still"), api_pb2.GetDeviceResponse
        )
        assert reply.device.name == "still"
    finally:
        await channel.close()


async def test_non_grpc_content_type_gets_http_415(ours: tuple[str, Mapper]) -> None:
    path, _ = ours
    block = request_headers("text/json")
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, block))
    data = b""
    try:
        async with asyncio.timeout(5):
            while True:
                data += await reader.read(65536)
                headers = [payload for kind, stream, payload in frames(data) if kind == 1 and stream == 1]
                if headers:
                    assert (":status", "415") in Decoder().decode(headers[0])
                    return
    finally:
        writer.close()


async def test_server_respects_the_clients_flow_control_window(ours: tuple[str, Mapper]) -> None:
    """A client that grants 1,000 bytes gets exactly 1,000 bytes of DATA until it grants more."""
    path, _ = ours
    block = request_headers("application/grpc")
    body = api_pb2.GetDeviceRequest(deviceName="big:5000").SerializeToString()
    settings = (4).to_bytes(2, "big") + (1000).to_bytes(4, "big")  # SETTINGS_INITIAL_WINDOW_SIZE
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(
        PREFACE
        + frame(4, 0, 0, settings)
        + frame(1, 0x4, 1, block)
        + frame(0, 0x1, 1, b"\x00" + len(body).to_bytes(4, "big") + body)
    )

    async def read_for(seconds: float) -> bytes:
        got = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while chunk := await reader.read(65536):
                    got += chunk
        return got

    try:
        data = await read_for(0.5)
        granted = sum(len(p) for kind, stream, p in frames(data) if kind == 0 and stream == 1)
        assert granted == 1000
        writer.write(frame(8, 0, 1, (100_000).to_bytes(4, "big")))
        data += await read_for(0.5)
        received = b"".join(p for kind, stream, p in frames(data) if kind == 0 and stream == 1)
        reply = api_pb2.GetDeviceResponse.FromString(received[5:])
        assert len(reply.device.name) == 5000
        trailers = [p for kind, stream, p in frames(data) if kind == 1 and stream == 1]
        assert len(trailers) == 2  # response headers, then trailers after all the DATA
    finally:
        writer.close()
