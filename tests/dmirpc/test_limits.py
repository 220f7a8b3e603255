"""dmi.rpc's limits, each against the attack that once broke it (issue 14), on a server in its own
process: the answer is the right GOAWAY, RST_STREAM or gRPC status, the server's memory stays under a
stated ceiling, and other clients keep being served meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import sys
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import hpack
import pytest

from bench._measure import peak_rss_mb
from dmi.rpc import Channel, Server
from dmi.rpc._hpack import Decoder, HeaderListTooLarge, _encode_cached, encode
from dmi.rpc._http2 import PREFACE, RECEIVE_WINDOW, frame
from dmi.v1beta1 import api_pb2, api_pb2_grpc
from tests._stack import Processes, wait_for
from tests.dmirpc._raw import (
    CONTINUATION,
    DATA,
    GET,
    HEADERS,
    PING,
    SETTINGS,
    RawPeer,
    blast,
    get_device,
    goaway_of,
    request_headers,
)

HERE = Path(__file__).parent
MAPPER = api_pb2.DESCRIPTOR.services_by_name["DeviceMapperService"]
RESOURCE_EXHAUSTED, INTERNAL = 8, 13
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM = 0, 1, 3, 7, 0xB


@dataclass
class ServerProcess:
    path: str
    pid: int

    def memory_mb(self) -> float:
        """Peak resident memory of the server process so far."""
        return peak_rss_mb(self.pid)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("dmi-limits")
    procs = Processes(tmp)
    path = str(tmp / "dmi.sock")
    proc = procs.start("server", sys.executable, str(HERE / "limits_server.py"), path)
    try:
        wait_for(lambda: "ready" in procs.log("server"), 30, "the dmi.rpc server to listen")
        yield ServerProcess(path, proc.pid)
    finally:
        procs.stop_all()


async def served(path: str, name: str = "other") -> None:
    """Another client gets its answer, promptly."""
    channel = Channel(path)
    try:
        reply = await channel.unary(
            GET, api_pb2.GetDeviceRequest(deviceName=name), api_pb2.GetDeviceResponse, timeout=10
        )
        assert reply.device.name == name
    finally:
        await channel.close()


@contextlib.asynccontextmanager
async def raw(path: str, *, preface: bool = True) -> AsyncIterator[RawPeer]:
    peer = await RawPeer.connect(path, preface=preface)
    try:
        yield peer
    finally:
        await peer.close()


# ---- decompression --------------------------------------------------------------------------------


def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MiB of zeros, gzip-compressed (about 1,000:1)."""
    z = zlib.compressobj(9, wbits=31)
    zeros = bytes(1 << 20)
    return b"".join(z.compress(zeros) for _ in range(megabytes)) + z.flush()


async def test_gzip_bomb_is_resource_exhausted_and_invalid_gzip_is_internal(server: ServerProcess) -> None:
    bomb = gzip_bomb(256)
    assert len(bomb) < 300_000
    before = server.memory_mb()
    gzip_headers = [("grpc-encoding", "gzip")]
    async with raw(server.path) as peer:
        for stream_id, payload in ((1, bomb), (3, b"\x1f\x8b\x08\x00not gzip at all"), (5, bomb[:1000])):
            message = b"\x01" + len(payload).to_bytes(4, "big") + payload
            block = encode([*request_headers(), *gzip_headers])
            peer.send(frame(HEADERS, 0x4, stream_id, block) + frame(DATA, 0x1, stream_id, message))
        peer.request(7, "after")
        await peer.until(lambda: all(peer.grpc_status(s) for s in (1, 3, 5, 7)))
        code, message_ = peer.grpc_status(1) or (0, "")
        assert code == RESOURCE_EXHAUSTED, message_
        assert "decompresses to more than the limit of 4194304 bytes" in message_
        code, message_ = peer.grpc_status(3) or (0, "")
        assert (code, message_.split(":")[0]) == (INTERNAL, "invalid gzip message")
        assert peer.grpc_status(5) == (INTERNAL, "truncated gzip message")
        assert peer.grpc_status(7) == (0, "")  # the same connection goes on
        assert peer.goaway() is None
    await served(server.path)
    grown = server.memory_mb() - before
    assert grown < 30, f"peak RSS grew {grown:.1f} MB for a 256 MiB bomb"


# ---- header blocks ------------------------------------------------------------------------------


