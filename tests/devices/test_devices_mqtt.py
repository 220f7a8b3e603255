from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from twinfixtures import device, model

from edgecore.devicetwin import DeviceTwin, TwinStore
from edgecore.eventbus import MqttClient

BASE = "$hw/events/device/default/t1"


class App:
    """An edge application on the broker: collects everything under $hw/events/#."""

    def __init__(self, url: str) -> None:
        self.client = MqttClient(url, "app")
        self.got: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.client.subscribe("$hw/events/#", lambda t, p: self.got.put_nowait((t, json.loads(p))))

    async def expect(self, topic: str) -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                t, doc = await self.got.get()
                if t == topic:
                    return doc


async def test_kubeedge_twin_topics(tmp_path: Path, broker_url: str) -> None:
    store = TwinStore(tmp_path / "twin.db", flush_interval=0.01)
    await store.open()
    bus = MqttClient(broker_url, "edgecore")
    twin = DeviceTwin(store, "edge1", mqtt=bus, sync_interval=3600)
    app = App(broker_url)
    await bus.start()
    await app.client.start()
    await twin.start()
    try:
        await asyncio.wait_for(bus.wait_connected(), 5)
        await asyncio.wait_for(app.client.wait_connected(), 5)
        await asyncio.sleep(0.2)
        await twin.upsert_model(model())
        await twin.upsert_device(device())
        upd = await app.expect("$hw/events/node/edge1/membership/updated")
        assert upd["added_devices"][0]["id"] == "default/t1"

        # A mapper-style report over MQTT: result, document and delta (desired 30 != reported 21).
        app.client.publish(
            BASE + "/twin/update",
            json.dumps({"event_id": "e1", "timestamp": 1, "twin": {"temp": {"actual": {"value": "21"}}}}),
        )
        result = await app.expect(BASE + "/twin/update/result")
        assert result["event_id"] == "e1"
        assert result["twin"]["temp"]["actual"]["value"] == "21"
        assert result["twin"]["temp"]["metadata"] == {"type": "int"}
        doc = await app.expect(BASE + "/twin/update/document")
        assert doc["twin"]["temp"]["last"]["expected"]["value"] == "30"
        assert "actual" not in doc["twin"]["temp"]["last"]
        assert doc["twin"]["temp"]["current"]["actual"]["value"] == "21"
        delta = await app.expect(BASE + "/twin/update/delta")
        assert delta["delta"]["temp"] == "30"

        # A DMI report reaches MQTT the same way.
        twin.report_status("default", "t1", [("temp", "22", {}, "30")])
        doc = await app.expect(BASE + "/twin/update/document")
        assert doc["twin"]["temp"]["current"]["actual"]["value"] == "22"

        app.client.publish(BASE + "/twin/get", json.dumps({"event_id": "g1"}))
        got = await app.expect(BASE + "/twin/get/result")
        assert got["event_id"] == "g1" and set(got["twin"]) == {"temp", "mode", "on"}

        app.client.publish(BASE + "/state/update", json.dumps({"event_id": "s1", "state": "online"}))
        st = await app.expect(BASE + "/state/update/result")
        assert st["device"]["state"] == "online" and st["device"]["lastOnlineTime"].endswith("Z")

        app.client.publish("$hw/events/node/edge1/membership/get", json.dumps({"event_id": "m1"}))
        mem = await app.expect("$hw/events/node/edge1/membership/get/result")
        assert [d["id"] for d in mem["devices"]] == ["default/t1"]
        assert mem["devices"][0]["state"] == "online"

        # Bad input: an error on /result with code and reason, and nothing else changes.
        for payload, code, words in (
            (b"{not json", 400, "not valid JSON"),
            (json.dumps({"twin": {"temp": {"actual": {"value": "hot"}}}}).encode(), 400, "not of type int"),
            (json.dumps({"twin": "x"}).encode(), 400, "twin must be an object"),
        ):
            app.client.publish(BASE + "/twin/update", payload)
            err = await app.expect(BASE + "/twin/update/result")
            assert err["code"] == code and words in err["reason"], err
        app.client.publish("$hw/events/device/default/ghost/twin/update", json.dumps({"twin": {}}))
        err = await app.expect("$hw/events/device/default/ghost/twin/update/result")
        assert err["code"] == 404 and "default/ghost" in err["reason"]
        app.client.publish(BASE + "/state/update", json.dumps({"state": "sleepy"}))
        err = await app.expect(BASE + "/state/update/result")
        assert err["code"] == 400
        assert store.devices["default/t1"].twins["temp"].actual == "22"

        # An application sets a desired value: stored as expected, marked for the mapper and the cloud.
        app.client.publish(
            BASE + "/twin/update", json.dumps({"twin": {"temp": {"expected": {"value": "35"}}}})
        )
        delta = await app.expect(BASE + "/twin/update/delta")
        assert delta["delta"]["temp"] == "35"
        assert twin.device_for_mapper("default/t1")["spec"]["properties"][0]["desired"]["value"] == "35"
    finally:
        await twin.stop()
        await app.client.stop()
        await bus.stop()
        await store.close()
