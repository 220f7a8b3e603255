from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from twinfixtures import device, model

from edgecore.devicetwin import DeviceTwin, TwinError, TwinStore


class FakeCloud:
    def __init__(self) -> None:
        self.connected = True
        self.sent: list[dict[str, Any]] = []

    async def send(self, *, resource: str, operation: str, group: str, content: Any) -> str:
        msg_id = f"m{len(self.sent)}"
        self.sent.append({"id": msg_id, "resource": resource, "operation": operation, "content": content})
        return msg_id


async def make(tmp_path: Path, cloud: FakeCloud | None = None) -> tuple[TwinStore, DeviceTwin]:
    store = TwinStore(tmp_path / "twin.db", flush_interval=0.01)
    await store.open()
    twin = DeviceTwin(store, "edge1", cloud=cloud, sync_interval=3600)
    await twin.start()
    return store, twin


async def test_spec_precreates_twins_with_model_types_and_desired(tmp_path: Path) -> None:
    store, twin = await make(tmp_path)
    await twin.upsert_model(model())
    await twin.upsert_device(device())
    dev = store.devices["default/t1"]
    assert set(dev.twins) == {"temp", "mode", "on"}
    assert dev.twins["temp"].attr_type == "int" and dev.twins["temp"].expected == "30"
    assert dev.twins["on"].attr_type == "boolean" and dev.twins["on"].expected is None
    assert not dev.twins["temp"].optional
    await twin.stop()
    await store.close()


async def test_state_survives_restart(tmp_path: Path) -> None:
    store, twin = await make(tmp_path)
    await twin.upsert_model(model())
    await twin.upsert_device(device())
    twin.report_status("default", "t1", [("temp", "21", {"timestamp": "1000"}, "30")])
    twin.report_state("default", "t1", "online")
    await twin.stop()
    await store.close()

    store2, twin2 = await make(tmp_path)
    dev = store2.devices["default/t1"]
    assert dev.twins["temp"].actual == "21" and dev.twins["temp"].actual_ts == 1000
    assert dev.twins["temp"].observed == "30"
    assert dev.state == "online" and dev.last_online
    assert store2.models["default/thermo"]["spec"]["protocol"] == "virtual"
    await twin2.stop()
    await store2.close()


async def test_stale_report_never_overwrites_newer(tmp_path: Path) -> None:
    store, twin = await make(tmp_path)
    await twin.upsert_model(model())
    await twin.upsert_device(device())
    twin.report_status("default", "t1", [("temp", "25", {"timestamp": "2000"}, None)])
    changes = twin.report_status("default", "t1", [("temp", "24", {"timestamp": "1500"}, None)])
    assert changes == []
    t = store.devices["default/t1"].twins["temp"]
    assert (t.actual, t.actual_ts, t.actual_version) == ("25", 2000, 1)
    twin.report_status("default", "t1", [("temp", "26", {"timestamp": "2500"}, None)])
    assert (t.actual, t.actual_version) == ("26", 2)
    await twin.stop()
    await store.close()


async def test_wrong_type_and_unknown_device_are_rejected(tmp_path: Path) -> None:
    store, twin = await make(tmp_path)
    await twin.upsert_model(model())
    await twin.upsert_device(device())
    with pytest.raises(TwinError) as err:
        twin.report_status("default", "t1", [("temp", "warm", {}, None)])
    assert err.value.code == 400 and "not of type int" in err.value.reason
    with pytest.raises(TwinError) as err:
        twin.report_status("default", "nope", [("temp", "1", {}, None)])
    assert err.value.code == 404
    assert store.devices["default/t1"].twins["temp"].actual is None
    await twin.stop()
    await store.close()


