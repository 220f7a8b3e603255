"""A raw HTTP/2 peer for tests that must send what no well-behaved client would."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import TypeVar

from dmi.rpc._hpack import Decoder, Header, encode
from dmi.rpc._http2 import PREFACE, frame
from dmi.v1beta1 import api_pb2

T = TypeVar("T")
GET = "/v1beta1.DeviceMapperService/GetDevice"
HEADERS, DATA, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 1, 0, 3, 4, 6, 7, 9


def request_headers(extra: list[Header] | None = None) -> list[Header]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", GET),
        (":authority", "x"),
        ("content-type", "application/grpc"),
        *(extra or []),
    ]


def get_device(name: str) -> bytes:
    body = api_pb2.GetDeviceRequest(deviceName=name).SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


class RawPeer(asyncio.Protocol):
    """Frames in and out over a Unix socket; PINGs from the server are answered unless ``ack_pings``
    is False. ``frames`` keeps ``(type, flags, stream, payload)`` of all that arrived. A protocol of
    its own rather than asyncio streams: what arrived before a reset must still be readable."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.frames: list[tuple[int, int, int, bytes]] = []
        self.decoder = Decoder()
        self.ack_pings = True
        self.eof = False
        self._buf = b""
        self._arrived = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    @classmethod
    async def connect(cls, path: str, *, preface: bool = True) -> RawPeer:
        _, peer = await asyncio.get_running_loop().create_unix_connection(cls, path)
        if preface:
            peer.send(PREFACE + frame(SETTINGS, 0, 0))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._arrived.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.eof:
            self.transport.write(data)

    async def drain(self) -> None:
        await self._writable.wait()

    def request(self, stream_id: int, name: str, extra: list[Header] | None = None) -> None:
        self.send(
            frame(HEADERS, 0x4, stream_id, encode(request_headers(extra)))
            + frame(DATA, 0x1, stream_id, get_device(name))
        )

    def data_received(self, chunk: bytes) -> None:
        self._buf += chunk
        while len(self._buf) >= 9:
            length = int.from_bytes(self._buf[:3], "big")
            if len(self._buf) < 9 + length:
                break
            kind, flags = self._buf[3], self._buf[4]
            stream = int.from_bytes(self._buf[5:9], "big") & 0x7FFFFFFF
            payload = self._buf[9 : 9 + length]
            self._buf = self._buf[9 + length :]
            self.frames.append((kind, flags, stream, payload))
            if kind == PING and not flags & 1 and self.ack_pings:
                self.send(frame(PING, 1, 0, payload))
        self._arrived.set()

    async def until(self, check: Callable[[], T], within: float = 20.0) -> T:
        """Wait until ``check()`` is truthy, and return it; fails if the server closes first."""
        async with asyncio.timeout(within):
            while not (result := check()):
                if self.eof:
                    raise AssertionError(f"the server closed the connection first (GOAWAY {self.goaway()})")
                self._arrived.clear()
                await self._arrived.wait()
            return result

    def goaway(self) -> tuple[int, str] | None:
        """(error code, debug text) of the server's GOAWAY, if any came."""
        return goaway_of(self.frames)

    def reset_code(self, stream_id: int) -> int | None:
        for kind, _, s, payload in self.frames:
            if kind == RST_STREAM and s == stream_id:
                return int.from_bytes(payload, "big")
        return None

    def grpc_status(self, stream_id: int) -> tuple[int, str] | None:
        """(grpc-status, grpc-message) once the stream's trailers came (our server never indexes)."""
        fields: dict[str, str] = {}
        for kind, _, s, payload in self.frames:
            if kind == HEADERS and s == stream_id:
                fields.update(self.decoder.decode(payload))
        if "grpc-status" not in fields:
            return None
        return int(fields["grpc-status"]), fields.get("grpc-message", "")

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def blast(path: str, data: list[bytes], within: float = 30.0) -> list[tuple[int, int, int, bytes]]:
    """Send ``data`` (preface first) on a blocking socket, stopping when the server closes, then read all
    it sent until EOF: what arrived is readable even after our writes hit a closed socket (which
    asyncio's transports would treat as the end of everything)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(within)
        s.connect(path)
        with contextlib.suppress(OSError):
            for piece in [PREFACE + frame(SETTINGS, 0, 0), *data]:
                s.sendall(piece)
        received = bytearray()
        with contextlib.suppress(OSError):
            while chunk := s.recv(1 << 16):
                received += chunk
    peer = RawPeer()
    peer.ack_pings = False
    peer.data_received(bytes(received))
    return peer.frames


def goaway_of(frames: list[tuple[int, int, int, bytes]]) -> tuple[int, str] | None:
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big"), payload[8:].decode(errors="replace")
    return None
