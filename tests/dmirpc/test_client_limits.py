"""The client side of dmi.rpc against a hostile server: edgecore calls every mapper through a
``Channel``, and a mapper may be broken or hostile. Each answer is a gRPC status on that call, the
memory it may cost is bounded, and the connection serves the next call."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dmi.rpc import Channel, RpcError, StatusCode
from dmi.rpc._hpack import Decoder, encode
from dmi.rpc._http2 import DEFAULT_LIMITS, frame
from dmi.v1beta1 import api_pb2
from tests.dmirpc.test_limits import gzip_bomb

BOMB = functools.cache(gzip_bomb)

OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


def reply(stream_id: int, behaviour: str, bomb: bytes) -> bytes:
    body = api_pb2.GetDeviceResponse(device=api_pb2.Device(name="fine")).SerializeToString()
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    trailers = frame(1, 0x5, stream_id, encode([("grpc-status", "0")]))
    if behaviour == "bomb":
        gz = b"\x01" + len(bomb).to_bytes(4, "big") + bomb
        return (
            frame(1, 0x4, stream_id, encode([*OK_HEADERS, ("grpc-encoding", "gzip")]))
            + frame(0, 0, stream_id, gz)
            + trailers
        )
    if behaviour == "bad-gzip":
        junk = b"\x1f\x8b\x09\x00" + bytes(20)  # compression method 9: no such thing
        return (
            frame(1, 0x4, stream_id, encode([*OK_HEADERS, ("grpc-encoding", "gzip")]))
            + frame(0, 0, stream_id, b"\x01" + len(junk).to_bytes(4, "big") + junk)
            + trailers
        )
    if behaviour == "huge-headers":
        return (
            frame(1, 0x4, stream_id, encode([*OK_HEADERS, ("x-junk", "j" * 20_000)]))
            + frame(0, 0, stream_id, message)
            + trailers
        )
    if behaviour == "two-messages":
        return frame(1, 0x4, stream_id, encode(OK_HEADERS)) + frame(0, 0, stream_id, message * 2) + trailers
    if behaviour == "no-status":
        return frame(1, 0x4, stream_id, encode(OK_HEADERS)) + frame(0, 0x1, stream_id, message)
    return frame(1, 0x4, stream_id, encode(OK_HEADERS)) + frame(0, 0, stream_id, message) + trailers


class HostileMapper(asyncio.Protocol):
    """Answers each call as its device name says (see ``reply``)."""

    bomb = b""
    done_once: set[str] = set()
    pings: list[float] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buf = b""
        self.decoder = Decoder()
        self.paths: dict[int, str] = {}
        transport.write(frame(4, 0, 0))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.buf.startswith(b"PRI * HTTP/2.0"):
            self.buf = self.buf[24:]
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            kind, flags, stream = self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big")
            payload, self.buf = self.buf[9 : 9 + length], self.buf[9 + length :]
            if kind == 6 and not flags & 1:
                self.pings.append(time.monotonic())  # and never answered
            elif kind == 1:
                self.decoder.decode(payload)
            elif kind == 0 and stream:
                name = api_pb2.GetDeviceRequest.FromString(payload[5:]).deviceName
                if name.endswith("-once") and name not in self.done_once:
                    self.done_once.add(name)
                    if name == "refuse-once":
                        self.transport.write(frame(3, 0, stream, (7).to_bytes(4, "big")))  # REFUSED_STREAM
                    else:  # a server going away just as the call arrived: it never ran it
                        last = (stream - 2).to_bytes(4, "big")
                        self.transport.write(frame(7, 0, 0, last + bytes(4) + b"idle"))
                        self.transport.close()
                        return
                    continue
                if name != "hang":
                    self.transport.write(reply(stream, name, self.bomb))
            elif kind == 4 and not flags & 1:
                self.transport.write(frame(4, 1, 0))


@pytest.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[str]:
    HostileMapper.bomb = BOMB(256)
    path = str(tmp_path / "hostile.sock")
    server = await asyncio.get_running_loop().create_unix_server(HostileMapper, path)
    try:
        yield path
    finally:
        server.close()


async def call(channel: Channel, name: str) -> api_pb2.GetDeviceResponse:
    return await channel.unary(
        "/v1beta1.DeviceMapperService/GetDevice",
        api_pb2.GetDeviceRequest(deviceName=name),
        api_pb2.GetDeviceResponse,
        timeout=10,
    )


@pytest.mark.parametrize(
    ("behaviour", "code", "details"),
    [
        (
            "bomb",
            StatusCode.RESOURCE_EXHAUSTED,
            "gzip message decompresses to more than the limit of 4194304 bytes",
        ),
        ("bad-gzip", StatusCode.INTERNAL, "invalid gzip message"),
        ("huge-headers", StatusCode.RESOURCE_EXHAUSTED, "response header list of"),
        ("two-messages", StatusCode.INTERNAL, "more than one response message to a unary call"),
        ("no-status", StatusCode.INTERNAL, "response without grpc-status"),
    ],
)
async def test_hostile_answers_fail_only_their_call(
    hostile: str, behaviour: str, code: StatusCode, details: str
) -> None:
    channel = Channel(hostile)
    try:
        assert (await call(channel, "ok")).device.name == "fine"
        tracemalloc.start()
        try:
            with pytest.raises(RpcError) as err:
                await call(channel, behaviour)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert err.value.code == code
        assert err.value.details.startswith(details), err.value.details
        assert peak < 16 << 20, f"{peak} bytes at the peak for one hostile answer"
        assert (await call(channel, "ok")).device.name == "fine"  # the same connection goes on
    finally:
        await channel.close()


async def test_calls_the_server_did_not_process_are_sent_again(hostile: str) -> None:
    """REFUSED_STREAM, or a GOAWAY whose last stream is below the call's (a server closing an idle
    connection as the call went out): the server never ran it, so the call goes again, once."""
    HostileMapper.done_once.clear()
    channel = Channel(hostile)
    try:
        assert (await call(channel, "ok")).device.name == "fine"
        assert (await call(channel, "refuse-once")).device.name == "fine"
        assert (await call(channel, "goaway-once")).device.name == "fine"
    finally:
        await channel.close()


async def test_client_pings_only_while_waiting_and_drops_a_hung_server(hostile: str) -> None:
    """Idle, the client never pings (grpc-go servers close connections that ping without calls, as
    "too_many_pings"); waiting on a server that stopped answering, it pings and gives up on it."""
    HostileMapper.pings.clear()
    quick = dataclasses.replace(DEFAULT_LIMITS, keepalive_interval=0.3, keepalive_timeout=0.6, tick=0.1)
    channel = Channel(hostile, limits=quick)
    try:
        assert (await call(channel, "ok")).device.name == "fine"
        await asyncio.sleep(1.5)
        assert HostileMapper.pings == []
        t0 = time.monotonic()
        with pytest.raises(RpcError) as err:
            await call(channel, "hang")
        assert err.value.code == StatusCode.UNAVAILABLE
        assert time.monotonic() - t0 < 5
        assert len(HostileMapper.pings) == 1
    finally:
        await channel.close()


def test_bomb_is_a_bomb() -> None:
    """The bomb really is 256 MiB once inflated (so the bound above means something)."""
    inflater = zlib.decompressobj(wbits=31)
    total = 0
    data = BOMB(256)
    while data:
        total += len(inflater.decompress(data, 1 << 24))
        data = inflater.unconsumed_tail
    assert total == 256 << 20
