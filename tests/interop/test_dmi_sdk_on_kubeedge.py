"""kubeshore's mapper SDK (``kubeshore mapper run virtual``) on KubeEdge's edgecore, joined to kubeshore's
standalone cloudcore with a ``kubeshore token create`` token: the mapper registers over KubeEdge's DMI
socket, its reports reach DeviceStatus, a desired value written with kubectl reaches the driver, and
deleting the Device reaches the mapper as RemoveDevice (KubeEdge's edgecore finds the mapper by the
protocol of the Device the cloud's delete carries)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _peers import free_port, mosquitto
from _stack import BIN, Stack, wait_for

from tests.interop._kubeedge import KubeEdgeEdge

pytest.importorskip("cloudcore.apiserver", reason="standalone mode needs the embedded API server")

NODE = "ke-edge"

MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: sdk-model, namespace: default}
spec:
  protocol: virtual
  properties:
  - {name: level, type: INT, accessMode: ReadWrite}
  - {name: ticks, type: INT, accessMode: ReadOnly}
"""

DEVICE = f"""
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: sdk-1, namespace: default}}
spec:
  deviceModelRef: {{name: sdk-model}}
  nodeName: {NODE}
  protocol: {{protocolName: virtual}}
  properties:
  - name: level
    collectCycle: 300
    reportCycle: 300
    reportToCloud: true
    desired: {{value: "5"}}
    visitors: {{protocolName: virtual, configData: {{generator: writable, initial: 1}}}}
  - name: ticks
    collectCycle: 300
    reportCycle: 300
    reportToCloud: true
    visitors: {{protocolName: virtual, configData: {{generator: counter, initial: 100}}}}
"""


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kubeedge_bin: Path, kubeedge_recipes: Path
) -> Iterator[tuple[Stack, KubeEdgeEdge]]:
    tmp = tmp_path_factory.mktemp("sdk-on-kubeedge")
    with mosquitto() as broker:
        s = Stack(tmp, broker)
        try:
            s.start_cloudcore(deviceStatusFlushInterval=0.2)
            edge = KubeEdgeEdge.on_kubeshore(
                s, kubeedge_bin, kubeedge_recipes, tmp / "ke-edge", node=NODE, mqtt=broker
            )
            edge.start()
            yield s, edge
        finally:
            s.stop_all()


def test_kubeshore_mapper_sdk_on_kubeedge_edgecore(stack: tuple[Stack, KubeEdgeEdge]) -> None:
    s, edge = stack
    wait_for(edge.dmi_socket.exists, 90, "KubeEdge edgecore's DMI socket")
    config = s.tmp / "mapper.yaml"
    rest = free_port()
    config.write_text(f"rest: {{port: {rest}}}\n")
    s.start(
        "mapper", str(BIN / "kubeshore"), "mapper", "run", "virtual", "--edgecore-sock",
        str(edge.dmi_socket), "--socket", str(s.tmp / "virtual.sock"), "--config", str(config),
        "--log-format", "json",
    )  # fmt: skip
    s.apply(MODEL)
    s.apply(DEVICE)

    def mapper_alive() -> None:
        assert s.procs["mapper"].poll() is None, s.log("mapper")[-3000:]

    # The desired value reaches the driver and comes back, with the counter, as twins in DeviceStatus.
    def reported(level: str) -> bool:
        mapper_alive()
        r = s.reported("sdk-1")
        return r.get("level") == level and int(r.get("ticks") or 0) >= 100

    wait_for(lambda: reported("5"), 90, "level 5 and ticks reported in DeviceStatus")
    # Registered with KubeEdge's edgecore: the mapper says it is ready (its readiness probe).
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{rest}/readyz", timeout=10) as resp:
            assert resp.status == 200
    except urllib.error.HTTPError as err:
        raise AssertionError(f"/readyz on KubeEdge's edgecore: {err.code} {err.read()!r}") from None
    op = [{"op": "replace", "path": "/spec/properties/0/desired/value", "value": "9"}]
    s.kubectl("patch", "device", "sdk-1", "-n", "default", "--type=json", "-p", json.dumps(op))
    wait_for(lambda: reported("9"), 60, "patched desired 9 reported in DeviceStatus")

    # Deleting the Device reaches the mapper as RemoveDevice.
    s.kubectl("delete", "device", "sdk-1", "-n", "default")

    def removed() -> bool:
        mapper_alive()
        return any(
            json.loads(line).get("msg") == "device default/sdk-1 removed"
            for line in s.log("mapper").splitlines()
            if line.startswith("{")
        )

    wait_for(removed, 60, "RemoveDevice at the mapper (its log: device default/sdk-1 removed)")
