"""KubeEdge's edgecore (and KubeEdge's virtual mapper) joining kubeshore's cloudcore, as a KubeEdge user
would: ``kubeshore token create``, KubeEdge's own edgecore.yaml with that token, nothing converted by
hand. cloudcore runs standalone (embedded API server).

One cloudcore, one mosquitto and one KubeEdge edge node for the module; the tests run in order: join,
Node Ready, a Pod and a ConfigMap down, a Device down to KubeEdge's mapper, twins up into
DeviceStatus, a desired value down, a Device delete down to the mapper, an edge restart, a cloud
restart, and NotReady after the edge is killed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._peers import Mosquitto, free_port
from tests._stack import BIN, Stack, wait_for
from tests.interop._kubeedge import KubeEdgeEdge, VirtualMapper, node_ready

NODE = "ke-edge-1"
GRACE = 6.0  # cloudcore's nodeGracePeriod here; KubeEdge's edge sends a keepalive every HEARTBEAT
HEARTBEAT = 2

MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: lab-counter, namespace: default}
spec:
  protocol: virtual-lab
  properties:
  - name: count
    type: INT
    accessMode: ReadOnly
  - name: level
    type: INT
    accessMode: ReadWrite
"""
DEVICE = f"""
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: counter-1, namespace: default}}
spec:
  deviceModelRef: {{name: lab-counter}}
  nodeName: {NODE}
  protocol: {{protocolName: virtual-lab}}
  properties:
  - name: count
    collectCycle: 500
    reportCycle: 500
    reportToCloud: true
    visitors: {{protocolName: virtual-lab, configData: {{dataType: int}}}}
  - name: level
    collectCycle: 500
    reportCycle: 500
    reportToCloud: true
    desired: {{value: "3"}}
    visitors: {{protocolName: virtual-lab, configData: {{dataType: int}}}}
"""


@dataclass
class Lane:
    stack: Stack
    edge: KubeEdgeEdge
    mapper: VirtualMapper

    def edge_keys(self) -> set[str]:
        """Keys of KubeEdge's edge store (its ``meta`` table: ``<ns>/<type>/<name>``)."""
        db_path = self.edge.root / "edgecore.db"
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            return {row[0] for row in db.execute("SELECT key FROM meta")}


@pytest.fixture(scope="module")
def lane(
    kubeedge_bin: Path, kubeedge_recipes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lane]:
    tmp = tmp_path_factory.mktemp("keedge")
    broker = Mosquitto(free_port(), tmp)
    broker.start()
    stack = Stack(tmp, broker.url)
    try:
        stack.start_cloudcore(nodeGracePeriod=GRACE, keepaliveTimeout=GRACE, deviceStatusFlushInterval=0.2)
        edge = KubeEdgeEdge.on_kubeshore(
            stack, kubeedge_bin, kubeedge_recipes, tmp / "ke-edge", node=NODE, mqtt=broker.url
        )
        edge.configure(heartbeat=HEARTBEAT)
        mapper = VirtualMapper(stack, kubeedge_bin, kubeedge_recipes, tmp / "mapper", edge.dmi_socket)
        yield Lane(stack, edge, mapper)
    finally:
        stack.stop_all()
        broker.stop()


def test_join_with_a_kubeshore_token(lane: Lane) -> None:
    """KubeEdge's edgecore fetches /ca.crt, checks it against the token, sends its DER CSR to /edge.crt,
    writes the certificate and opens the websocket: no hand conversion."""
    lane.edge.start()
    cert = lane.edge.root / "certs" / "server.crt"
    wait_for(cert.exists, 60, "KubeEdge's edgecore got its certificate")
    from cryptography import x509

    subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject
    assert subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == f"system:node:{NODE}"
    wait_for(lambda: lane.stack.samples("cloudcore").get("cloudhub_connected_nodes") == 1.0, 60, "connected")


def test_node_ready(lane: Lane) -> None:
    wait_for(lambda: node_ready(lane.stack, NODE) == "True", 60, "Node Ready")


def test_pod_and_configmap_reach_the_edge_store(lane: Lane) -> None:
    lane.stack.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: default}\ndata: {a: b}\n"
    )
    lane.stack.apply(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: default}}\n"
        f"spec: {{nodeName: {NODE}, containers: [{{name: c, image: busybox, "
        f"envFrom: [{{configMapRef: {{name: web-config}}}}]}}]}}\n"
    )
    wait_for(lambda: {"default/pod/web", "default/configmap/web-config"} <= lane.edge_keys(), 60, "objects")


