"""A gRPC server on a Unix socket, for the services of a generated ``_pb2`` module.

An implementation object has one method per rpc, named as in the proto: ``request -> response``
for unary rpcs, either a plain function (run at once, no task: the cheap path for the hot DMI
reports) or a coroutine function (run as a task, under the call's ``grpc-timeout``). Streaming
rpcs take an async iterator of requests when the client streams and return an async iterator of
responses when the server streams. Raise ``RpcError(code, details)`` to fail a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from dmi.rpc._grpc import (
    MAX_MESSAGE,
    MessageReader,
    RpcError,
    StatusCode,
    encode_message_text,
    frame_message,
    parse_timeout,
)
from dmi.rpc._hpack import Header
from dmi.rpc._http2 import DEFAULT_LIMITS, ConnectionError_, ErrorCode, Http2Connection, Limits

log = logging.getLogger(__name__)

_RESPONSE_HEADERS: list[Header] = [(":status", "200"), ("content-type", "application/grpc")]
_OK_TRAILERS: list[Header] = [("grpc-status", "0")]


@dataclass(frozen=True, slots=True)
class _Method:
    path: str
    request_type: type[Message]
    handler: Callable[..., Any]
    is_async: bool
    client_streaming: bool
    server_streaming: bool


class _Stream:
    __slots__ = ("headers_sent", "method", "queue", "reader", "requests", "task", "timeout", "withheld")

    def __init__(self, method: _Method, reader: MessageReader, timeout: float | None) -> None:
        self.method = method
        self.reader = reader
        self.timeout = timeout
        self.requests: list[bytes] = []
        self.queue: asyncio.Queue[bytes | None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.headers_sent = False
        self.withheld = 0  # received bytes not yet given back to the connection window


def _trailers(code: StatusCode, details: str) -> list[Header]:
    if code == StatusCode.OK and not details:
        return _OK_TRAILERS
    out: list[Header] = [("grpc-status", str(int(code)))]
    if details:
        out.append(("grpc-message", encode_message_text(details)))
    return out


class _ServerConnection(Http2Connection):
    def __init__(self, server: Server) -> None:
        super().__init__(server.limits)
        self.server = server
        self.streams: dict[int, _Stream] = {}
        self.last_stream = 0
        # Handlers of streams the client reset, told to stop but not finished yet: they still count
        # against the stream limit, or opening and resetting streams at once ("rapid reset") would
        # start handlers without bound.
        self._stopping: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        server = self.server
        if len(server._connections) >= self.limits.max_connections:
            server.refused_connections += 1
            if server.refused_connections % 100 == 1:
                log.warning(
                    "refusing a connection: %d are open, the limit (%d refused so far)",
                    len(server._connections),
                    server.refused_connections,
                )
            self.send_goaway(0, ErrorCode.ENHANCE_YOUR_CALM, "too many connections")
            self.close()
            self.closed = True
            return
        server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server._connections.discard(self)
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()

    def last_peer_stream(self) -> int:
        return self.last_stream

    def open_streams(self) -> int:
        # A stream answered but waiting for window to send its answer still holds memory: it counts.
        return len(self.streams) + len(self._outbound) + len(self._stopping)

    # ---- requests -----------------------------------------------------------------------------

    def headers_received(self, stream_id: int, headers: list[Header], end_stream: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client: its side of the stream ends
            if end_stream:
                self._requests_done(stream_id, stream)
            return
        if stream_id % 2 == 0 or stream_id <= self.last_stream:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, f"unexpected stream id {stream_id}")
        self.last_stream = stream_id
        if self.server.draining or self.open_streams() >= self.limits.max_concurrent_streams:
            # Refused before any work: the client may retry it, here or elsewhere (RFC 9113 §8.7).
            self.server.refused_streams += 1
            self.reset_stream(stream_id, ErrorCode.REFUSED_STREAM)
            return
        path = method = content_type = ""
        encoding = "identity"
        timeout: float | None = None
        for name, value in headers:
            if name == ":path":
                path = value
            elif name == ":method":
                method = value
            elif name == "content-type":
                content_type = value
            elif name == "grpc-timeout":
                timeout = parse_timeout(value)
            elif name == "grpc-encoding":
                encoding = value
        if method != "POST" or not content_type.startswith("application/grpc"):
            # Not a gRPC request at all: the spec's answer is HTTP 415.
            self.send_headers(stream_id, [(":status", "415")], end_stream=True)
            return
        m = self.server.methods.get(path)
        if m is None:
            self._trailers_only(stream_id, StatusCode.UNIMPLEMENTED, f"unknown method {path}")
            return
        stream = _Stream(m, MessageReader(encoding, self.server.max_message_size), timeout)
        self.streams[stream_id] = stream
        if m.client_streaming:
            stream.queue = asyncio.Queue()
            stream.task = self._loop.create_task(self._run(stream_id, stream))
        if end_stream:
            self._requests_done(stream_id, stream)

    def header_list_too_large(self, stream_id: int, reason: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client
            self._fail(stream_id, stream, StatusCode.RESOURCE_EXHAUSTED, reason)
            return
        if stream_id % 2 == 0 or stream_id <= self.last_stream:
            raise ConnectionError_(ErrorCode.PROTOCOL_ERROR, f"unexpected stream id {stream_id}")
        self.last_stream = stream_id
        self._trailers_only(stream_id, StatusCode.RESOURCE_EXHAUSTED, reason)

    def data_frame(self, stream_id: int, data: bytes, end_stream: bool) -> int:
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0  # a stream we already answered (e.g. unknown method): its body is ignored
        before = stream.withheld
        try:
            messages = stream.reader.feed(data)
        except RpcError as err:
            self._fail(stream_id, stream, err.code, err.details)
            return 0
        if stream.queue is not None:
            if stream.queue.qsize() + len(messages) > self.limits.max_queued_messages:
                details = f"more than {self.limits.max_queued_messages} requests wait for the handler"
                self._fail(stream_id, stream, StatusCode.RESOURCE_EXHAUSTED, details)
                return 0
            for raw in messages:
                stream.queue.put_nowait(raw)
        else:
            stream.requests.extend(messages)
            if len(stream.requests) > 1:
                details = "a unary call needs exactly one request message"
                self._fail(stream_id, stream, StatusCode.INTERNAL, details)
                return 0
        if end_stream:
            self._requests_done(stream_id, stream)
        if self.streams.get(stream_id) is not stream:
            return 0  # ended meanwhile: _drop gave back what it had withheld
        stream.withheld = stream.reader.held
        return stream.withheld - before

    def stream_reset(self, stream_id: int, code: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._drop(stream_id, stream)
            task = stream.task
            if task is not None and not task.done():
                task.cancel()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    def _drop(self, stream_id: int, stream: _Stream) -> bool:
        """Forget a stream (False if it was already gone); what it withheld goes back to the window."""
        if self.streams.pop(stream_id, None) is not stream:
            return False
        if stream.withheld:
            self.consumed(stream.withheld)
            stream.withheld = 0
        return True

    def goaway_received(self, last_stream_id: int, code: int) -> None:
        pass  # the client stops opening streams; those open finish normally

    def _requests_done(self, stream_id: int, stream: _Stream) -> None:
        if stream.reader.partial:
            self._fail(stream_id, stream, StatusCode.INTERNAL, "stream ended inside a message")
            return
        if stream.queue is not None:
            stream.queue.put_nowait(None)
            return
        if len(stream.requests) != 1:
            self._fail(
                stream_id,
                stream,
                StatusCode.INTERNAL,
                f"a unary call needs exactly one request message, got {len(stream.requests)}",
            )
            return
        m = stream.method
        if m.server_streaming or m.is_async:
            stream.task = self._loop.create_task(self._run(stream_id, stream))
        else:
            # A plain function: answered right here, without a task or a loop iteration.
            try:
                response = m.handler(self._parse(m, stream.requests[0]))
            except RpcError as err:
                self._fail(stream_id, stream, err.code, err.details)
            except Exception as exc:
                self._unexpected(stream_id, stream, exc)
            else:
                self._reply(stream_id, stream, response)

    # ---- running handlers ---------------------------------------------------------------------

    @staticmethod
    def _parse(m: _Method, raw: bytes) -> Message:
        try:
            return m.request_type.FromString(raw)
        except DecodeError as exc:
            raise RpcError(StatusCode.INTERNAL, f"cannot parse {m.request_type.__name__}: {exc}") from None

    async def _run(self, stream_id: int, stream: _Stream) -> None:
        """A coroutine handler, unary or streaming, under the call's deadline."""
        m = stream.method
        queue = stream.queue

        async def requests() -> AsyncIterator[Message]:
            assert queue is not None
            while (raw := await queue.get()) is not None:
                yield self._parse(m, raw)

        response: Message | None = None
        try:
            async with asyncio.timeout(stream.timeout):
                arg = requests() if m.client_streaming else self._parse(m, stream.requests[0])
                result = m.handler(arg)
                if m.server_streaming:
                    async for item in result:
                        self._send(stream_id, stream, item)
                else:
                    response = await result
        except TimeoutError:
            self._fail(stream_id, stream, StatusCode.DEADLINE_EXCEEDED, "deadline exceeded")
        except RpcError as err:
            self._fail(stream_id, stream, err.code, err.details)
        except Exception as exc:
            self._unexpected(stream_id, stream, exc)
        else:
            if response is not None:
                self._reply(stream_id, stream, response)
            else:
                self._finish(stream_id, stream, StatusCode.OK, "")

    # ---- responses ----------------------------------------------------------------------------

    def _send(self, stream_id: int, stream: _Stream, response: Message) -> None:
        if self.streams.get(stream_id) is not stream:
            return
        if not stream.headers_sent:
            stream.headers_sent = True
            self.send_headers(stream_id, _RESPONSE_HEADERS)
        self.send_message(stream_id, frame_message(response.SerializeToString()))

    def _reply(self, stream_id: int, stream: _Stream, response: Message) -> None:
        if not self._drop(stream_id, stream):
            return  # reset by the client meanwhile
        self.send_headers(stream_id, _RESPONSE_HEADERS)
        self.send_message(stream_id, frame_message(response.SerializeToString()), trailers=_OK_TRAILERS)

    def _finish(self, stream_id: int, stream: _Stream, code: StatusCode, details: str) -> None:
        if not self._drop(stream_id, stream):
            return
        if stream.headers_sent:
            self.send_message(stream_id, b"", trailers=_trailers(code, details))
        else:
            self._trailers_only(stream_id, code, details)

    def _fail(self, stream_id: int, stream: _Stream, code: StatusCode, details: str) -> None:
        self._finish(stream_id, stream, code, details)
        if stream.task is not None and stream.task is not asyncio.current_task():
            stream.task.cancel()

    def _unexpected(self, stream_id: int, stream: _Stream, exc: Exception) -> None:
        log.error("%s failed", stream.method.path, exc_info=exc)
        self._fail(stream_id, stream, StatusCode.UNKNOWN, f"Exception calling application: {exc}")

    def _trailers_only(self, stream_id: int, code: StatusCode, details: str) -> None:
        self.send_headers(stream_id, _RESPONSE_HEADERS + _trailers(code, details), end_stream=True)


