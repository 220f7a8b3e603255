"""End to end with real processes: standalone cloudcore, kubeshore join + edgecore, mosquitto and a
mapper process written against the DMI proto. Assertions use kubectl, MQTT and the mapper's log
of the DMI calls it received. The mapper and edgecore are killed with -9 and restarted."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _peers import mosquitto
from _stack import Stack, wait_for

from edgecore.eventbus import MqttClient

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
BASE = "$hw/events/device/default/thermo-1"

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "thermometer", "namespace": "default"},
    "spec": {
        "protocol": "virtual",
        "protocolConfigData": {"interval": 100},
        "properties": [
            {
                "name": "temp",
                "type": "INT",
                "accessMode": "ReadWrite",
                "visitors": {"protocolName": "virtual", "configData": {"min": 0, "max": 100}},
            },
            {"name": "ticks", "type": "STRING", "accessMode": "ReadOnly"},
        ],
    },
}
DEVICE = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "Device",
    "metadata": {"name": "thermo-1", "namespace": "default"},
    "spec": {
        "deviceModelRef": {"name": "thermometer"},
        "nodeName": "edge-1",
        "protocol": {"protocolName": "virtual", "configData": {"seed": "abc"}},
        "properties": [
            {
                "name": "temp",
                "desired": {"value": "30"},
                "reportToCloud": True,
                "visitors": {"protocolName": "virtual", "configData": {"max": 50}},
            },
            {"name": "ticks", "reportToCloud": True},
        ],
        "stateReport": {"reportToCloud": True, "reportCycle": 500},
    },
}


class DeviceStack(Stack):
    """The shared stack plus the recording test mapper of ``testmapper.py`` serving thermo-1."""

    def __init__(self, tmp: Path, broker: str) -> None:
        super().__init__(tmp, broker)
        self.calls = tmp / "mapper-calls.jsonl"

    def start_mapper(self) -> None:
        self.start(
            "mapper", sys.executable, str(HERE / "testmapper.py"),
            "--edgecore-sock", str(self.edge_dir / "dmi.sock"), "--socket", str(self.tmp / "virtual.sock"),
            "--record", str(self.calls), "--period", "0.3",
        )  # fmt: skip

    def mapper_calls(self, call: str) -> list[dict[str, Any]]:
        if not self.calls.exists():
            return []
        out = []
        for line in self.calls.read_text().splitlines():
            rec = json.loads(line)
            if rec["call"] == call:
                out.append(rec["msg"])
        return out

    def patch_desired(self, value: str) -> None:
        op = [{"op": "replace", "path": "/spec/properties/0/desired/value", "value": value}]
        self.kubectl("patch", "device", "thermo-1", "-n", "default", "--type=json", "-p", json.dumps(op))

    def spec_desired(self) -> str:
        dev = json.loads(self.kubectl("get", "device", "thermo-1", "-n", "default", "-o", "json"))
        return str(dev["spec"]["properties"][0]["desired"]["value"])

    def thermo(self) -> dict[str, Any]:
        return self.status("thermo-1")

    def thermo_reported(self) -> dict[str, str]:
        return self.reported("thermo-1")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[DeviceStack]:
    with mosquitto() as broker:
        s = DeviceStack(tmp_path, broker)
        try:
            yield s
        finally:
            s.stop_all()


def _mapper_has_device(stack: DeviceStack, desired: str) -> bool:
    for msg in stack.mapper_calls("RegisterDevice") + stack.mapper_calls("UpdateDevice"):
        dev = msg["device"]
        if (
            dev["name"] == "thermo-1"
            and dev["spec"]["properties"][0].get("desired", {}).get("value") == desired
        ):
            return True
    for msg in stack.mapper_calls("MapperRegister"):
        for dev in msg.get("deviceList") or []:
            if (
                dev["name"] == "thermo-1"
                and dev["spec"]["properties"][0].get("desired", {}).get("value") == desired
            ):
                return True
    return False


async def test_device_end_to_end(stack: DeviceStack) -> None:
    run = asyncio.to_thread
    stack.start_cloudcore()
    stack.join_edge()
    stack.start_edgecore()
    stack.start_mapper()
    app = MqttClient(stack.broker, "e2e-app")
    seen: list[tuple[str, dict[str, Any]]] = []
    app.subscribe(BASE + "/twin/update/#", lambda t, p: seen.append((t, json.loads(p))))
    await app.start()
    try:
        await run(stack.kubectl, "apply", "-f", "-", stdin=json.dumps(MODEL))
        await run(stack.kubectl, "apply", "-f", "-", stdin=json.dumps(DEVICE))

        # The mapper gets the device with the right protocol, visitors (model + device merged) and desired.
        await run(wait_for, lambda: _mapper_has_device(stack, "30"), 60, "mapper has thermo-1")
        reg = (stack.mapper_calls("RegisterDevice") or [{}])[0].get("device") or next(
            d for m in stack.mapper_calls("MapperRegister") for d in m.get("deviceList") or []
        )
        assert reg["spec"]["protocol"]["protocolName"] == "virtual"
        visitor = reg["spec"]["properties"][0]["visitors"]
        assert visitor["protocolName"] == "virtual"
        assert set(visitor["configData"]["data"]) == {"min", "max"}
        assert set(reg["spec"]["protocol"]["configData"]["data"]) == {"interval", "seed"}

        # Its reports show in kubectl get devicestatus.
        await run(wait_for, lambda: stack.thermo_reported().get("temp") == "30", 60, "reported temp")
        await run(wait_for, lambda: stack.thermo_reported().get("ticks"), 30, "reported ticks")
        # Twins and state reach DeviceStatus in separate coalesced writes; wait for both.
        await run(wait_for, lambda: stack.thermo()["status"].get("state") == "online", 30, "state online")
        st = (await run(stack.thermo))["status"]
        assert st["state"] == "online" and st["lastOnlineTime"].endswith("Z")
        temp = next(t for t in st["twins"] if t["propertyName"] == "temp")
        assert temp["reported"]["metadata"]["type"] == "int" and temp["reported"]["metadata"]["timestamp"]
        assert temp["observedDesired"]["value"] == "30"

        # What an operator scrapes: both sides count the reports that just flowed.
        edge_ready = await run(stack.scrape, "edgecore", "/readyz?verbose")
        assert edge_ready[0] == 200 and "[+]store ok" in edge_ready[1], edge_ready
        edge = await run(stack.samples, "edgecore")
        assert edge["edgecore_cloud_connected"] == 1 and edge["edgecore_devices"] == 1, edge
        assert edge["edgecore_registered_mappers"] == 1 and edge["edgecore_twin_updates_total"] >= 1
        assert edge['edgecore_dmi_calls_total{result="OK",rpc="ReportDeviceStatus"}'] >= 1
        assert edge["edgecore_messages_sent_total"] >= 1 and "edgecore_outbox_depth" in edge
        cloud = await run(stack.samples, "cloudcore")
        assert cloud['devicecontroller_status_writes_total{result="ok"}'] >= 1, cloud
        assert cloud["devicecontroller_twin_updates_total"] >= 1 and cloud["cloudhub_connected_nodes"] == 1
        assert "devicecontroller_status_queue_depth" in cloud
        assert (await run(stack.scrape, "cloudcore", "/readyz"))[0] == 200
        for name in ("cloudcore", "edgecore"):
            lines = (stack.tmp / f"{name}.log").read_text().splitlines()
            records = [json.loads(line) for line in lines if line.startswith("{")]
            assert records and all({"ts", "level", "logger", "msg"} <= r.keys() for r in records), name

        # kubectl patch of a desired value reaches the mapper; MQTT shows update, document and delta.
        await run(stack.patch_desired, "35")
        await run(wait_for, lambda: _mapper_has_device(stack, "35"), 30, "UpdateDevice with desired 35")
        await run(wait_for, lambda: stack.thermo_reported().get("temp") == "35", 30, "reported 35")
        topics = {t for t, _ in seen}
        assert BASE + "/twin/update/document" in topics
        assert BASE + "/twin/update/delta" in topics
        assert any(t.endswith("/delta") and d["delta"].get("temp") == "35" for t, d in seen)

        # An application sets a desired value over MQTT: /result answers, the mapper and the cloud get it.
        app.publish(
            BASE + "/twin/update",
            json.dumps({"event_id": "app-1", "twin": {"temp": {"expected": {"value": "40"}}}}),
        )

        def answered() -> bool:
            return any(t.endswith("/update/result") and d.get("event_id") == "app-1" for t, d in seen)

        await run(wait_for, answered, 10, "update result")
        await run(wait_for, lambda: _mapper_has_device(stack, "40"), 30, "UpdateDevice with desired 40")
        await run(wait_for, lambda: stack.spec_desired() == "40", 30, "desired 40 in the Device spec")

        # Mapper killed and restarted: it registers again and its device is served without user action.
        stack.kill9("mapper")
        before = len(stack.mapper_calls("MapperRegister"))
        stack.start_mapper()
        await run(
            wait_for, lambda: len(stack.mapper_calls("MapperRegister")) > before, 30, "mapper re-registered"
        )
        last = stack.mapper_calls("MapperRegister")[-1]
        assert [d["name"] for d in last.get("deviceList") or []] == ["thermo-1"]
        ticks = (await run(stack.thermo_reported))["ticks"]
        await run(
            wait_for, lambda: stack.thermo_reported()["ticks"] != ticks, 30, "reports after mapper restart"
        )

        # edgecore killed and restarted: the mapper registration is restored, reports land again and
        # changes reach the mapper.
        stack.kill9("edgecore")
        stack.start_edgecore()
        ticks = (await run(stack.thermo_reported))["ticks"]
        await run(
            wait_for, lambda: stack.thermo_reported()["ticks"] != ticks, 60, "reports after edgecore restart"
        )
        await run(stack.patch_desired, "45")
        await run(
            wait_for, lambda: _mapper_has_device(stack, "45"), 30, "UpdateDevice after edgecore restart"
        )
    finally:
        await app.stop()
