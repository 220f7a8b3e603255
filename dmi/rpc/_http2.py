"""HTTP/2 (RFC 9113) framing, settings, pings and flow control shared by the gRPC server and client.

A connection is an ``asyncio.Protocol``: every complete frame in a read is handled at once, and
frames written while handling it are coalesced into one ``transport.write`` per loop iteration.
What streams mean (requests, responses) is left to the subclasses in ``_server`` and ``_client``.

We receive generously — a 16 MiB window per stream and per connection, replenished at half — so a
peer is never stalled by us, and honour the peer's windows and maximum frame size when sending.

Every input dimension has a limit (``Limits``), because a mapper or anything else that reaches the
socket may be broken or hostile, and one bad connection must not cost the others their memory:

- the peer is held to our receive windows (FLOW_CONTROL_ERROR), and the connection window is given
  back only for bytes the stream layer no longer holds, so what incomplete messages keep in memory is
  bounded by one connection window whatever the number of streams;
- header blocks: compressed bytes and CONTINUATION frames per block (ENHANCE_YOUR_CALM), the decoded
  list (a stream error, answered by the subclass);
- concurrent streams (advertised, then refused with RST_STREAM REFUSED_STREAM, in ``_server``);
- writes: when the peer stops reading and ``write_buffer`` bytes wait, we stop reading it too, so PING
  floods, SETTINGS floods and pipelined requests cannot queue answers without bound; a peer that reads
  nothing for ``keepalive_timeout`` is dropped;
- time: a peer silent for ``keepalive_interval`` is PINGed (by a client only while calls are in
  flight) and dropped without an ACK within ``keepalive_timeout``; a connection without the preface
  and SETTINGS after ``handshake_timeout`` is dropped; a server closes connections idle (no stream)
  for ``idle_timeout`` with GOAWAY(NO_ERROR).

The timers are one ``call_later`` per connection every ``tick`` seconds, comparing timestamps taken once
per read: nothing is added per call.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

from dmi.rpc._hpack import Decoder, Header, HeaderListTooLarge, HpackError, encode

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Frame(IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class ErrorCode(IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    ENHANCE_YOUR_CALM = 0xB


END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

DEFAULT_WINDOW = 65_535
RECEIVE_WINDOW = 1 << 24
MAX_RECEIVE_FRAME = 1 << 20
MAX_WINDOW = (1 << 31) - 1
_KEEPALIVE_PING = b"kshore\x00\x01"  # our PING's opaque data, to tell its ACK from the peer's


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may make us hold or do; the defaults suit a DMI socket (small messages, tens
    of calls in flight). grpc-go and grpc C core agree with the header sizes (16 KiB)."""

    max_concurrent_streams: int = 128
    max_header_list_size: int = 16 * 1024  # decoded, name + value + 32 per field
    max_header_block: int = 64 * 1024  # compressed, HEADERS + CONTINUATION payloads of one block
    max_continuations: int = 16  # CONTINUATION frames in one header block
    max_queued_messages: int = 16  # a client-streaming call's requests not yet taken by its handler
    max_connections: int = 128  # a server's connections at once (each may hold a receive window)
    write_buffer: int = 1 << 20  # bytes waiting for the peer above which we stop reading it
    handshake_timeout: float = 10.0
    keepalive_interval: float = 60.0
    keepalive_timeout: float = 20.0
    idle_timeout: float | None = None  # the server's default is 5 minutes (``Server``)
    tick: float = 1.0  # how often timers are checked


DEFAULT_LIMITS = Limits()


