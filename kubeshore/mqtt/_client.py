"""kubeshore's MQTT 3.1.1 client (edgecore's eventbus, the mapper SDK's sink): asyncio, no threads.

Everything runs on the event loop. What arrives is split into packets and dispatched in the same
``data_received`` call, however many packets a read brought; what leaves is appended to one buffer that
is handed to the transport once per loop iteration, so a burst of publishes costs one ``send``.
The broker may go away at any time: the client reconnects with backoff, restores every subscription
and resends unacknowledged QoS 1 messages, so callers subscribe once and publish without caring about
the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from kubeshore.backoff import Backoff
from kubeshore.mqtt import _packets as pk
from kubeshore.mqtt._topics import encode_topic_filter, encode_topic_name, topic_matches

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]

MAX_UNACKED = 10_000  # QoS 1 messages kept (in flight or waiting for the broker); more are dropped
MAX_UNACKED_BYTES = 16 << 20  # ... and their bytes: 10,000 large messages must not become gigabytes
MAX_INFLIGHT = 100  # QoS 1 messages sent and not yet acknowledged; the rest wait their turn, in order
# The largest packet we accept from the broker. MQTT 3.1.1 has no way to tell the broker, so a larger
# PUBLISH is skipped as it streams in (never buffered), acknowledged if QoS 1, logged and counted.
MAX_RECEIVE_PACKET = 2 << 20
SUBSCRIBE_QOS = 1  # what every subscription asks for: QoS 1 publishes reach us as QoS 1
CONNECT_TIMEOUT = 10.0  # TCP connect plus CONNACK
FIRST_BACKOFF = 0.1
_CACHE_LIMIT = 4096  # encoded topic names and routes kept; cleared when full
# Unsent bytes above which QoS 0 publishes are dropped: a broker that stopped reading (hung, or a
# dead peer before keepalive notices) must not make edgecore buffer without bound.
WRITE_BUFFER_LIMIT = 4 << 20


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Accept KubeEdge's forms: ``tcp://host:port``, ``mqtt://host:port`` or ``host:port``, and
        ``ssl://``, ``tls://`` or ``mqtts://`` for TLS (port 8883 unless given)."""
        if "://" not in url:
            url = "tcp://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("tcp", "mqtt", "ssl", "tls", "mqtts"):
            raise ValueError(f"MQTT url {url!r}: scheme must be tcp://, mqtt://, ssl://, tls:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"MQTT url {url!r}: no host")
        tls = parts.scheme in ("ssl", "tls", "mqtts")
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)