async def test_continuation_flood_is_cut_at_the_header_block_limit(server: ServerProcess) -> None:
    before = server.memory_mb()
    headers = frame(HEADERS, 0, 1, encode(request_headers()))
    megabyte = frame(CONTINUATION, 0, 1, bytes(1 << 20))
    frames = await asyncio.to_thread(blast, server.path, [headers, *[megabyte] * 200])
    assert goaway_of(frames) == (ENHANCE_YOUR_CALM, "header block larger than 65536 bytes")
    # Many small CONTINUATION frames: cut by their count.
    frames = await asyncio.to_thread(
        blast, server.path, [frame(HEADERS, 0, 1, b""), frame(CONTINUATION, 0, 1, b"") * 17]
    )
    assert goaway_of(frames) == (ENHANCE_YOUR_CALM, "header block in more than 16 CONTINUATION frames")
    await served(server.path)
    grown = server.memory_mb() - before
    assert grown < 10, f"peak RSS grew {grown:.1f} MB"


async def test_header_list_over_the_limit_is_refused_on_its_stream(server: ServerProcess) -> None:
    async with raw(server.path) as peer:
        peer.request(1, "big", [("x-big", "v" * 20_000)])
        # HPACK amplification: one 4,000-byte entry in the dynamic table, referenced 100 times.
        block = encode(request_headers()) + hpack.Encoder().encode([("x-amp", "a" * 4000)]) + b"\xbe" * 100
        peer.send(frame(HEADERS, 0x4, 3, block) + frame(DATA, 0x1, 3, get_device("amp")))
        peer.request(5, "after")
        await peer.until(lambda: all(peer.grpc_status(s) for s in (1, 3, 5)))
        for stream_id in (1, 3):
            code, message = peer.grpc_status(stream_id) or (0, "")
            assert code == RESOURCE_EXHAUSTED
            assert message.startswith("header list of ") and message.endswith(
                "larger than the limit of 16384"
            )
        assert peer.grpc_status(5) == (0, "")
        assert peer.goaway() is None