class ConnectionError_(Exception):
    """A connection-level protocol error: the connection is closed with GOAWAY(code)."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF, kind, flags)) + stream_id.to_bytes(4, "big") + payload


@dataclass(slots=True)
class _Outbound:
    """What a stream still has to send: DATA waits for window, trailers wait for the DATA."""

    window: int
    data: deque[memoryview] = field(default_factory=deque)
    trailers: list[Header] | None = None
    end_with_data: bool = False


class Http2Connection(asyncio.Protocol):
    is_client = False

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._buf = bytearray()
        self._preface_pending = not self.is_client
        self._settings_received = False
        self._decoder = Decoder(max_list_size=limits.max_header_list_size)
        self._headers_stream = 0  # stream whose header block continues in CONTINUATION frames
        self._headers_flags = 0
        self._headers_block = bytearray()
        self._continuations = 0
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._send_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._peer_max_frame = 16_384
        self.peer_max_streams = 1 << 31
        self._outbound: dict[int, _Outbound] = {}
        # Connection receive window: bytes the peer sent that we have not given back yet (at most
        # RECEIVE_WINDOW), and bytes we may give back because the stream layer let go of them.
        self._recv_outstanding = 0
        self._recv_credit = 0
        self._stream_recv_unacked: dict[int, int] = {}  # open streams that received DATA
        self.closed = False
        now = self._loop.time()
        self._opened_at = now
        self._last_received = now
        self._ping_sent_at: float | None = None
        self._writes_paused_at: float | None = None
        self._idle_since: float | None = now
        self._timer: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=self.limits.write_buffer)
        settings = struct.pack(
            ">HIHIHIHI",
            SETTINGS_INITIAL_WINDOW_SIZE,
            RECEIVE_WINDOW,
            SETTINGS_MAX_FRAME_SIZE,
            MAX_RECEIVE_FRAME,
            SETTINGS_ENABLE_PUSH,
            0,
            SETTINGS_MAX_HEADER_LIST_SIZE,
            self.limits.max_header_list_size,
        )
        if not self.is_client:
            streams = self.limits.max_concurrent_streams
            settings += struct.pack(">HI", SETTINGS_MAX_CONCURRENT_STREAMS, streams)
        self._timer = self._loop.call_later(self.limits.tick, self._tick)
        opening = frame(Frame.SETTINGS, 0, 0, settings) + frame(
            Frame.WINDOW_UPDATE, 0, 0, (RECEIVE_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")
        )
        self._write((PREFACE + opening) if self.is_client else opening)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._outbound.clear()
        self._stream_recv_unacked.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause_writing(self) -> None:
        # The peer is not reading what we write: stop reading what it sends, or its requests and
        # PINGs would queue our answers without bound.
        self._writes_paused_at = self._loop.time()
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writes_paused_at = None
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        buf = self._buf
        buf += data
        if self._preface_pending:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(bytes(buf)):
                    self._abort(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return
            if buf[: len(PREFACE)] != PREFACE:
                self._abort(ErrorCode.PROTOCOL_ERROR, "not an HTTP/2 connection preface")
                return
            del buf[: len(PREFACE)]
            self._preface_pending = False
        pos = 0
        end = len(buf)
        try:
            while end - pos >= 9:
                length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2]
                if length > MAX_RECEIVE_FRAME:
                    raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes")
                if end - pos - 9 < length:
                    break
                kind = buf[pos + 3]
                flags = buf[pos + 4]
                stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                payload = bytes(buf[pos + 9 : pos + 9 + length])
                pos += 9 + length
                self._frame(kind, flags, stream_id, payload)
                if self.closed:
                    return
        except ConnectionError_ as err:
            self._abort(err.code, str(err))
            return
        except HpackError as err:
            self._abort(ErrorCode.COMPRESSION_ERROR, str(err))
            return
        del buf[:pos]

    # ---- timers -------------------------------------------------------------------------------

    def open_streams(self) -> int:
        """Streams still in progress (a subclass hook for the idle timeout and the stream limit)."""
        return len(self._outbound)

    def _tick(self) -> None:
        if self.closed:
            return
        limits = self.limits
        now = self._loop.time()
        if not self._settings_received and now - self._opened_at > limits.handshake_timeout:
            reason = f"no preface and SETTINGS within {limits.handshake_timeout:g} s"
            self._abort(ErrorCode.PROTOCOL_ERROR, reason)
            return
        if self._writes_paused_at is not None and now - self._writes_paused_at > limits.keepalive_timeout:
            self._abort(
                ErrorCode.ENHANCE_YOUR_CALM,
                f"the peer has not read our writes for {limits.keepalive_timeout:g} s",
                hard=True,
            )
            return
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at > limits.keepalive_timeout:
                self._abort(ErrorCode.PROTOCOL_ERROR, f"no PING ACK within {limits.keepalive_timeout:g} s")
                return
        elif now - self._last_received > limits.keepalive_interval and (
            not self.is_client or self.open_streams()
        ):
            # A client pings only while it waits for answers: grpc-go servers count pings on a
            # connection without calls as abuse and close it ("too_many_pings").
            self._ping_sent_at = now
            self._write(frame(Frame.PING, 0, 0, _KEEPALIVE_PING))
        if limits.idle_timeout is not None:
            if self.open_streams():
                self._idle_since = None
            elif self._idle_since is None:
                self._idle_since = now
            elif now - self._idle_since > limits.idle_timeout:
                self.idle()
                return
        self._timer = self._loop.call_later(limits.tick, self._tick)

    def idle(self) -> None:
        """No stream for ``idle_timeout``: close, telling the peer it may reconnect at once."""
        self.send_goaway(self.last_peer_stream(), ErrorCode.NO_ERROR, "idle")
        self.close()

    def last_peer_stream(self) -> int:
        """The highest stream the peer opened that we took (GOAWAY's last stream id)."""
        return 0

    # ---- receiving ----------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._headers_stream and kind != Frame.CONTINUATION:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "header block interrupted")
        if kind == Frame.DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == Frame.HEADERS:
            if stream_id == 0:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
            payload = self._unpad(flags, payload)
            if flags & PRIORITY:
                if len(payload) < 5:
                    raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "HEADERS too short for its priority")
                payload = payload[5:]
            if len(payload) > self.limits.max_header_block:
                raise ConnectionError_(
                    ErrorCode.ENHANCE_YOUR_CALM,
                    f"header block larger than {self.limits.max_header_block} bytes",
                )
            self._headers_flags = flags
            if flags & END_HEADERS:
                self._header_block_done(stream_id, payload)
            else:
                self._headers_block = bytearray(payload)
                self._headers_stream = stream_id
                self._continuations = 0
        elif kind == Frame.CONTINUATION:
            if stream_id != self._headers_stream or not stream_id:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION")
            self._continuations += 1
            if self._continuations > self.limits.max_continuations:
                raise ConnectionError_(
                    ErrorCode.ENHANCE_YOUR_CALM,
                    f"header block in more than {self.limits.max_continuations} CONTINUATION frames",
                )
            if len(self._headers_block) + len(payload) > self.limits.max_header_block:
                raise ConnectionError_(
                    ErrorCode.ENHANCE_YOUR_CALM,
                    f"header block larger than {self.limits.max_header_block} bytes",
                )
            self._headers_block += payload
            if flags & END_HEADERS:
                self._headers_stream = 0
                block = bytes(self._headers_block)
                self._headers_block = bytearray()
                self._header_block_done(stream_id, block)
        elif kind == Frame.SETTINGS:
            if stream_id:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
            if flags & ACK:
                if payload:
                    raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            else:
                self._settings_received = True
                self._on_settings(payload)
        elif kind == Frame.WINDOW_UPDATE:
            if len(payload) != 4:
                raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE of wrong size")
            self._on_window_update(stream_id, int.from_bytes(payload, "big") & 0x7FFFFFFF)
        elif kind == Frame.PING:
            if len(payload) != 8:
                raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "PING of wrong size")
            if stream_id:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
            if not flags & ACK:
                self._write(frame(Frame.PING, ACK, 0, payload))
            elif payload == _KEEPALIVE_PING:
                self._ping_sent_at = None
        elif kind == Frame.RST_STREAM:
            if len(payload) != 4:
                raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM of wrong size")
            if stream_id == 0:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "RST_STREAM on stream 0")
            self._outbound.pop(stream_id, None)
            self._stream_recv_unacked.pop(stream_id, None)
            self.stream_reset(stream_id, int.from_bytes(payload, "big"))
        elif kind == Frame.GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            self.goaway_received(last, int.from_bytes(payload[4:8], "big"))
        elif kind == Frame.PUSH_PROMISE:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE (push is disabled)")
        # PRIORITY and unknown frame types are ignored, as the RFC requires.

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _header_block_done(self, stream_id: int, block: bytes) -> None:
        end_stream = bool(self._headers_flags & END_STREAM)
        if end_stream:
            # The peer's side of the stream is over: nothing more to count against its window.
            self._stream_recv_unacked.pop(stream_id, None)
        try:
            headers = self._decoder.decode(block)
        except HeaderListTooLarge as err:
            self.header_list_too_large(stream_id, str(err))
            return
        self.headers_received(stream_id, headers, end_stream)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        data = self._unpad(flags, payload)
        # Flow control counts the whole frame payload, padding included.
        self._recv_outstanding += size
        if self._recv_outstanding > RECEIVE_WINDOW:
            raise ConnectionError_(
                ErrorCode.FLOW_CONTROL_ERROR, f"the peer sent beyond our connection window ({RECEIVE_WINDOW})"
            )
        end_stream = bool(flags & END_STREAM)
        unacked = self._stream_recv_unacked.get(stream_id, 0) + size
        if unacked > RECEIVE_WINDOW:
            self._stream_recv_unacked.pop(stream_id, None)
            self.consumed(size)
            self.stream_reset(stream_id, ErrorCode.FLOW_CONTROL_ERROR)
            self.reset_stream(stream_id, ErrorCode.FLOW_CONTROL_ERROR)
            return
        if not end_stream:
            if unacked >= RECEIVE_WINDOW // 2:
                self._write(frame(Frame.WINDOW_UPDATE, 0, stream_id, unacked.to_bytes(4, "big")))
                unacked = 0
            self._stream_recv_unacked[stream_id] = unacked
        else:
            self._stream_recv_unacked.pop(stream_id, None)
        self.consumed(size - self.data_frame(stream_id, data, end_stream))

    def consumed(self, n: int) -> None:
        """Give ``n`` received bytes back to the peer's connection window (batched, at half the window)."""
        credit = self._recv_credit + n
        if credit >= RECEIVE_WINDOW // 2:
            self._write(frame(Frame.WINDOW_UPDATE, 0, 0, credit.to_bytes(4, "big")))
            self._recv_outstanding -= credit
            credit = 0
        self._recv_credit = credit

    def _on_settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            raise ConnectionError_(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS of wrong size")
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ConnectionError_(ErrorCode.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for out in self._outbound.values():
                    out.window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not 16_384 <= value <= 16_777_215:
                    raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, f"max frame size {value}")
                self._peer_max_frame = value
            elif key == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.peer_max_streams = value
        self._write(frame(Frame.SETTINGS, ACK, 0))
        self._send_pending()

    def _on_window_update(self, stream_id: int, increment: int) -> None:
        if increment == 0:
            if stream_id == 0:
                raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.stream_reset(stream_id, ErrorCode.PROTOCOL_ERROR)
            self.reset_stream(stream_id, ErrorCode.PROTOCOL_ERROR)
            return
        if stream_id == 0:
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise ConnectionError_(ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow")
            self._send_pending()
            return
        out = self._outbound.get(stream_id)
        if out is not None:
            out.window += increment
            if out.window > MAX_WINDOW:
                self.stream_reset(stream_id, ErrorCode.FLOW_CONTROL_ERROR)
                self.reset_stream(stream_id, ErrorCode.FLOW_CONTROL_ERROR)
                return
            self._send_stream(stream_id, out)

    # ---- hooks for the server and client ----------------------------------------------------

    def headers_received(self, stream_id: int, headers: list[Header], end_stream: bool) -> None:
        raise NotImplementedError

    def data_frame(self, stream_id: int, data: bytes, end_stream: bool) -> int:
        """Take a stream's DATA; returns how many more bytes the stream now holds (negative when it let
        go of some): those stay out of the connection window until ``consumed`` gives them back."""
        raise NotImplementedError

    def header_list_too_large(self, stream_id: int, reason: str) -> None:
        raise NotImplementedError

    def stream_reset(self, stream_id: int, code: int) -> None:
        raise NotImplementedError

    def goaway_received(self, last_stream_id: int, code: int) -> None:
        raise NotImplementedError

    # ---- sending ------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None and not self.transport.is_closing() and self._out:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def send_headers(self, stream_id: int, headers: list[Header], *, end_stream: bool = False) -> None:
        block = encode(headers)
        flags = END_STREAM if end_stream else 0
        limit = self._peer_max_frame
        if len(block) <= limit:
            self._write(frame(Frame.HEADERS, flags | END_HEADERS, stream_id, block))
            return
        self._write(frame(Frame.HEADERS, flags, stream_id, block[:limit]))
        for i in range(limit, len(block), limit):
            last = i + limit >= len(block)
            self._write(
                frame(Frame.CONTINUATION, END_HEADERS if last else 0, stream_id, block[i : i + limit])
            )

    def send_message(
        self, stream_id: int, data: bytes, *, end_stream: bool = False, trailers: list[Header] | None = None
    ) -> None:
        """Queue DATA for a stream, then (optionally) its trailers or END_STREAM; sent as windows allow."""
        out = self._outbound.get(stream_id)
        if out is None:
            out = self._outbound[stream_id] = _Outbound(self._peer_initial_window)
        if data:
            out.data.append(memoryview(data))
        if trailers is not None:
            out.trailers = trailers
        elif end_stream:
            out.end_with_data = True
        self._send_stream(stream_id, out)

    def _send_stream(self, stream_id: int, out: _Outbound) -> None:
        while out.data:
            chunk = out.data[0]
            room = min(out.window, self._send_window, self._peer_max_frame)
            if room <= 0:
                return
            piece = chunk[:room]
            rest = chunk[room:]
            if rest:
                out.data[0] = rest
            else:
                out.data.popleft()
            out.window -= len(piece)
            self._send_window -= len(piece)
            last = not out.data and out.end_with_data
            self._write(frame(Frame.DATA, END_STREAM if last else 0, stream_id, bytes(piece)))
            if last:
                self._outbound.pop(stream_id, None)
                return
        if out.trailers is not None:
            self.send_headers(stream_id, out.trailers, end_stream=True)
            self._outbound.pop(stream_id, None)
        elif out.end_with_data:
            self._write(frame(Frame.DATA, END_STREAM, stream_id))
            self._outbound.pop(stream_id, None)

    def _send_pending(self) -> None:
        for stream_id, out in list(self._outbound.items()):
            if self._send_window <= 0:
                return
            self._send_stream(stream_id, out)

    def reset_stream(self, stream_id: int, code: ErrorCode) -> None:
        self._outbound.pop(stream_id, None)
        self._stream_recv_unacked.pop(stream_id, None)
        self._write(frame(Frame.RST_STREAM, 0, stream_id, int(code).to_bytes(4, "big")))

    def send_goaway(self, last_stream_id: int, code: ErrorCode, reason: str = "") -> None:
        payload = last_stream_id.to_bytes(4, "big") + int(code).to_bytes(4, "big") + reason.encode()[:256]
        self._write(frame(Frame.GOAWAY, 0, 0, payload))

    def _abort(self, code: ErrorCode, reason: str, *, hard: bool = False) -> None:
        """Close with GOAWAY(code); ``hard`` drops what waits to be written (the peer is not reading)."""
        log.warning("closing HTTP/2 connection: %s (%s)", reason, code.name)
        self.send_goaway(0, code, reason)
        self._flush()
        self.closed = True
        if self.transport is not None:
            if hard:
                self.transport.abort()
            else:
                self.transport.close()

    def close(self) -> None:
        self._flush()
        if self.transport is not None:
            self.transport.close()