class _Connection(asyncio.Protocol):
    """One TCP connection: packets in, batched bytes out, keepalive pings."""

    def __init__(self, client: MqttClient, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._inbuf = bytearray()
        self._out = bytearray()
        self._dead = False
        self._accepted = False
        self.paused = False  # the transport holds WRITE_BUFFER_LIMIT unsent bytes
        self._skip = 0  # bytes of an oversized packet still to discard
        self.connack: asyncio.Future[int] = loop.create_future()
        self.lost = asyncio.Event()
        self.lost_reason = "closed"
        # keepalive state: activity since the last tick, ticks since an unanswered PINGREQ
        self._sent = False
        self._received = False
        self._ping_ticks = 0
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=WRITE_BUFFER_LIMIT)

    def pause_writing(self) -> None:
        # The broker is not reading: stop reading it too, or the PUBACKs we owe for its QoS 1
        # messages would pile up in our write buffer.
        self.paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self._transport is not None and not self._dead:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._received = True
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return
            data = data[self._skip :]
            self._skip = 0
        buf: bytes | bytearray
        if self._inbuf:
            self._inbuf += data
            buf = self._inbuf
        else:
            buf = data
        done = 0
        limit = self._client.max_packet
        try:
            while True:
                try:
                    for first, start, end in pk.split_packets(buf, limit, done):
                        if self._dead:
                            return
                        self._packet(first, buf, start, end)
                        done = end
                    break
                except pk.PacketTooLarge as big:
                    after = self._oversized(buf, big)
                    if after is None:  # its packet identifier has not arrived yet
                        break
                    done = after
                    if self._skip:
                        break
        except pk.ProtocolError as exc:
            self.abort(f"protocol error from the broker: {exc}")
            return
        if buf is self._inbuf:
            del self._inbuf[:done]
        elif done < len(data):
            self._inbuf += memoryview(data)[done:]

    def _oversized(self, buf: bytes | bytearray, big: pk.PacketTooLarge) -> int | None:
        """Skip a packet over the receive limit: where its end is in ``buf`` (or ``len(buf)`` and the
        rest in ``_skip``), or None to wait for the bytes up to its packet identifier."""
        kind, qos = big.first >> 4, (big.first >> 1) & 0x03
        if kind != pk.PUBLISH:
            raise pk.ProtocolError(f"packet type {kind} of {big.length} bytes")
        start = big.body_start
        if len(buf) - start < 2:
            return None
        topic_end = start + 2 + (buf[start] << 8 | buf[start + 1])
        if topic_end + (2 if qos else 0) > start + big.length:
            raise pk.ProtocolError("PUBLISH topic runs past the packet")
        if len(buf) < topic_end + (2 if qos else 0):
            return None
        if qos == 1:
            self.write(pk.encode_puback(buf[topic_end] << 8 | buf[topic_end + 1]))
        elif qos:
            raise pk.ProtocolError(f"PUBLISH with QoS {qos}, but every subscription asked for at most QoS 1")
        topic = bytes(buf[start + 2 : topic_end]).decode(errors="replace")
        self._client._dropped_oversized(topic, big.length)
        end = start + big.length
        if end <= len(buf):
            return end
        self._skip = end - len(buf)
        return len(buf)

    def eof_received(self) -> bool:
        self.lost_reason = "the broker closed the connection"
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._dead = True
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
        if exc is not None and self.lost_reason == "closed":
            self.lost_reason = str(exc) or type(exc).__name__
        if not self.connack.done():
            self.connack.set_exception(
                ConnectionError(f"connection closed before CONNACK: {self.lost_reason}")
            )
        self.lost.set()

    # ---------------------------------------------------------------------------------------------

    def _packet(self, first: int, buf: bytes | bytearray, start: int, end: int) -> None:
        kind = first >> 4
        if not self._accepted:
            if kind != pk.CONNACK or end - start != 2:
                raise pk.ProtocolError(f"expected CONNACK first, got packet type {kind}")
            self._accepted = buf[start + 1] == 0
            self.connack.set_result(buf[start + 1])
        elif kind == pk.PUBLISH:
            topic, packet_id, payload = pk.decode_publish(first, buf, start, end)
            self._client._deliver(topic, payload)
            if packet_id:
                self.write(pk.encode_puback(packet_id))
        elif kind == pk.PUBACK:
            self._client._acked(pk.decode_packet_id(buf, start, end))
        elif kind == pk.PINGRESP:
            self._ping_ticks = 0
        elif kind == pk.SUBACK:
            self._client._subacked(pk.decode_packet_id(buf, start, end), buf[start + 2 : end])
        else:
            raise pk.ProtocolError(f"unexpected packet type {kind}")

    def write(self, *parts: bytes | bytearray) -> None:
        if self._dead:
            return
        if not self._out:
            self._loop.call_soon(self.flush)
        for part in parts:
            self._out += part
        self._sent = True

    def flush(self) -> None:
        if self._out and self._transport is not None and not self._dead:
            # A fresh buffer each time: the transport may keep what it could not send yet.
            data, self._out = self._out, bytearray()
            self._transport.write(data)

    def abort(self, reason: str) -> None:
        if self._dead:
            return
        self.lost_reason = reason
        self._dead = True
        if self._transport is not None:
            self._transport.abort()

    def close(self, *, disconnect: bool) -> None:
        """Close once everything written has left, after a DISCONNECT if ``disconnect``."""
        if self._dead or self._transport is None:
            return
        if disconnect:
            self.write(pk.DISCONNECT_PACKET)
        self.flush()
        self._dead = True
        self._transport.close()

    def start_keepalive(self, keepalive: int) -> None:
        if keepalive:
            self._timer = self._loop.call_later(keepalive / 2, self._tick, keepalive)

    def _tick(self, keepalive: int) -> None:
        if self._ping_ticks:
            self._ping_ticks += 1
            if self._ping_ticks > 2:
                self.abort(f"no PINGRESP within the keepalive of {keepalive}s")
                return
        elif not (self._sent and self._received):
            # Quiet in one direction: a ping keeps the broker's keepalive happy and proves the
            # broker is still there (a publisher that only writes would never notice otherwise).
            self.write(pk.PINGREQ_PACKET)
            self._ping_ticks = 1
        self._sent = self._received = False
        self._timer = self._loop.call_later(keepalive / 2, self._tick, keepalive)


