"""Devices explain themselves, seen through kubectl as a user sees them: conditions, Events, printer
columns, the refused patch naming the property, and ``unknown`` while the node is not ready.

Real processes: standalone cloudcore (embedded API server), kubeshore join + edgecore, mosquitto
and the SDK's virtual mapper (``kubeshore mapper run virtual``); edgecore is frozen with SIGSTOP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import mosquitto
from _stack import Stack, wait_for

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return doc


class _Stack(Stack):
    def reason(self, kind: str, name: str, ctype: str = "Reporting") -> str:
        return str(self.conditions(kind, name).get(ctype, {}).get("reason", ""))

    def events(self, name: str) -> dict[str, str]:
        """reason -> message of the Events about Device ``name`` (as kubectl describe finds them)."""
        out = self.kubectl(
            "get",
            "events",
            "-o",
            "json",
            "--field-selector",
            f"involvedObject.name={name},involvedObject.kind=Device",
        )
        return {e["reason"]: e["message"] for e in json.loads(out)["items"]}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[_Stack]:
    with mosquitto() as broker:
        s = _Stack(tmp_path, broker)
        try:
            yield s
        finally:
            s.stop_all()


def test_devices_say_why_they_are_silent(stack: _Stack) -> None:
    stack.start_cloudcore(nodeGracePeriod=4.0, keepaliveTimeout=3.0)
    stack.join_edge()
    stack.start_edgecore()
    model = _example("devicemodel-virtual-thermometer.yaml")
    device = _example("device-virtual-thermometer.yaml")
    stack.kubectl("apply", "-f", "-", stdin=json.dumps(model))
    stack.kubectl("apply", "-f", "-", stdin=json.dumps(device))

    # No mapper for the protocol on the node: the condition, the Event, the printer column.
    wait_for(lambda: stack.reason("device", "thermometer-1") == "NoMapper", 60, "Reporting=NoMapper")
    wait_for(lambda: stack.reason("devicestatus", "thermometer-1") == "NoMapper", 30, "in DeviceStatus")
    mapper = stack.conditions("devicestatus", "thermometer-1")["MapperAvailable"]
    assert mapper["status"] == "False" and "no mapper for protocol virtual" in mapper["message"], mapper
    assert "edge-1" in mapper["message"]
    wait_for(lambda: "NoMapper" in stack.events("thermometer-1"), 30, "NoMapper event")
    table = stack.kubectl("get", "devicestatus", "thermometer-1")
    assert "REASON" in table.splitlines()[0] and "NoMapper" in table, table
    explained = stack.kubectl("explain", "device.spec")
    assert "<no description>" not in explained and "selects the mapper" in explained, explained
    described = stack.kubectl("describe", "device", "thermometer-1")
    assert "NoMapper" in described and "no mapper for protocol virtual" in described, described

    # A desired value that cannot be a FLOAT is refused by the API, naming the property.
    bad = [{"op": "replace", "path": "/spec/properties/2/desired/value", "value": "hot"}]
    refused = subprocess.run(
        ["kubectl", "--kubeconfig", stack.kubeconfig, "patch", "device", "thermometer-1", "--type=json",
         "-p", json.dumps(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0, refused.stdout
    assert "spec.properties[2].desired.value" in refused.stderr, refused.stderr
    assert "target-temperature" in refused.stderr and "FLOAT" in refused.stderr, refused.stderr

    # A Device naming a model that does not exist is accepted, says so, and reports nothing.
    orphan = json.loads(json.dumps(device))
    orphan["metadata"]["name"] = "orphan-1"
    orphan["spec"]["deviceModelRef"]["name"] = "no-such-model"
    for prop in orphan["spec"]["properties"]:
        prop.pop("desired", None)
    stack.kubectl("apply", "-f", "-", stdin=json.dumps(orphan))
    wait_for(lambda: stack.reason("device", "orphan-1", "ModelFound") == "ModelNotFound", 30, "ModelNotFound")
    wait_for(lambda: "ModelNotFound" in stack.events("orphan-1"), 30, "ModelNotFound event")

    # The mapper comes: the device reports; a desired value it refuses (above the maximum) shows.
    stack.start(
        "mapper", str(Path(sys.executable).parent / "kubeshore"), "mapper", "run", "virtual",
        "--edgecore-sock", str(stack.edge_dir / "dmi.sock"), "--socket", str(stack.tmp / "virtual.sock"),
        "--rest-port", "0",
    )  # fmt: skip
    wait_for(lambda: stack.reason("devicestatus", "thermometer-1") == "Online", 60, "Reporting=Online")
    assert stack.conditions("device", "thermometer-1")["MapperAvailable"]["status"] == "True"
    assert stack.state("thermometer-1") == "online"
    too_hot = [{"op": "replace", "path": "/spec/properties/2/desired/value", "value": "45"}]
    stack.kubectl("patch", "device", "thermometer-1", "--type=json", "-p", json.dumps(too_hot))
    wait_for(
        lambda: stack.reason("devicestatus", "thermometer-1", "DesiredApplied") == "DesiredRefused",
        60,
        "DesiredApplied=False",
    )
    refusal = stack.conditions("devicestatus", "thermometer-1")["DesiredApplied"]["message"]
    assert "target-temperature" in refusal and "maximum" in refusal, refusal
    wait_for(lambda: "DesiredRefused" in stack.events("thermometer-1"), 30, "DesiredRefused event")
    assert "orphan-1" not in stack.kubectl(
        "get", "devicestatus", "orphan-1", "-o", "jsonpath={.status.twins}"
    )
    assert stack.state("orphan-1") != "online"

    # The node freezes: its devices become unknown with the reason; it thaws: online again.
    edgecore = stack.procs["edgecore"]
    os.kill(edgecore.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: stack.state("thermometer-1") == "unknown", 60, "state unknown")
        assert stack.reason("devicestatus", "thermometer-1") == "NodeNotReady"
        wait_for(lambda: "NodeNotReady" in stack.events("thermometer-1"), 30, "NodeNotReady event")
    finally:
        os.kill(edgecore.pid, signal.SIGCONT)
    wait_for(lambda: stack.state("thermometer-1") == "online", 60, "online again")
