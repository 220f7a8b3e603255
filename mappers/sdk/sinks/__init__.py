"""Where readings go besides edgecore: the Device's ``pushMethod`` targets and the SQLite time series.

:class:`SinkHub` owns one buffered sink per destination (one MQTT connection per broker, one HTTP
session per host, one database client per server), created on first use; drivers of unused sinks
are never imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mappers.sdk._types import HttpPush, MqttPush, MySQLPush, Reading, RedisPush
from mappers.sdk.config import MqttSinkConfig
from mappers.sdk.sinks._buffer import BufferedSink, SinkBackend

__all__ = ["BufferedSink", "SinkBackend", "SinkHub"]

Target = HttpPush | MqttPush | RedisPush | MySQLPush


def _key(target: Target) -> tuple[Any, ...]:
    if isinstance(target, MqttPush):
        return ("mqtt", target.address)
    if isinstance(target, HttpPush):
        return ("http", target.host_name, target.port)
    if isinstance(target, RedisPush):
        return ("redis", target.addr, target.db)
    return ("mysql", target.addr, target.database, target.user_name)


def _backend(target: Target, mqtt: MqttSinkConfig) -> SinkBackend:
    if isinstance(target, MqttPush):
        from mappers.sdk.sinks.mqtt import MqttSink

        tls = None
        if mqtt.tls.enable:
            from kubeshore.pki import client_tls_context

            t = mqtt.tls
            tls = client_tls_context(
                Path(t.ca_file) if t.ca_file else None,
                Path(t.cert_file) if t.cert_file else None,
                Path(t.key_file) if t.key_file else None,
            )
        return MqttSink(
            target.address,
            username=mqtt.username or None,
            password=mqtt.password if mqtt.username else None,
            tls=tls,
        )
    if isinstance(target, HttpPush):
        from mappers.sdk.sinks.http import HttpSink

        return HttpSink(f"{target.host_name}:{target.port}")
    if isinstance(target, RedisPush):
        from mappers.sdk.sinks.redis import RedisSink

        return RedisSink(target)
    from mappers.sdk.sinks.mysql import MySQLSink

    return MySQLSink(target)


class SinkHub:
    def __init__(self, *, capacity: int = 10_000, mqtt: MqttSinkConfig | None = None) -> None:
        self._capacity = capacity
        self._mqtt = mqtt or MqttSinkConfig()
        self._sinks: dict[tuple[Any, ...], BufferedSink] = {}
        self.local: BufferedSink | None = None

    def add_local(self, backend: SinkBackend) -> None:
        """The SQLite time series: receives every reading, not only pushed ones."""
        self.local = BufferedSink(backend, capacity=self._capacity)
        self.local.start()

    def record(self, reading: Reading) -> None:
        if self.local is not None:
            self.local.put(None, reading)

    def push(self, target: Target, reading: Reading) -> None:
        key = _key(target)
        sink = self._sinks.get(key)
        if sink is None:
            sink = BufferedSink(_backend(target, self._mqtt), capacity=self._capacity)
            sink.start()
            self._sinks[key] = sink
        sink.put(target, reading)

    def sinks(self) -> list[BufferedSink]:
        out = list(self._sinks.values())
        if self.local is not None:
            out.append(self.local)
        return out

    async def close(self) -> None:
        for sink in self.sinks():
            await sink.close()
        self._sinks.clear()
        self.local = None
