"""End to end with real processes: standalone cloudcore, kubeshore join + edgecore, mosquitto and a
mapper process written against the DMI proto. Assertions use kubectl, MQTT and the mapper's log
of the DMI calls it received. The mapper and edgecore are killed with -9 and restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import mosquitto

from edgecore.eventbus import MqttClient

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
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


def _samples(text: str) -> dict[str, float]:
    """Prometheus text exposition as {"name{labels}": value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def wait_for(check: Callable[[], Any], within: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, subprocess.SubprocessError, ValueError, KeyError, IndexError, TypeError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached within {within}s (last: {last!r})")


class Stack:
    def __init__(self, tmp: Path, broker: str) -> None:
        self.tmp = tmp
        self.broker = broker
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, Any] = {}
        self.calls = tmp / "mapper-calls.jsonl"

    def start(self, name: str, *argv: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(list(argv), stdout=log, stderr=log, start_new_session=True)

    def kill9(self, name: str) -> None:
        p = self.procs.pop(name)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def start_cloudcore(self) -> None:
        data = self.tmp / "cloud"
        self.start(
            "cloudcore", str(BIN / "cloudcore"), "--standalone", "--data-dir", str(data),
            "--bind", "127.0.0.1", "--websocket-port", "0", "--https-port", "0",
            "--apiserver-port", "0", "--metrics-port", "0", "--log-format", "json",
        )  # fmt: skip
        state = data / "cloudcore.json"
        wait_for(state.exists, 60, "cloudcore.json")
        self.ports = json.loads(state.read_text())
        self.kubeconfig = str(data / "admin.kubeconfig")

    def join_edge(self) -> None:
        token = subprocess.run(
            [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(self.tmp / "cloud")],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        self.edge_dir = self.tmp / "edge-1"
        subprocess.run(
            [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{self.ports['websocketPort']}",
             "--https-port", str(self.ports["httpsPort"]), "--token", token, "--node-name", "edge-1",
             "--data-dir", str(self.edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
             "--mqtt-url", self.broker,
             "--dmi-socket", str(self.edge_dir / "dmi.sock")],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        import yaml

        cfg_path = self.edge_dir / "edgecore.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["edgeHub"].update({"heartbeat": 1.0, "reconnectInitial": 0.2, "reconnectMax": 1.0})
        cfg_path.write_text(yaml.safe_dump(cfg))

    def start_edgecore(self) -> None:
        self.start(
            "edgecore", str(BIN / "edgecore"), "--config", str(self.edge_dir / "edgecore.yaml"),
            "--log-format", "json",
        )  # fmt: skip

    def scrape(self, component: str, path: str = "/metrics") -> tuple[int, str]:
        """(status, body) of ``path`` on cloudcore's or edgecore's metrics port."""
        if component == "cloudcore":
            port = self.ports["metricsPort"]
        else:
            port = json.loads((self.edge_dir / "edgecore.json").read_text())["metricsPort"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def start_mapper(self) -> None:
        self.start(
            "mapper", sys.executable, str(HERE / "testmapper.py"),
            "--edgecore-sock", str(self.edge_dir / "dmi.sock"), "--socket", str(self.tmp / "virtual.sock"),
            "--record", str(self.calls), "--period", "0.3",
        )  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        if out.returncode != 0:
            raise subprocess.SubprocessError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

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

    def status(self) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "devicestatus", "thermo-1", "-n", "default", "-o", "json"))

    def reported(self) -> dict[str, str]:
        twins = self.status().get("status", {}).get("twins") or []
        return {t["propertyName"]: t.get("reported", {}).get("value") for t in twins}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with mosquitto() as broker:
        s = Stack(tmp_path, broker)
        try:
            yield s
        finally:
            s.stop_all()


def _mapper_has_device(stack: Stack, desired: str) -> bool:
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


async def test_device_end_to_end(stack: Stack) -> None:
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
        await run(wait_for, lambda: stack.reported().get("temp") == "30", 60, "reported temp")
        await run(wait_for, lambda: stack.reported().get("ticks"), 30, "reported ticks")
        # Twins and state reach DeviceStatus in separate coalesced writes; wait for both.
        await run(wait_for, lambda: stack.status()["status"].get("state") == "online", 30, "state online")
        st = (await run(stack.status))["status"]
        assert st["state"] == "online" and st["lastOnlineTime"].endswith("Z")
        temp = next(t for t in st["twins"] if t["propertyName"] == "temp")
        assert temp["reported"]["metadata"]["type"] == "int" and temp["reported"]["metadata"]["timestamp"]
        assert temp["observedDesired"]["value"] == "30"

        # What an operator scrapes: both sides count the reports that just flowed.
        edge_ready = await run(stack.scrape, "edgecore", "/readyz?verbose")
        assert edge_ready[0] == 200 and "[+]store ok" in edge_ready[1], edge_ready
        edge = _samples((await run(stack.scrape, "edgecore"))[1])
        assert edge["edgecore_cloud_connected"] == 1 and edge["edgecore_devices"] == 1, edge
        assert edge["edgecore_registered_mappers"] == 1 and edge["edgecore_twin_updates_total"] >= 1
        assert edge['edgecore_dmi_calls_total{result="OK",rpc="ReportDeviceStatus"}'] >= 1
        assert edge["edgecore_messages_sent_total"] >= 1 and "edgecore_outbox_depth" in edge
        cloud = _samples((await run(stack.scrape, "cloudcore"))[1])
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
        await run(wait_for, lambda: stack.reported().get("temp") == "35", 30, "reported 35")
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
        ticks = (await run(stack.reported))["ticks"]
        await run(wait_for, lambda: stack.reported()["ticks"] != ticks, 30, "reports after mapper restart")

        # edgecore killed and restarted: the mapper registration is restored, reports land again and
        # changes reach the mapper.
        stack.kill9("edgecore")
        stack.start_edgecore()
        ticks = (await run(stack.reported))["ticks"]
        await run(wait_for, lambda: stack.reported()["ticks"] != ticks, 60, "reports after edgecore restart")
        await run(stack.patch_desired, "45")
        await run(
            wait_for, lambda: _mapper_has_device(stack, "45"), 30, "UpdateDevice after edgecore restart"
        )
    finally:
        await app.stop()