class MqttClient:
    """One connection to the broker; ``start`` returns at once and connects in the background.

    Like everything on the event loop it is not thread-safe: call it from the loop's thread.

    Limits (class attributes, settable per instance): ``max_packet`` bytes per packet from the broker,
    ``max_inflight`` QoS 1 messages sent and not yet acknowledged, ``max_queued_bytes`` of QoS 1
    messages kept for the broker (with at most ``MAX_UNACKED`` of them).
    """

    max_packet = MAX_RECEIVE_PACKET
    max_inflight = MAX_INFLIGHT
    max_queued_bytes = MAX_UNACKED_BYTES

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        keepalive: int = 30,
        max_backoff: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: speak TLS with this context (KubeEdge's ``eventBusTLS``); an ``ssl://`` URL without
        one uses the system's trust store. ``username``/``password``: KubeEdge's ``mqttUsername`` and
        ``mqttPassword``; the password is never logged."""
        if not 0 <= keepalive <= 65535:
            raise ValueError(f"MQTT keepalive {keepalive} must be 0..65535 seconds")
        if len(client_id.encode()) > 65535:
            raise ValueError("MQTT client id longer than 65535 bytes")
        self.address = BrokerAddress.parse(url)
        if password is not None and username is None:
            raise ValueError("an MQTT password needs a user name (MQTT 3.1.1)")
        self._tls = tls if tls is not None else (ssl.create_default_context() if self.address.tls else None)
        self._connect_packet = pk.encode_connect(client_id, keepalive, username, password)
        self.client_id = client_id
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._routes: dict[str, tuple[tuple[str, MessageHandler], ...]] = {}
        self._topics: dict[str, bytes] = {}  # topic -> validated, length-prefixed UTF-8
        self._unacked: dict[int, bytearray] = {}  # packet id -> QoS 1 PUBLISH, in publish order
        self._unacked_bytes = 0
        self._waiting: deque[int] = deque()  # of those, not sent on this connection yet (inflight full)
        self._inflight = 0
        self._oversized = 0
        self._subscribing: dict[int, list[str]] = {}  # packet id -> filters of a SUBSCRIBE
        self._last_id = 0
        self._dropped = 0
        self._conn: _Connection | None = None  # set while the broker has accepted us
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.client_id}")

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def stop(self) -> None:
        """Send DISCONNECT, close the connection and stop reconnecting."""
        conn = self._conn
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if conn is not None:
            conn.close(disconnect=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await conn.lost.wait()
            self._detach(conn)

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call ``handler(topic, payload)`` on the loop for every message matching ``topic_filter``."""
        encode_topic_filter(topic_filter)
        handlers = self._handlers.get(topic_filter)
        if handlers is None:
            self._handlers[topic_filter] = [handler]
            if self._conn is not None:
                self._subscribe(self._conn, [topic_filter])
        else:
            handlers.append(handler)
        self._routes.clear()

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False) -> bool:
        """Send a message; False when it was dropped.

        QoS 0 is dropped while the broker is away or not reading (4 MiB unsent). QoS 1 is kept until
        the broker acknowledges it, across reconnects, up to 10,000 messages and 16 MiB; beyond that
        new ones are dropped. At most 100 are in flight at once; the others follow in order.
        """
        encoded = self._topics.get(topic)
        if encoded is None:
            encoded = self._encode_topic(topic)
        if type(payload) is not bytes:
            payload = _payload_bytes(payload)
        if qos == 0:
            conn = self._conn
            # Also what this loop iteration wrote and not yet handed to the transport: a caller
            # publishing in a tight loop never lets the transport say it is full.
            if conn is None or conn.paused or len(conn._out) > WRITE_BUFFER_LIMIT:
                return False
            conn.write(pk.publish_header(0, retain, len(encoded) + len(payload)), encoded, payload)
            return True
        if qos != 1:
            raise ValueError(f"MQTT QoS {qos} is not supported: use 0 or 1")
        if len(self._unacked) >= MAX_UNACKED or self._unacked_bytes + len(payload) > self.max_queued_bytes:
            self._dropped += 1
            if self._dropped % 1000 == 1:
                log.warning(
                    "MQTT: %d QoS 1 messages (%d bytes) wait for the broker's acknowledgement; "
                    "dropped %d new ones",
                    len(self._unacked),
                    self._unacked_bytes,
                    self._dropped,
                )
            return False
        packet_id = self._new_packet_id()
        packet = bytearray(pk.encode_publish(encoded, payload, 1, retain, packet_id))
        self._unacked[packet_id] = packet
        self._unacked_bytes += len(packet)
        conn = self._conn
        if conn is not None and not self._waiting and self._inflight < self.max_inflight:
            conn.write(packet)
            packet[0] |= pk.DUP_FLAG  # any later send of it is a resend
            self._inflight += 1
        else:
            self._waiting.append(packet_id)
        return True

    # connection management ---------------------------------------------------------------------

    async def _run(self) -> None:
        # Jitter keeps many edge clients from reconnecting in lockstep after a broker restart.
        backoff = Backoff(FIRST_BACKOFF, self._max_backoff, jitter=(0.5, 1.0))
        failures = 0
        while True:
            conn = await self._connect(quiet=failures > 0)
            if conn is None:
                failures += 1
            else:
                failures = 0
                backoff.reset()
                self._attach(conn)
                await conn.lost.wait()
                self._detach(conn)
                log.warning("MQTT broker connection lost: %s", conn.lost_reason)
            await backoff.sleep()

    async def _connect(self, *, quiet: bool) -> _Connection | None:
        """A connection the broker accepted, or None (logged, at debug level when ``quiet``)."""
        loop = asyncio.get_running_loop()
        host, port = self.address.host, self.address.port
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, loop),
                    host,
                    port,
                    ssl=self._tls,
                    server_hostname=host if self._tls is not None else None,
                )
                conn.write(self._connect_packet)
                code = await conn.connack
        except (OSError, TimeoutError) as exc:
            if conn is not None:
                conn.abort("no CONNACK")
            log.log(
                logging.DEBUG if quiet else logging.WARNING,
                "MQTT broker %s:%s unreachable: %s",
                host,
                port,
                str(exc) or f"no CONNACK within {CONNECT_TIMEOUT:g} s",
            )
            return None
        except asyncio.CancelledError:
            if conn is not None:
                conn.abort("stopping")
            raise
        if code:
            meaning = pk.CONNACK_REFUSED.get(code, "unknown reason")
            log.warning("MQTT broker %s:%s refused the connection: code %d, %s", host, port, code, meaning)
            conn.close(disconnect=False)
            return None
        return conn

    def _attach(self, conn: _Connection) -> None:
        self._conn = conn
        self._subscribing.clear()
        # Subscriptions go first: the broker handles a connection's packets in order, so resent
        # messages to our own filters come back to us.
        if self._handlers:
            self._subscribe(conn, list(self._handlers))
        self._inflight = 0
        self._waiting = deque(self._unacked)
        self._send_waiting(conn)
        conn.start_keepalive(self._keepalive)
        self._connected.set()
        log.info(
            "connected to MQTT broker %s:%s (%d subscriptions, %d QoS 1 messages to resend)",
            self.address.host,
            self.address.port,
            len(self._handlers),
            len(self._unacked),
        )

    def _detach(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None
            self._connected.clear()

    def _subscribe(self, conn: _Connection, filters: list[str]) -> None:
        packet_id = self._new_packet_id()
        self._subscribing[packet_id] = filters
        conn.write(pk.encode_subscribe(packet_id, [f.encode() for f in filters], SUBSCRIBE_QOS))

    def _new_packet_id(self) -> int:
        while True:
            self._last_id = self._last_id % 65535 + 1
            if self._last_id not in self._unacked and self._last_id not in self._subscribing:
                return self._last_id

    def _encode_topic(self, topic: str) -> bytes:
        encoded = pk.length_prefixed(encode_topic_name(topic))
        if len(self._topics) >= _CACHE_LIMIT:
            self._topics.clear()
        self._topics[topic] = encoded
        return encoded

    # called by the connection ---------------------------------------------------------------

    def _deliver(self, topic: str, payload: bytes) -> None:
        routes = self._routes.get(topic)
        if routes is None:
            routes = tuple(
                (topic_filter, handler)
                for topic_filter, handlers in self._handlers.items()
                if topic_matches(topic_filter, topic)
                for handler in handlers
            )
            if len(self._routes) >= _CACHE_LIMIT:
                self._routes.clear()
            self._routes[topic] = routes
        for topic_filter, handler in routes:
            try:
                handler(topic, payload)
            except Exception:
                log.exception("MQTT handler for %s failed on %s", topic_filter, topic)

    def _send_waiting(self, conn: _Connection) -> None:
        waiting = self._waiting
        while waiting and self._inflight < self.max_inflight:
            packet = self._unacked.get(waiting.popleft())
            if packet is not None:
                conn.write(packet)
                packet[0] |= pk.DUP_FLAG
                self._inflight += 1

    def _acked(self, packet_id: int) -> None:
        packet = self._unacked.pop(packet_id, None)
        if packet is None:
            return
        self._unacked_bytes -= len(packet)
        self._inflight = max(self._inflight - 1, 0)
        if self._waiting and self._conn is not None:
            self._send_waiting(self._conn)

    def _dropped_oversized(self, topic: str, size: int) -> None:
        self._oversized += 1
        if self._oversized % 1000 == 1:
            log.warning(
                "MQTT: dropped a message of %d bytes on %r from the broker: larger than the limit of %d "
                "(%d dropped so far)",
                size,
                topic,
                self.max_packet,
                self._oversized,
            )

    def _subacked(self, packet_id: int, codes: bytes | bytearray) -> None:
        filters = self._subscribing.pop(packet_id, None)
        if filters is None:
            return
        for topic_filter, code in zip(filters, codes, strict=False):
            if code == pk.SUBACK_FAILURE:
                log.error("MQTT broker refused the subscription to %r", topic_filter)


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"MQTT payload must be bytes or str, not {type(payload).__name__}")
