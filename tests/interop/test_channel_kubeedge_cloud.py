"""kubeshore's edgecore joining KubeEdge's cloudcore, as a KubeEdge user would: KubeEdge's token from
its ``tokensecret``, ``kubeshore join``, ``edgecore``; on a real Kubernetes control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler), since KubeEdge's cloudcore writes protobuf.

One control plane, one KubeEdge cloudcore, one mosquitto and one edge node for the module; the tests
run in order, each a scenario of the channel: join, Node Ready, a Pod and a ConfigMap down, a Device
down to the mapper, twins up into DeviceStatus, a desired value down, a Device delete down, the
session outliving KubeEdge's keepalive interval, an edge restart, a cloud restart, and last (slow:
kube-controller-manager's 40 s grace) NotReady after the edge is killed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._peers import ControlPlane, Mosquitto, free_port, kubernetes_missing, metrics
from tests._stack import BIN, Processes, wait_for
from tests.interop._kubeedge import KubeEdgeCloud, apply_kubeedge_crds, node_ready

NODE = "ks-edge-1"
# KubeEdge's cloudcore closes a session that sent no keepalive message for keepaliveInterval seconds;
# shortened here (with the edge's heartbeat) so that the test sees several intervals pass.
KEEPALIVE_INTERVAL = 6
HEARTBEAT = 2.0

MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: lab-thermometer, namespace: default}
spec:
  protocol: virtual
  properties:
  - name: temperature
    type: FLOAT
    accessMode: ReadOnly
    visitors: {protocolName: virtual, configData: {generator: sine, min: 18, max: 24, periodSeconds: 60}}
  - name: target
    type: FLOAT
    accessMode: ReadWrite
    visitors: {protocolName: virtual, configData: {generator: writable, initial: 21.5}}
"""
DEVICE = f"""
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: therm-1, namespace: default}}
spec:
  deviceModelRef: {{name: lab-thermometer}}
  nodeName: {NODE}
  protocol: {{protocolName: virtual}}
  properties:
  - name: temperature
    collectCycle: 500
    reportCycle: 500
    reportToCloud: true
  - name: target
    collectCycle: 500
    reportCycle: 500
    reportToCloud: true
    desired: {{value: "21.5"}}
"""


@dataclass
class Lane:
    tmp: Path
    cp: ControlPlane
    procs: Processes
    cloud: KubeEdgeCloud
    broker: Mosquitto
    edge_dir: Path
    join: subprocess.CompletedProcess[str] | None = None
    started: float = 0.0
    state: dict[str, Any] = field(default_factory=dict)

    def start_edgecore(self) -> None:
        self.procs.start("edgecore", str(BIN / "edgecore"), "--config", str(self.edge_dir / "edgecore.yaml"))

    def start_mapper(self) -> None:
        self.procs.start(
            "mapper", str(BIN / "kubeshore"), "mapper", "run", "virtual",
            "--edgecore-sock", str(self.edge_dir / "dmi.sock"), "--socket", str(self.tmp / "virtual.sock"),
            "--rest-port", "0",
        )  # fmt: skip

    def edge_keys(self) -> set[str]:
        """Keys of the objects in the edge store (``meta_v2``)."""
        with sqlite3.connect(f"file:{self.edge_dir / 'edgecore.db'}?mode=ro", uri=True) as db:
            return {row[0] for row in db.execute("SELECT key FROM meta_v2")}

    def edge_metrics(self) -> dict[str, float]:
        return metrics(json.loads((self.edge_dir / "edgecore.json").read_text())["metricsPort"])


@pytest.fixture(scope="module")
def lane(
    kubeedge_bin: Path, kubeedge_recipes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lane]:
    missing = kubernetes_missing()
    if missing:
        pytest.skip(missing)
    tmp = tmp_path_factory.mktemp("kecloud")
    cp = ControlPlane(tmp / "cp")
    procs = Processes(tmp)
    broker = Mosquitto(free_port(), tmp)
    try:
        cp.start()
        apply_kubeedge_crds(cp)
        cloud = KubeEdgeCloud(procs, kubeedge_bin, kubeedge_recipes, tmp / "cloud", cp.kubeconfig)
        cfg_path = cloud.root / "cloudcore.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["modules"]["cloudHub"]["keepaliveInterval"] = KEEPALIVE_INTERVAL
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        cloud.start()
        broker.start()
        yield Lane(tmp, cp, procs, cloud, broker, tmp / "edge")
    finally:
        procs.stop_all()
        broker.stop()
        cp.stop()


