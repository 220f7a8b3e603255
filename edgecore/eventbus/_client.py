"""An asyncio MQTT client over paho-mqtt, driven by the event loop rather than paho's own thread.

paho's socket callbacks hand us its socket; the loop watches it (add_reader/add_writer) so reads,
writes and message dispatch all happen on the event loop thread, without a lock or a second thread.
The broker may go away at any time: the client reconnects with backoff and restores every
subscription, so callers subscribe once and publish without caring about the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Accept KubeEdge's forms: ``tcp://host:port``, ``mqtt://host:port`` or ``host:port``."""
        if "://" not in url:
            url = "tcp://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("tcp", "mqtt"):
            raise ValueError(f"MQTT url {url!r}: scheme must be tcp:// or mqtt://")
        if not parts.hostname:
            raise ValueError(f"MQTT url {url!r}: no host")
        return cls(parts.hostname, parts.port or 1883)


class MqttClient:
    """One connection to the broker; ``start`` returns at once and connects in the background."""

    def __init__(
        self,
        url: str,
        client_id: str,
        *,
        keepalive: int = 30,
        max_backoff: float = 5.0,
    ) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self._paho_mod = paho
        self.address = BrokerAddress.parse(url)
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311, clean_session=True
        )
        # Without a cap paho drops QoS>0 messages queued while offline only when memory runs out.
        self._client.max_queued_messages_set(10000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_socket_open = self._on_socket_open
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_register_write
        self._client.on_socket_unregister_write = self._on_unregister_write
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._closing = False
        self._was_connected = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="mqtt-connection")
        self._misc_task = asyncio.create_task(self._misc(), name="mqtt-keepalive")

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def stop(self) -> None:
        self._closing = True
        for task in (self._task, self._misc_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client.is_connected():
            self._client.disconnect()
            # Flush the DISCONNECT packet before the socket goes.
            with contextlib.suppress(Exception):
                self._client.loop_write()
        self._detach_socket()
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Call ``handler(topic, payload)`` on the loop for every message matching ``topic_filter``."""
        first = topic_filter not in self._handlers
        self._handlers.setdefault(topic_filter, []).append(handler)
        if first and self.connected:
            self._client.subscribe(topic_filter, qos=0)

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False) -> bool:
        """Queue a message; returns False when QoS 0 is dropped because the broker is away."""
        if not self.connected and qos == 0:
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == self._paho_mod.MQTT_ERR_SUCCESS

    # connection management -------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.1
        while not self._closing:
            self._lost.clear()
            try:
                await asyncio.to_thread(
                    self._client.connect, self.address.host, self.address.port, self._keepalive
                )
            except OSError as exc:
                log.warning("MQTT broker %s:%s unreachable: %s", self.address.host, self.address.port, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            await self._lost.wait()
            self._detach_socket()
            if self._was_connected:
                backoff = 0.1
            self._was_connected = False
            if not self._closing:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._sock is not None:
                self._client.loop_misc()

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            log.warning("MQTT broker refused the connection: %s", reason_code)
            return
        self._was_connected = True
        for topic_filter in self._handlers:
            self._client.subscribe(topic_filter, qos=0)
        self._set_threadsafe(self._connected.set)
        log.info("connected to MQTT broker %s:%s", self.address.host, self.address.port)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if not self._closing:
            log.warning("MQTT broker connection lost: %s", reason_code)
        self._set_threadsafe(self._connected.clear)
        self._set_threadsafe(self._lost.set)

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        topic: str = message.topic
        payload: bytes = message.payload
        matches = self._paho_mod.topic_matches_sub
        for topic_filter, handlers in self._handlers.items():
            if matches(topic_filter, topic):
                for handler in handlers:
                    try:
                        handler(topic, payload)
                    except Exception:
                        log.exception("MQTT handler for %s failed on %s", topic_filter, topic)

    # paho socket callbacks; connect() runs in a worker thread so these may arrive off-loop ----

    def _set_threadsafe(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _on_socket_open(self, _c: Any, _u: Any, sock: Any) -> None:
        def attach() -> None:
            self._sock = sock
            assert self._loop is not None
            self._loop.add_reader(sock, self._readable)

        self._set_threadsafe(attach)

    def _on_socket_close(self, _c: Any, _u: Any, sock: Any) -> None:
        def detach() -> None:
            assert self._loop is not None
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
            if self._sock is sock:
                self._sock = None
            self._connected.clear()
            self._lost.set()

        self._set_threadsafe(detach)

    def _on_register_write(self, _c: Any, _u: Any, sock: Any) -> None:
        def watch() -> None:
            assert self._loop is not None
            with contextlib.suppress(Exception):
                self._loop.add_writer(sock, self._writable)

        self._set_threadsafe(watch)

    def _on_unregister_write(self, _c: Any, _u: Any, sock: Any) -> None:
        def unwatch() -> None:
            assert self._loop is not None
            with contextlib.suppress(Exception):
                self._loop.remove_writer(sock)

        self._set_threadsafe(unwatch)

    def _readable(self) -> None:
        self._client.loop_read()

    def _writable(self) -> None:
        self._client.loop_write()

    def _detach_socket(self) -> None:
        if self._sock is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock)
                self._loop.remove_writer(self._sock)
            self._sock = None
