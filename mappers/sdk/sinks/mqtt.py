"""MQTT push (``pushMethod.mqtt``): one connection per broker, JSON payloads.

The client is kubeshore's own (``kubeshore.mqtt``, the one edgecore's eventbus uses): on the mapper's
event loop, no thread of its own, with the same limits and reconnects. MQTT 3.1.1 QoS 2 is not
spoken by it; a target asking for QoS 2 is sent at QoS 1 (at least once), said once in the log.

Payload (KubeEdge's template sends plain text ``time is ... <topic>: <value>``; kubeshore sends JSON):
``{"namespace","deviceName","propertyName","value","type","timestamp"}`` with ``timestamp`` in ms.
"""

from __future__ import annotations

import json
import logging
import ssl
import uuid

from kubeshore.mqtt import BrokerAddress, MqttClient
from mappers.sdk._types import MqttPush
from mappers.sdk.sinks._buffer import Item, SinkBackend

log = logging.getLogger("mappers.sinks")


class MqttSink(SinkBackend):
    def __init__(
        self,
        address: str,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        try:
            broker = BrokerAddress.parse(address)
        except ValueError as exc:
            raise ValueError(f"pushMethod.mqtt.address: {exc}") from None
        self.label = f"mqtt {broker.host}:{broker.port}"
        self._client = MqttClient(
            address,
            f"kubeshore-mapper-{uuid.uuid4().hex[:12]}",
            max_backoff=5.0,
            username=username,
            password=password,
            tls=tls,
        )
        self._started = False
        self._warned_qos2 = False

    async def send(self, batch: list[Item]) -> None:
        if not self._started:
            self._started = True
            await self._client.start()
        if not self._client.connected:
            raise ConnectionError("not connected to the broker")
        for target, reading in batch:
            assert isinstance(target, MqttPush)
            qos = target.qos
            if qos > 1:
                qos = 1
                if not self._warned_qos2:
                    self._warned_qos2 = True
                    log.warning("sink %s: QoS 2 is sent as QoS 1 (at least once)", self.label)
            payload = json.dumps(reading.as_json())
            if not self._client.publish(target.topic, payload, qos=qos, retain=target.retained):
                raise ConnectionError("the broker is not reading or too much waits for it")

    async def close(self) -> None:
        await self._client.stop()
