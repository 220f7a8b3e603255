"""KubeEdge's Go mapper (mapper-framework, ``virtual-mapper``) on kubeshore's edgecore, with kubeshore's
standalone cloudcore: the mapper registers over our DMI socket, receives a Device whose properties include
one with no ``desired`` (KubeEdge's mappers dereference it), reports twins that reach DeviceStatus, gets a
desired value written with kubectl, and is told to stop the device when the Device is deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import mosquitto
from _stack import Stack, wait_for

from tests.interop._kubeedge import VirtualMapper

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")

MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: lab-model, namespace: default}
spec:
  protocol: virtual-lab
  properties:
  - {name: count, type: INT, accessMode: ReadOnly}
  - {name: label, type: STRING, accessMode: ReadWrite}
"""

# ``count`` has no desired value: the property KubeEdge's Go mapper panicked on.
DEVICE = """
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: lab-1, namespace: default}
spec:
  deviceModelRef: {name: lab-model}
  nodeName: edge-1
  protocol: {protocolName: virtual-lab}
  properties:
  - name: count
    collectCycle: 300
    reportCycle: 300
    reportToCloud: true
    visitors: {protocolName: virtual-lab, configData: {dataType: int}}
  - name: label
    collectCycle: 300
    reportCycle: 300
    reportToCloud: true
    desired: {value: first}
    visitors: {protocolName: virtual-lab, configData: {dataType: string}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("go-mapper")
    with mosquitto() as broker:
        s = Stack(tmp, broker)
        try:
            s.start_cloudcore(deviceStatusFlushInterval=0.2)
            s.join_edge()
            s.start_edgecore()
            yield s
        finally:
            s.stop_all()


def _lab_lines(mapper: VirtualMapper, word: str) -> list[str]:
    # A mapper that died (a Go panic) fails the wait at once instead of at its deadline.
    assert mapper.procs.procs[mapper.name].poll() is None, mapper.log()[-3000:]
    return [line for line in mapper.log().splitlines() if f"LAB {word}" in line]


def test_kubeedge_go_mapper_on_kubeshore_edgecore(
    stack: Stack, kubeedge_bin: Path, kubeedge_recipes: Path
) -> None:
    wait_for(lambda: (stack.edge_dir / "edgecore.json").exists(), 60, "edgecore started")
    mapper = VirtualMapper(
        stack, kubeedge_bin, kubeedge_recipes, stack.tmp / "go-mapper", stack.edge_dir / "dmi.sock"
    )
    mapper.start()
    stack.apply(MODEL)
    stack.apply(DEVICE)

    # The device reaches the mapper (a client per device) and the mapper keeps running.
    wait_for(lambda: _lab_lines(mapper, "NewClient"), 60, "LAB NewClient in the Go mapper's log")

    # Its counter values come back up as twins into DeviceStatus, the property without desired included.
    def both_reported() -> bool:
        r = stack.reported("lab-1")
        return bool(r.get("count", "").isdigit() and r.get("label", "").startswith("v"))

    wait_for(both_reported, 60, "count and label reported in DeviceStatus")
    # The desired value of the Device reaches the driver; a kubectl patch of it as well.
    wait_for(
        lambda: any("first" in line for line in _lab_lines(mapper, "SetDeviceData")), 60, "desired first"
    )
    op = [{"op": "replace", "path": "/spec/properties/1/desired/value", "value": "second"}]
    stack.kubectl("patch", "device", "lab-1", "-n", "default", "--type=json", "-p", json.dumps(op))
    wait_for(lambda: any("second" in ln for ln in _lab_lines(mapper, "SetDeviceData")), 60, "desired second")

    # Deleting the Device stops it in the mapper (an update is a stop and a new client; a delete is a
    # stop alone).
    wait_for(lambda: len(_lab_lines(mapper, "NewClient")) >= 2, 30, "the patched device restarted")
    clients, stops = len(_lab_lines(mapper, "NewClient")), len(_lab_lines(mapper, "StopDevice"))
    stack.kubectl("delete", "device", "lab-1", "-n", "default")
    wait_for(lambda: len(_lab_lines(mapper, "StopDevice")) > stops, 60, "LAB StopDevice after the delete")
    assert len(_lab_lines(mapper, "NewClient")) == clients
    assert "panic" not in mapper.log()