async def test_spec_desired_change_wins_but_unchanged_spec_keeps_edge_value(tmp_path: Path) -> None:
    store, twin = await make(tmp_path)
    await twin.upsert_model(model())
    await twin.upsert_device(device(desired="30"))
    twin.handle_mqtt(
        "$hw/events/device/default/t1/twin/update",
        b'{"event_id":"e","twin":{"temp":{"expected":{"value":"40"}}}}',
    )
    t = store.devices["default/t1"].twins["temp"]
    assert t.expected == "40" and t.expected_from_edge
    assert twin.device_for_mapper("default/t1")["spec"]["properties"][0]["desired"]["value"] == "40"
    # An unrelated Device update (same desired in the spec) must not revert the edge's value.
    await twin.upsert_device(device(desired="30", rv="21"))
    assert t.expected == "40"
    # The cloud catching up (spec now says 40) clears the edge marker.
    await twin.upsert_device(device(desired="40", rv="22"))
    assert t.expected == "40" and not t.expected_from_edge
    # A user editing the spec wins.
    await twin.upsert_device(device(desired="50", rv="23"))
    assert t.expected == "50"
    # An older Device than the stored one is ignored.
    await twin.upsert_device(device(desired="10", rv="5"))
    assert t.expected == "50"
    await twin.stop()
    await store.close()


async def test_cloud_sync_sends_newest_per_property_and_clears_on_ack(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.connected = False
    store, twin = await make(tmp_path, cloud)
    await twin.upsert_model(model())
    await twin.upsert_device(device())
    for i in range(5):
        twin.report_status("default", "t1", [("temp", str(20 + i), {}, "30")])
    twin.report_state("default", "t1", "online")
    assert await twin.sync_once() == 0  # offline: nothing sent, nothing lost
    cloud.connected = True
    twin.cloud_connection_changed(True)
    assert await twin.sync_once() == 2
    twin_msg = next(m for m in cloud.sent if m["resource"].endswith("twin/edge_updated"))
    assert twin_msg["resource"] == "device/default/t1/twin/edge_updated"
    assert twin_msg["content"]["twin"]["temp"]["actual"]["value"] == "24"
    assert twin_msg["content"]["twin"]["temp"]["expected"]["value"] == "30"
    # Nothing new: nothing sent, even though nothing is acknowledged yet.
    assert await twin.sync_once() == 0
    # Pipelined: a new report goes out without waiting for the reply to the previous message.
    twin.report_status("default", "t1", [("temp", "99", {}, None)])
    assert await twin.sync_once() == 1
    assert cloud.sent[-1]["content"]["twin"] == {"temp": cloud.sent[-1]["content"]["twin"]["temp"]}
    assert cloud.sent[-1]["content"]["twin"]["temp"]["actual"]["value"] == "99"
    for m in list(cloud.sent):
        await twin.handle_cloud_message(
            resource="twin", operation="response", content="OK", parent_id=m["id"]
        )
    t = store.devices["default/t1"].twins["temp"]
    assert not t.unsynced and store.devices["default/t1"].state_synced == 1
    # An unacknowledged message is sent again after retry_after.
    twin.report_status("default", "t1", [("temp", "100", {}, None)])
    assert await twin.sync_once() == 1
    twin.retry_after = 0.0
    await asyncio.sleep(0.01)
    assert await twin.sync_once() == 1
    assert cloud.sent[-1]["content"]["twin"]["temp"]["actual"]["value"] == "100"
    await twin.stop()
    await store.close()


async def test_device_messages_from_cloud(tmp_path: Path) -> None:
    store, twin = await make(tmp_path)
    await twin.handle_cloud_message(
        resource="default/devicemodel/thermo", operation="insert", content=model()
    )
    await twin.handle_cloud_message(resource="default/device/t1", operation="insert", content=device())
    assert "default/t1" in store.devices
    await twin.handle_cloud_message(
        resource="membership",
        operation="update",
        content={"added_devices": None, "removed_devices": [{"id": "default/t1", "name": "t1"}]},
    )
    assert "default/t1" not in store.devices
    await twin.handle_cloud_message(
        resource="default/devicemodel/thermo", operation="delete", content=model()
    )
    assert store.models == {}
    await asyncio.sleep(0)
    await twin.stop()
    await store.close()