def test_huffman_values_are_not_cached() -> None:
    """Distinct Huffman-coded values leave nothing behind once decoded (a cache keyed on them once kept
    143 MB alive after the peer left)."""
    blocks = [hpack.Encoder().encode([("x-v", f"{i:05d}" + "q" * 4000)], huffman=True) for i in range(30)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for block in blocks:
            with contextlib.suppress(HeaderListTooLarge):
                Decoder(max_list_size=1 << 20).decode(block)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 50_000, f"{kept} bytes kept after decoding"
    # Nor is what we send keyed on what a peer sent: error details may quote it.
    size = _encode_cached.cache_info().currsize
    for i in range(300):
        encode([("grpc-status", "12"), ("grpc-message", f"unknown method /x/{i}")])
    assert _encode_cached.cache_info().currsize <= size + 1


# ---- streams and flow control ---------------------------------------------------------------------


async def test_half_open_streams_are_refused_beyond_the_limit(server: ServerProcess) -> None:
    before = server.memory_mb()
    block = encode(request_headers())
    n = 50_000
    async with raw(server.path) as peer:
        peer.send(b"".join(frame(HEADERS, 0x4, 2 * i + 1, block) for i in range(n)))
        await served(server.path, "during")

        def all_refused() -> bool:
            code = REFUSED_STREAM.to_bytes(4, "big")
            return sum(1 for k, _, _, p in peer.frames if k == 3 and p == code) == n - 128

        await peer.until(all_refused, within=60)
        settings = next(p for k, f, _, p in peer.frames if k == SETTINGS and not f & 1)
        assert (3).to_bytes(2, "big") + (128).to_bytes(4, "big") in [
            settings[i : i + 6] for i in range(0, len(settings), 6)
        ]
        # Finishing an open stream answers it, and frees room for a new one.
        peer.send(frame(DATA, 0x1, 1, get_device("first")))
        peer.request(2 * n + 1, "next")
        await peer.until(lambda: peer.grpc_status(1) and peer.grpc_status(2 * n + 1))
        assert peer.grpc_status(2 * n + 1) == (0, "")
    grown = server.memory_mb() - before
    assert grown < 20, f"peak RSS grew {grown:.1f} MB"


async def test_data_beyond_our_window_is_a_flow_control_error(server: ServerProcess) -> None:
    """Incomplete messages are held out of the connection window: five streams of 3.9 MB partial
    messages exceed it, and a peer that sends on regardless gets FLOW_CONTROL_ERROR."""
    before = server.memory_mb()
    part = bytes(1 << 20)
    data = []
    for stream_id in (1, 3, 5, 7, 9):
        data.append(frame(HEADERS, 0x4, stream_id, encode(request_headers())))
        data.append(frame(DATA, 0, stream_id, b"\x00" + (4_000_000).to_bytes(4, "big") + part[5:]))
        data += [frame(DATA, 0, stream_id, part)] * 2
        data.append(frame(DATA, 0, stream_id, part[:800_000]))
    frames = await asyncio.to_thread(blast, server.path, data)
    code, reason = goaway_of(frames) or (-1, "")
    assert code == FLOW_CONTROL_ERROR, reason
    granted = sum(int.from_bytes(p, "big") for k, _, s, p in frames if k == 8 and s == 0)
    assert granted == RECEIVE_WINDOW - 65_535  # the opening grant only: nothing was consumed
    await served(server.path)
    grown = server.memory_mb() - before
    assert grown < 50, f"peak RSS grew {grown:.1f} MB"


# ---- writes and time ------------------------------------------------------------------------------


def flood_pings(path: str, limit_bytes: int) -> tuple[int, float | None]:
    """Send PINGs and never read: (bytes sent, seconds until the server dropped us, or None)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(PREFACE + frame(SETTINGS, 0, 0))
    pings = frame(PING, 0, 0, b"01234567") * 4096
    s.settimeout(0.5)
    sent = 0
    try:
        while sent < limit_bytes:
            try:
                sent += s.send(pings)
            except TimeoutError:
                break  # the server stopped reading us
        blocked = time.monotonic()
        while time.monotonic() - blocked < 20:
            try:
                s.send(pings[:17])
            except TimeoutError:
                continue
            except OSError:
                return sent, time.monotonic() - blocked
        return sent, None
    except OSError:
        return sent, None
    finally:
        s.close()


async def test_ping_flood_that_never_reads_is_stopped_and_dropped(server: ServerProcess) -> None:
    before = server.memory_mb()
    flood = asyncio.create_task(asyncio.to_thread(flood_pings, server.path, 3_000_000 * 17))
    await asyncio.sleep(1.0)
    await served(server.path, "during-the-flood")
    sent, dropped_after = await flood
    assert sent < 20 << 20, f"the server read {sent} bytes of PINGs it could not answer"
    assert dropped_after is not None, "the server kept a peer that reads nothing"
    grown = server.memory_mb() - before
    assert grown < 15, f"peak RSS grew {grown:.1f} MB"


async def test_idle_silent_and_speechless_connections_are_closed(server: ServerProcess) -> None:
    """The server's timers (2 s handshake and keepalive, 3 s idle), all at once to save time."""

    async def idle() -> None:
        async with raw(server.path) as peer:
            peer.request(1, "once")
            await peer.until(lambda: peer.grpc_status(1))
            t0 = time.monotonic()
            await peer.until(peer.goaway)
            assert peer.goaway() == (NO_ERROR, "idle")
            # Its last stream id says stream 1 was processed: later ones, if any raced, may be retried.
            assert [int.from_bytes(p[:4], "big") for k, _, _, p in peer.frames if k == 7] == [1]
            assert 2.5 < time.monotonic() - t0 < 15

    async def channel_comes_back() -> None:
        channel = Channel(server.path)
        try:
            for name in ("a", "b"):
                request = api_pb2.GetDeviceRequest(deviceName=name)
                reply = await channel.unary(GET, request, api_pb2.GetDeviceResponse, timeout=10)
                assert reply.device.name == name
                if name == "a":
                    await asyncio.sleep(4)  # past the idle timeout: the next call reconnects
                    assert channel._conn is not None and channel._conn.closed
        finally:
            await channel.close()

    async def mute() -> None:
        async with raw(server.path) as peer:
            peer.ack_pings = False
            peer.send(frame(HEADERS, 0x4, 1, encode(request_headers())))  # a stream stays open: not idle
            await peer.until(peer.goaway)
            assert peer.goaway() == (PROTOCOL_ERROR, "no PING ACK within 2 s")

    async def speechless() -> None:
        async with raw(server.path, preface=False) as peer:
            await peer.until(lambda: peer.eof)
            assert peer.goaway() == (PROTOCOL_ERROR, "no preface and SETTINGS within 2 s")

    await asyncio.gather(idle(), channel_comes_back(), mute(), speechless())


# ---- the client ---------------------------------------------------------------------------------


class Echo(api_pb2_grpc.DeviceMapperServiceServicer):
    async def GetDevice(
        self, request: api_pb2.GetDeviceRequest, context: object
    ) -> api_pb2.GetDeviceResponse:
        return api_pb2.GetDeviceResponse(device=api_pb2.Device(name=request.deviceName))


async def test_client_keeps_nothing_per_finished_call(tmp_path: Path) -> None:
    """192,000 calls once grew a mapper by 15 MB: per-stream window entries were never removed."""
    ours = Server()

    class Plain:
        def GetDevice(self, request: api_pb2.GetDeviceRequest) -> api_pb2.GetDeviceResponse:
            return api_pb2.GetDeviceResponse(device=api_pb2.Device(name=request.deviceName))

    ours.add_service(MAPPER, Plain())
    await ours.start(str(tmp_path / "ours.sock"))
    theirs = grpc.aio.server()
    api_pb2_grpc.add_DeviceMapperServiceServicer_to_server(Echo(), theirs)
    theirs.add_insecure_port(f"unix:{tmp_path / 'grpcio.sock'}")
    await theirs.start()
    try:
        for path in (tmp_path / "ours.sock", tmp_path / "grpcio.sock"):
            channel = Channel(str(path))
            try:
                for _ in range(20):
                    await asyncio.gather(
                        *(
                            channel.unary(
                                GET, api_pb2.GetDeviceRequest(deviceName=f"d{i}"), api_pb2.GetDeviceResponse
                            )
                            for i in range(100)
                        )
                    )
                conn = channel._conn
                assert conn is not None
                assert conn._stream_recv_unacked == {}
                assert conn.calls == {}
                assert conn._outbound == {}
                assert conn._recv_outstanding < RECEIVE_WINDOW // 2
            finally:
                await channel.close()
        assert not any(c.streams for c in ours._connections)
    finally:
        await ours.stop(0.1)
        await theirs.stop(None)


async def test_rapid_reset_counts_handlers_still_stopping(server: ServerProcess) -> None:
    """Open a stream and reset it at once, 20,000 times (CVE-2023-44487): handlers told to stop but not
    finished still count against the 128-stream limit, so the rest are refused, not started."""
    before = server.memory_mb()
    body = api_pb2.UpdateDeviceRequest(device=api_pb2.Device(name="x")).SerializeToString()
    block = encode(
        [
            *request_headers()[:2],
            (":path", "/v1beta1.DeviceMapperService/UpdateDevice"),
            *request_headers()[3:],
        ]
    )
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    n = 20_000
    async with raw(server.path) as peer:
        peer.send(
            b"".join(
                frame(HEADERS, 0x4, s, block)
                + frame(DATA, 0x1, s, message)
                + frame(3, 0, s, (8).to_bytes(4, "big"))
                for s in range(1, 2 * n, 2)
            )
        )

        def refused() -> int:
            code = REFUSED_STREAM.to_bytes(4, "big")
            return sum(1 for k, _, _, p in peer.frames if k == 3 and p == code)

        # Slots free as stopped handlers finish (1 s each), so a few hundred more than 128 may start.
        await peer.until(lambda: refused() >= 0.9 * n, within=60)
        await served(server.path, "during-the-resets")
    grown = server.memory_mb() - before
    assert grown < 8, f"peak RSS grew {grown:.1f} MB"


async def test_connections_beyond_the_limit_are_refused(server: ServerProcess) -> None:
    peers = [await RawPeer.connect(server.path) for _ in range(140)]
    try:
        for peer in peers:
            await peer.until(lambda p=peer: p.frames)  # type: ignore[misc]
        await asyncio.sleep(0.3)
        refused = [p.goaway() for p in peers if p.goaway() is not None]
        assert refused and set(refused) == {(ENHANCE_YOUR_CALM, "too many connections")}
        assert 140 - len(refused) <= 128
    finally:
        for peer in peers:
            await peer.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed connections, then serves again
        try:
            await served(server.path, "after")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