def test_device_reaches_kubeedge_edge_and_mapper(lane: Lane) -> None:
    lane.mapper.start()
    lane.stack.apply(MODEL)
    lane.stack.apply(DEVICE)
    wait_for(lambda: "default/device/counter-1" in lane.edge_keys(), 60, "Device in KubeEdge's edge store")
    wait_for(lambda: "LAB NewClient" in lane.mapper.log(), 60, "Device at KubeEdge's mapper")


def test_twins_reach_devicestatus(lane: Lane) -> None:
    def reported() -> dict[str, str]:
        return lane.stack.reported("counter-1")

    values = wait_for(lambda: (r := reported()).get("count") and r.get("level") and r, 60, "twins")
    assert int(values["count"]) >= 0
    first = int(values["count"])
    wait_for(lambda: int(reported().get("count") or -1) > first, 30, "twins keep coming")


def test_desired_value_reaches_the_mapper(lane: Lane) -> None:
    op = [{"op": "replace", "path": "/spec/properties/1/desired/value", "value": "7"}]
    lane.stack.kubectl("patch", "device", "counter-1", "-n", "default", "--type=json", "-p", json.dumps(op))
    wait_for(lambda: "data=7" in _lines(lane, "LAB SetDeviceData"), 60, "desired value at KubeEdge's mapper")


def _lines(lane: Lane, marker: str) -> str:
    return "\n".join(line for line in lane.mapper.log().splitlines() if marker in line)


def test_device_delete_reaches_kubeedge_mapper(lane: Lane) -> None:
    """The cloud sends the whole Device on delete: KubeEdge's edge finds its mapper by spec.protocol."""
    # The mapper also stops a device to restart it on an update: count the stops.
    stops = _lines(lane, "LAB StopDevice").count("StopDevice")
    lane.stack.kubectl("delete", "device", "counter-1", "-n", "default")
    wait_for(lambda: _lines(lane, "LAB StopDevice").count("StopDevice") > stops, 60, "delete at the mapper")
    wait_for(lambda: "default/device/counter-1" not in lane.edge_keys(), 30, "Device gone at the edge")


def test_edge_restart(lane: Lane) -> None:
    lane.edge.kill()
    lane.stack.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: while-away, namespace: default}\ndata: {a: b}\n"
    )
    lane.stack.apply(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: web2, namespace: default}}\n"
        f"spec: {{nodeName: {NODE}, containers: [{{name: c, image: busybox, "
        f"envFrom: [{{configMapRef: {{name: while-away}}}}]}}]}}\n"
    )
    lane.edge.start()
    wait_for(lambda: {"default/pod/web2", "default/configmap/while-away"} <= lane.edge_keys(), 60, "resync")
    wait_for(lambda: node_ready(lane.stack, NODE) == "True", 60, "Node Ready again")


def test_cloud_restart(lane: Lane) -> None:
    """kill -9 of cloudcore; restarted on the same ports (KubeEdge's edge has them in its config), the
    edge reconnects by itself and a Pod created afterwards reaches it."""
    stack = lane.stack
    stack.kill9("cloudcore")
    data = stack.tmp / "cloud"
    (data / "cloudcore.json").unlink()
    stack.start(
        "cloudcore", str(BIN / "cloudcore"), "--standalone", "--data-dir", str(data), "--bind", "127.0.0.1",
        "--websocket-port", str(stack.ports["websocketPort"]), "--https-port", str(stack.ports["httpsPort"]),
        "--apiserver-port", "0", "--metrics-port", "0", "--log-format", "json",
        "--config", str(stack.tmp / "cloudcore.yaml"),
    )  # fmt: skip
    wait_for((data / "cloudcore.json").exists, 60, "cloudcore restarted")
    stack.ports = json.loads((data / "cloudcore.json").read_text())
    wait_for(
        lambda: lane.stack.samples("cloudcore").get("cloudhub_connected_nodes") == 1.0, 90, "reconnected"
    )
    lane.stack.apply(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: after, namespace: default}}\n"
        f"spec: {{nodeName: {NODE}, containers: [{{name: c, image: busybox}}]}}\n"
    )
    wait_for(lambda: "default/pod/after" in lane.edge_keys(), 60, "Pod after the cloud restart")


def test_node_not_ready_after_the_edge_is_killed(lane: Lane) -> None:
    lane.mapper.kill()
    lane.edge.kill()
    wait_for(lambda: node_ready(lane.stack, NODE) == "Unknown", GRACE + 30, "Node NotReady")