def test_join_with_kubeedge_token(lane: Lane) -> None:
    """``kubeshore join`` with the token KubeEdge keeps in kubeedge/tokensecret: /ca.crt, a DER CSR on
    /edge.crt, a certificate signed by KubeEdge's CA; then the edge connects and stays connected."""
    token = wait_for(lane.cloud.token, 60, "KubeEdge's tokensecret")
    lane.join = subprocess.run(
        [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{lane.cloud.ws_port}",
         "--https-port", str(lane.cloud.https_port), "--token", token, "--node-name", NODE,
         "--data-dir", str(lane.edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
         "--mqtt-url", lane.broker.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert lane.join.returncode == 0, lane.join.stderr
    cfg_path = lane.edge_dir / "edgecore.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    assert cfg["edgeHub"]["jsonKeepalive"] is True, "join must write a configuration KubeEdge's cloud keeps"
    cfg["edgeHub"].update({"heartbeat": HEARTBEAT, "reconnectInitial": 0.2, "reconnectMax": 1.0})
    cfg_path.write_text(yaml.safe_dump(cfg))
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((lane.edge_dir / "certs" / "server.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((lane.edge_dir / "certs" / "ca.crt").read_bytes())
    assert cert.issuer == ca.subject
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == f"system:node:{NODE}"
    lane.start_edgecore()
    lane.started = time.monotonic()
    wait_for(lambda: lane.edge_metrics().get("edgecore_cloud_connected") == 1.0, 60, "edge connected")


def test_node_registered_ready_with_lease(lane: Lane) -> None:
    """The edge registers its Node (insert on default/node/<name>) and renews its Lease, so that
    kube-controller-manager's node lifecycle finds it Ready and lifts the not-ready taint."""
    wait_for(lambda: node_ready(lane.cp, NODE) == "True", 60, "Node Ready")
    node = lane.cp.get("node", NODE)
    assert "node-role.kubernetes.io/edge" in node["metadata"]["labels"]
    assert node["status"]["nodeInfo"]["kubeletVersion"]
    wait_for(lambda: not lane.cp.get("node", NODE)["spec"].get("taints"), 60, "not-ready taint lifted")
    lease = lane.cp.get("lease", NODE, "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE
    # Owned by its Node, as the kubelet's: deleting the Node deletes the Lease.
    owners = lease["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Node", NODE, node["metadata"]["uid"])]
    first = lease["spec"]["renewTime"]
    wait_for(
        lambda: lane.cp.get("lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"] != first,
        40,
        "Lease renewed",
    )


def test_pod_and_configmap_reach_the_edge_store(lane: Lane) -> None:
    """A Pod bound to the node reaches the edge store; so does the ConfigMap it uses (KubeEdge sends a
    ConfigMap to the nodes whose Pods reference it)."""
    lane.cp.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default}}
spec:
  nodeName: {NODE}
  containers: [{{name: c, image: busybox, envFrom: [{{configMapRef: {{name: web-config}}}}]}}]
"""
    )
    wait_for(lambda: "/core/v1/pods/default/web" in lane.edge_keys(), 60, "Pod in the edge store")
    lane.cp.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: default}\ndata: {a: b}\n"
    )
    wait_for(
        lambda: "/core/v1/configmaps/default/web-config" in lane.edge_keys(), 60, "ConfigMap at the edge"
    )


def test_device_reaches_edge_and_mapper(lane: Lane) -> None:
    lane.start_mapper()
    lane.cp.apply(MODEL)
    lane.cp.apply(DEVICE)
    wait_for(lambda: "/devices.kubeedge.io/v1beta1/devices/default/therm-1" in lane.edge_keys(), 60, "Device")
    wait_for(lambda: "device default/therm-1 added" in lane.procs.log("mapper"), 60, "Device at the mapper")


def test_twins_reach_devicestatus(lane: Lane) -> None:
    def reported() -> dict[str, str]:
        twins = lane.cp.get("devicestatus", "therm-1", "-n", "default").get("status", {}).get("twins") or []
        return {t["propertyName"]: (t.get("reported") or {}).get("value") for t in twins}

    values = wait_for(lambda: (r := reported()).get("temperature") and r.get("target") and r, 60, "twins")
    assert 18 <= float(values["temperature"]) <= 24
    assert values["target"] == "21.5"


def test_desired_value_reaches_the_mapper(lane: Lane) -> None:
    op = [{"op": "replace", "path": "/spec/properties/1/desired/value", "value": "19"}]
    lane.cp.kubectl("patch", "device", "therm-1", "-n", "default", "--type=json", "-p", json.dumps(op))
    wait_for(
        lambda: "property target: wrote 19" in lane.procs.log("mapper"), 60, "desired value at the mapper"
    )


def test_session_outlives_the_keepalive_interval(lane: Lane) -> None:
    """KubeEdge's cloud drops a session that sends no keepalive message for keepaliveInterval: the one
    session opened at start is still the only one several intervals later."""
    wait_for(lambda: time.monotonic() - lane.started > 3 * KEEPALIVE_INTERVAL, 4 * KEEPALIVE_INTERVAL, "time")
    m = lane.edge_metrics()
    assert m["edgecore_cloud_connects_total"] == 1.0, "the session was dropped and reopened"
    assert m["edgecore_cloud_connected"] == 1.0


def test_edge_restart(lane: Lane) -> None:
    """kill -9 of our edgecore; restarted, it reconnects, keeps its Node and gets what changed meanwhile."""
    lane.procs.kill9("edgecore")
    lane.cp.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: default}\ndata: {a: c}\n"
    )
    lane.start_edgecore()
    wait_for(lambda: lane.edge_metrics().get("edgecore_cloud_connected") == 1.0, 60, "edge reconnected")

    def config_value() -> str | None:
        with sqlite3.connect(f"file:{lane.edge_dir / 'edgecore.db'}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT value FROM meta_v2 WHERE key = '/core/v1/configmaps/default/web-config'"
            ).fetchone()
        return json.loads(row[0])["data"]["a"] if row else None

    # KubeEdge's cloud sends the change when the edge asks for the ConfigMap or it changes again.
    lane.cp.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web-config, namespace: default}\ndata: {a: d}\n"
    )
    wait_for(lambda: config_value() == "d", 60, "ConfigMap change after the restart")
    assert node_ready(lane.cp, NODE) == "True"


def test_cloud_restart(lane: Lane) -> None:
    """kill -9 of KubeEdge's cloudcore; restarted on the same ports, the edge reconnects by itself and
    a Pod created afterwards reaches it."""
    connects = lane.edge_metrics()["edgecore_cloud_connects_total"]
    lane.cloud.kill()
    lane.cloud.start()
    wait_for(lambda: lane.edge_metrics()["edgecore_cloud_connects_total"] > connects, 60, "edge reconnected")
    lane.cp.apply(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: after, namespace: default}}\n"
        f"spec: {{nodeName: {NODE}, containers: [{{name: c, image: busybox}}]}}\n"
    )
    wait_for(lambda: "/core/v1/pods/default/after" in lane.edge_keys(), 60, "Pod after the cloud restart")
    renewed = lane.cp.get("lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"]
    wait_for(
        lambda: lane.cp.get("lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"] != renewed,
        40,
        "Lease renewed after the cloud restart",
    )


def test_device_delete_reaches_edge_and_mapper(lane: Lane) -> None:
    """A Device deleted while the edge is away: KubeEdge's sync controller sends the delete after the
    reconnect, built from its ObjectSync record (no apiVersion, no kind, no spec); the edge store drops
    it and the mapper is told."""
    lane.procs.kill9("edgecore")
    lane.cp.kubectl("delete", "device", "therm-1", "-n", "default")
    lane.start_edgecore()
    wait_for(
        lambda: not any("/devices/default/therm-1" in k for k in lane.edge_keys()),
        60,
        "Device gone at the edge",
    )
    wait_for(lambda: "device default/therm-1 removed" in lane.procs.log("mapper"), 60, "delete at the mapper")


def test_node_not_ready_after_the_edge_is_killed(lane: Lane) -> None:
    """Without our edgecore the Lease is no longer renewed: kube-controller-manager marks the Node
    NotReady (Ready=Unknown) after its 40 s grace period."""
    lane.procs.kill9("mapper")
    lane.procs.kill9("edgecore")
    wait_for(lambda: node_ready(lane.cp, NODE) == "Unknown", 120, "Node NotReady")
