"""Pushes observed by real receivers: mosquitto, an HTTP server, SQLite, Redis and MariaDB."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pymysql
import redis
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from mappers.sdk import DeviceConfig, DeviceModel, ModelProperty, PropertyConfig, PropertyType
from mappers.sdk._device import RuntimeSettings
from mappers.sdk._mapper import Mapper
from mappers.sdk._types import HttpPush, MqttPush, MySQLPush, PushMethod, RedisPush
from mappers.sdk.sinks import SinkHub
from mappers.sdk.sinks.sqlite import SqliteSink
from mappers.virtual import VirtualDriver

Until = Callable[..., Coroutine[Any, Any, None]]
FAST = RuntimeSettings(read_timeout_s=1, reconnect_min_s=0.1, reconnect_max_s=0.2)
MODEL = DeviceModel("default", "m", {"count": ModelProperty("count", PropertyType.INT)})


def counter_device(push: PushMethod, name: str = "meter") -> DeviceConfig:
    prop = PropertyConfig("count", {"kind": "counter"}, collect_cycle_ms=30, report_cycle_ms=30, push=push)
    return DeviceConfig("default", name, "m", "virtual", {}, (prop,))


class Subscriber:
    """A real MQTT client collecting what arrives on a topic."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, msg: self.messages.append(json.loads(msg.payload))
        self.client.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_pushes_reach_real_receivers(
    mosquitto_factory: Any,
    redis_server: int,
    mariadb: tuple[int, str],
    port: Callable[[], int],
    tmp_path: Path,
    until: Until,
    monkeypatch: Any,
) -> None:
    monkeypatch.delenv("PASSWORD", raising=False)
    broker = mosquitto_factory(port())
    broker.start()
    sub = Subscriber(broker.port, "plant/meter/#")

    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/ingest", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    http_port = port()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()

    db_port, database = mariadb
    push = PushMethod(
        http=HttpPush("http://127.0.0.1", http_port, "/ingest"),
        mqtt=MqttPush(f"tcp://127.0.0.1:{broker.port}", "plant/meter/count", qos=1),
        redis=RedisPush(f"127.0.0.1:{redis_server}", 0),
        mysql=MySQLPush(f"127.0.0.1:{db_port}", database, "root"),
    )
    sinks = SinkHub()
    sinks.add_local(SqliteSink(tmp_path / "series.db"))
    mapper = Mapper(VirtualDriver, settings=FAST, sinks=sinks)
    await mapper.upsert_model(MODEL)
    await mapper.add_device(counter_device(push))
    rdb = redis.Redis(port=redis_server)
    try:
        await until(lambda: len(sub.messages) >= 3, what="MQTT messages")
        msg = sub.messages[0]
        assert msg == msg | {
            "namespace": "default",
            "deviceName": "meter",
            "propertyName": "count",
            "type": "INT",
        }
        assert int(msg["value"]) >= 1 and msg["timestamp"] > 1_700_000_000_000

        await until(lambda: len(received) >= 3, what="HTTP posts")
        assert received[0]["deviceName"] == "meter" and received[0]["propertyName"] == "count"

        await until(lambda: rdb.zcard("meter") >= 3, what="Redis rows")
        member = json.loads(rdb.zrange("meter", 0, 0)[0])
        assert member["propertyName"] == "count"

        def mysql_rows() -> int:
            conn = pymysql.connect(host="127.0.0.1", port=db_port, user="root", database=database)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT COUNT(*), MAX(CAST(field AS UNSIGNED)) FROM `default/meter/count`")
                    count, _ = cur.fetchone()
                    return int(count)
            except pymysql.err.ProgrammingError:
                return 0
            finally:
                conn.close()

        await until(lambda: asyncio.to_thread(mysql_rows), what="MySQL rows")
        await until(lambda: _sqlite_rows(tmp_path / "series.db") >= 5, what="SQLite rows")
    finally:
        await mapper.close()
        await runner.cleanup()
        sub.close()
        rdb.close()


def _sqlite_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM readings WHERE device = 'meter'").fetchone()[0])
    finally:
        conn.close()


async def test_sink_down_buffers_bounded_and_never_blocks(
    mosquitto_factory: Any, port: Callable[[], int], until: Until
) -> None:
    broker_port = port()
    push = PushMethod(mqtt=MqttPush(f"tcp://127.0.0.1:{broker_port}", "meter/count"))
    sinks = SinkHub(capacity=5)
    mapper = Mapper(VirtualDriver, settings=FAST, sinks=sinks)
    await mapper.upsert_model(MODEL)
    await mapper.add_device(counter_device(push))
    rt = mapper.get("default", "meter")
    try:
        # no broker: collection goes on, the sink keeps only the newest 5 readings and says so
        await until(lambda: sinks.sinks() and sinks.sinks()[0].dropped > 3, what="drops counted")
        sink = sinks.sinks()[0]
        assert sink.buffered <= 5 and not sink.up
        before = int(rt.twins["count"].reading.value)  # type: ignore[union-attr]
        await until(lambda: int(rt.twins["count"].reading.value) > before + 5)  # type: ignore[union-attr]

        broker = mosquitto_factory(broker_port)
        broker.start()
        sub = Subscriber(broker_port, "meter/count")
        try:
            await until(lambda: sink.up and sink.sent > 0, what="delivery resumes", within=20)
            await until(lambda: len(sub.messages) >= 2, what="fresh messages")
        finally:
            sub.close()
    finally:
        await mapper.close()
