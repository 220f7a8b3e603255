"""A gRPC client channel to a Unix socket, for unary calls.

Like a grpcio channel it connects lazily, reconnects on the next call after the peer went away,
and fails fast with UNAVAILABLE when nobody listens (no waiting for readiness).
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from dmi.rpc._grpc import (
    HTTP_TO_GRPC,
    MAX_MESSAGE,
    MessageReader,
    RpcError,
    StatusCode,
    decode_message_text,
    format_timeout,
    frame_message,
)
from dmi.rpc._hpack import Header
from dmi.rpc._http2 import DEFAULT_LIMITS, ErrorCode, Http2Connection, Limits

M = TypeVar("M", bound=Message)


class _Unprocessed(RpcError):
    """The server did not process the call (REFUSED_STREAM, or beyond a GOAWAY's last stream): it is
    safe to send again (RFC 9113 §8.7), which ``unary`` does once."""


class _Call:
    __slots__ = ("done", "encoding", "messages", "reader", "status", "withheld")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.status: int | None = None  # HTTP status of the response headers
        self.reader: MessageReader | None = None
        self.messages: list[bytes] = []
        self.encoding = "identity"
        self.withheld = 0  # received bytes not yet given back to the connection window


class _ClientConnection(Http2Connection):
    is_client = True

    def __init__(self, max_message_size: int, limits: Limits) -> None:
        super().__init__(limits)
        self.max_message_size = max_message_size
        self.calls: dict[int, _Call] = {}
        self.next_stream = 1
        self.goaway = False
        self.slot_free = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        reason = f"connection lost: {exc}" if exc else "connection closed by the server"
        for call in self.calls.values():
            if not call.done.done():
                call.done.set_exception(RpcError(StatusCode.UNAVAILABLE, reason))
        self.calls.clear()
        self.slot_free.set()

    def open_streams(self) -> int:
        return len(self.calls)

    @property
    def usable(self) -> bool:
        return not self.closed and not self.goaway and self.next_stream < (1 << 31) - 2

    def open(self, path: str, payload: bytes, timeout: float | None) -> tuple[int, _Call]:
        stream_id = self.next_stream
        self.next_stream += 2
        call = _Call(self._loop.create_future())
        self.calls[stream_id] = call
        headers: list[Header] = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if timeout is not None:
            headers.append(("grpc-timeout", format_timeout(timeout)))
        self.send_headers(stream_id, headers)
        self.send_message(stream_id, frame_message(payload), end_stream=True)
        return stream_id, call

    def cancel(self, stream_id: int) -> None:
        call = self._drop(stream_id)
        if call is not None and not self.closed:
            self.reset_stream(stream_id, ErrorCode.CANCEL)

    def _drop(self, stream_id: int) -> _Call | None:
        """Forget a call; what it withheld goes back to the connection window."""
        call = self.calls.pop(stream_id, None)
        if call is not None:
            self.slot_free.set()
            if call.withheld:
                self.consumed(call.withheld)
                call.withheld = 0
        return call

    def header_list_too_large(self, stream_id: int, reason: str) -> None:
        call = self.calls.get(stream_id)
        if call is not None:
            self.cancel(stream_id)
            if not call.done.done():
                call.done.set_exception(RpcError(StatusCode.RESOURCE_EXHAUSTED, f"response {reason}"))

    def headers_received(self, stream_id: int, headers: list[Header], end_stream: bool) -> None:
        call = self.calls.get(stream_id)
        if call is None:
            return
        fields = dict(headers)
        if call.status is None:
            try:
                call.status = int(fields.get(":status", "0"))
            except ValueError:
                call.status = 0
            call.encoding = fields.get("grpc-encoding", "identity")
            call.reader = MessageReader(call.encoding, self.max_message_size)
        if end_stream:
            self._complete(stream_id, call, fields)

    def data_frame(self, stream_id: int, data: bytes, end_stream: bool) -> int:
        call = self.calls.get(stream_id)
        if call is None or call.reader is None:
            return 0
        before = call.withheld
        try:
            call.messages.extend(call.reader.feed(data))
            if len(call.messages) > 1:
                raise RpcError(StatusCode.INTERNAL, "more than one response message to a unary call")
        except RpcError as err:
            self.cancel(stream_id)
            if not call.done.done():
                call.done.set_exception(err)
            return 0
        if end_stream:  # no trailers: not a valid gRPC response
            self._complete(stream_id, call, {})
            return 0
        call.withheld = call.reader.held
        return call.withheld - before

    def stream_reset(self, stream_id: int, code: int) -> None:
        call = self._drop(stream_id)
        if call is not None and not call.done.done():
            name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else str(code)
            if code == ErrorCode.REFUSED_STREAM:
                call.done.set_exception(_Unprocessed(StatusCode.UNAVAILABLE, "stream refused by the server"))
            else:
                call.done.set_exception(RpcError(StatusCode.INTERNAL, f"stream reset by the server ({name})"))

    def goaway_received(self, last_stream_id: int, code: int) -> None:
        self.goaway = True
        for stream_id in [s for s in self.calls if s > last_stream_id]:
            call = self.calls.pop(stream_id)
            self.consumed(call.withheld)
            if not call.done.done():
                call.done.set_exception(_Unprocessed(StatusCode.UNAVAILABLE, "server is going away"))
        self.slot_free.set()

    def _complete(self, stream_id: int, call: _Call, trailers: dict[str, str]) -> None:
        self._drop(stream_id)
        if call.done.done():
            return
        if call.status != 200:
            code = HTTP_TO_GRPC.get(call.status or 0, StatusCode.UNKNOWN)
            call.done.set_exception(RpcError(code, f"HTTP status {call.status} from the server"))
            return
        raw = trailers.get("grpc-status")
        if raw is None or not raw.isdigit():
            call.done.set_exception(RpcError(StatusCode.INTERNAL, "response without grpc-status"))
            return
        status = int(raw)
        if status != 0:
            code = StatusCode(status) if status in StatusCode._value2member_map_ else StatusCode.UNKNOWN
            call.done.set_exception(RpcError(code, decode_message_text(trailers.get("grpc-message", ""))))
            return
        call.done.set_result(None)


class Channel:
    """``await channel.unary(path, request, ResponseType, timeout=...)``; ``close`` when done."""

    def __init__(
        self,
        path: str,
        *,
        max_message_size: int = MAX_MESSAGE,
        connect_timeout: float = 5.0,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.path = path.removeprefix("unix:")
        self.max_message_size = max_message_size
        self.limits = limits
        self.connect_timeout = connect_timeout
        self._conn: _ClientConnection | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connection(self) -> _ClientConnection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            conn = self._conn
            if conn is not None and conn.usable:
                return conn
            if conn is not None and not conn.calls:
                conn.close()
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, protocol = await loop.create_unix_connection(
                        lambda: _ClientConnection(self.max_message_size, self.limits), self.path
                    )
            except (OSError, TimeoutError) as exc:
                raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to unix:{self.path}: {exc}") from None
            self._conn = protocol
            return protocol

    # The deadline is a parameter because it travels to the server as grpc-timeout.
    async def unary(
        self,
        method: str,
        request: Message,
        response_type: type[M],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> M:
        """Call ``method`` (``/package.Service/Method``); raises RpcError for any non-OK status."""
        payload = request.SerializeToString()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                for attempt in (1, 2):
                    conn = await self._connection()
                    while len(conn.calls) >= conn.peer_max_streams and conn.usable:
                        conn.slot_free.clear()
                        await conn.slot_free.wait()
                    remaining = None if deadline is None else deadline - loop.time()
                    stream_id, call = conn.open(method, payload, remaining)
                    try:
                        await call.done
                    except asyncio.CancelledError:
                        conn.cancel(stream_id)
                        raise
                    except _Unprocessed:
                        # e.g. a server closing an idle connection just as the call went out
                        if attempt == 2:
                            raise
                        continue
                    break
        except TimeoutError:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded") from None
        if len(call.messages) != 1:
            raise RpcError(StatusCode.INTERNAL, f"expected one response message, got {len(call.messages)}")
        try:
            return response_type.FromString(call.messages[0])
        except DecodeError as exc:
            raise RpcError(StatusCode.INTERNAL, f"cannot parse {response_type.__name__}: {exc}") from None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