_SERVER_LIMITS = dataclasses.replace(DEFAULT_LIMITS, idle_timeout=300.0)


class Server:
    """gRPC services on one Unix socket; ``start`` binds it, ``stop`` drains and closes.

    ``limits`` bound what each connection may cost (see ``dmi.rpc._http2.Limits``); by default a
    connection without a call for 5 minutes is closed (clients reconnect on their next call).
    """

    def __init__(self, *, max_message_size: int = MAX_MESSAGE, limits: Limits = _SERVER_LIMITS) -> None:
        self.max_message_size = max_message_size
        self.limits = limits
        self.methods: dict[str, _Method] = {}
        self.draining = False
        self.refused_streams = 0  # over the stream limit or while draining; a client that honours our
        # SETTINGS_MAX_CONCURRENT_STREAMS never sees one
        self.refused_connections = 0  # over ``limits.max_connections``
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerConnection] = set()

    def add_service(self, service: ServiceDescriptor, implementation: object) -> None:
        """Serve ``service``'s rpcs with ``implementation``'s same-named methods (missing: UNIMPLEMENTED)."""
        for method in service.methods:
            handler = getattr(implementation, method.name, None)
            if handler is None:
                continue
            self.add_method(
                f"/{service.full_name}/{method.name}",
                GetMessageClass(method.input_type),
                handler,
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
            )

    def add_method(
        self,
        path: str,
        request_type: type[Message],
        handler: Callable[..., Any],
        *,
        client_streaming: bool = False,
        server_streaming: bool = False,
    ) -> None:
        self.methods[path] = _Method(
            path,
            request_type,
            handler,
            inspect.iscoroutinefunction(handler),
            client_streaming,
            server_streaming,
        )

    @property
    def services(self) -> list[str]:
        return sorted({p.split("/")[1] for p in self.methods})

    async def start(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _ServerConnection(self), path)

    async def stop(self, grace: float = 0.5) -> None:
        """Refuse new calls, give running ones ``grace`` seconds, then close every connection."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.send_goaway(conn.last_stream, ErrorCode.NO_ERROR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # Polled: streams end inside protocol callbacks, and a drain happens once per process.
        while any(c.streams for c in self._connections) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for conn in list(self._connections):
            conn.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
