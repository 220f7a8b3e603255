from __future__ import annotations

import asyncio

from _peers import free_port, mosquitto

from edgecore.eventbus import BrokerAddress, MqttClient


def test_broker_address_forms() -> None:
    assert BrokerAddress.parse("tcp://127.0.0.1:1883") == BrokerAddress("127.0.0.1", 1883)
    assert BrokerAddress.parse("mqtt://broker") == BrokerAddress("broker", 1883)
    assert BrokerAddress.parse("host:1884") == BrokerAddress("host", 1884)


async def test_publish_subscribe_roundtrip(broker_url: str) -> None:
    a = MqttClient(broker_url, "a")
    b = MqttClient(broker_url, "b")
    got: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    b.subscribe("$hw/events/device/+/+/twin/+", lambda t, p: got.put_nowait((t, p)))
    await a.start()
    await b.start()
    try:
        await asyncio.wait_for(a.wait_connected(), 5)
        await asyncio.wait_for(b.wait_connected(), 5)
        await asyncio.sleep(0.1)  # SUBACK
        assert a.publish("$hw/events/device/default/d1/twin/get", b'{"event_id":"1"}')
        topic, payload = await asyncio.wait_for(got.get(), 5)
        assert topic == "$hw/events/device/default/d1/twin/get"
        assert payload == b'{"event_id":"1"}'
    finally:
        await a.stop()
        await b.stop()


async def test_reconnects_and_resubscribes_after_broker_restart() -> None:
    port = free_port()
    got: asyncio.Queue[bytes] = asyncio.Queue()
    client = MqttClient(f"tcp://127.0.0.1:{port}", "sub", max_backoff=0.3)
    client.subscribe("t/#", lambda _t, p: got.put_nowait(p))
    await client.start()  # the broker is not there yet: the client keeps trying
    try:
        await asyncio.sleep(0.3)
        assert not client.connected
        for round_ in range(2):
            with mosquitto(port) as url:
                await asyncio.wait_for(client.wait_connected(), 10)
                pub = MqttClient(url, "pub")
                await pub.start()
                await asyncio.wait_for(pub.wait_connected(), 5)
                await asyncio.sleep(0.2)
                pub.publish("t/x", f"hello {round_}")
                assert await asyncio.wait_for(got.get(), 5) == f"hello {round_}".encode()
                await pub.stop()
            await asyncio.sleep(0.2)
            assert not client.connected
            assert not client.publish("t/x", "dropped")
    finally:
        await client.stop()
