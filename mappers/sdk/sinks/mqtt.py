"""MQTT push (``pushMethod.mqtt``) with paho-mqtt: one connection per broker, JSON payloads.

Payload (KubeEdge's template sends plain text ``time is ... <topic>: <value>``; kubeshore sends JSON):
``{"namespace","deviceName","propertyName","value","type","timestamp"}`` with ``timestamp`` in ms.
"""

from __future__ import annotations

import json
import ssl
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mappers.sdk._types import MqttPush
from mappers.sdk.sinks._buffer import Item, SinkBackend


def broker_address(address: str) -> tuple[str, int]:
    """``mqtt://host:port``, ``tcp://host:port`` or ``host:port`` -> (host, port); port defaults to 1883."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if not parts.hostname:
        raise ValueError(f"pushMethod.mqtt.address {address!r} has no host")
    return parts.hostname, parts.port or 1883


class MqttSink(SinkBackend):
    def __init__(
        self,
        address: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        host, port = broker_address(address)
        self.label = f"mqtt {host}:{port}"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"kubeshore-mapper-{uuid.uuid4().hex[:12]}"
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls is not None:
            self._client.tls_set_context(tls)
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.connect_async(host, port)
        self._client.loop_start()

    async def send(self, batch: list[Item]) -> None:
        if not self._client.is_connected():
            raise ConnectionError("not connected to the broker")
        for target, reading in batch:
            assert isinstance(target, MqttPush)
            info = self._client.publish(
                target.topic, json.dumps(reading.as_json()), qos=target.qos, retain=target.retained
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(mqtt.error_string(info.rc))

    async def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
