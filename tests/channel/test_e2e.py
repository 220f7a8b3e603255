"""End to end with the real commands: standalone cloudcore, kubeshore token/join, two edgecores.

Processes are killed with -9 and restarted; assertions use kubectl, cloudcore's /metrics and the
edge stores.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import Kubectl
from _stack import Processes, wait_for

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.stop_all()


class Cluster(Kubectl):
    def __init__(self, procs: Processes, data: Path) -> None:
        super().__init__(str(data / "admin.kubeconfig"))
        self.procs = procs
        self.data = data
        self.ports: dict[str, int] = {}

    def start_cloudcore(self, grace: float = 3, keepalive: float = 3) -> None:
        ports = self.ports
        state = self.data / "cloudcore.json"
        state.unlink(missing_ok=True)
        self.procs.start(
            "cloudcore",
            *("cloudcore", "--standalone", "--data-dir", str(self.data), "--bind", "127.0.0.1"),
            *("--websocket-port", str(ports.get("websocketPort", 0))),
            *("--https-port", str(ports.get("httpsPort", 0))),
            *("--apiserver-port", str(ports.get("apiserverPort", 0))),
            *("--metrics-port", str(ports.get("metricsPort", 0))),
            *("--node-grace-period", str(grace), "--keepalive-timeout", str(keepalive)),
            *("--node-status-update-period", "2"),
            *("--ack-timeout", "1", "--resync-period", "5"),
        )
        wait_for(state.exists, 60, "cloudcore.json")
        self.ports = {k: v for k, v in json.loads(state.read_text()).items() if k.endswith("Port")}
        wait_for(lambda: self.metrics_text() and True, 30, "metrics endpoint")

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['metricsPort']}/metrics", timeout=10) as r:
            return str(r.read().decode())

    def objects_sent(self, node: str) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for line in self.metrics_text().splitlines():
            if line.startswith("cloudhub_objects_sent_total{") and f'node="{node}"' in line:
                labels = dict(p.split("=") for p in line[line.index("{") + 1 : line.index("}")].split(","))
                key = (labels["resource"].strip('"'), labels["operation"].strip('"'))
                out[key] = int(float(line.rsplit(" ", 1)[1]))
        return out

    def ready(self, node: str) -> str:
        return self.kubectl(
            "get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        ).strip()

    def join(self, node: str, token: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{self.ports['websocketPort']}"),
                *("--https-port", str(self.ports["httpsPort"]), "--token", token, "--node-name", node),
                *(
                    "--data-dir",
                    str(self.data.parent / node),
                    "--metaserver-port",
                    "0",
                    "--metrics-port",
                    "0",
                ),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start_edge(self, node: str, heartbeat: float = 1.0) -> None:
        cfg_path = self.data.parent / node / "edgecore.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["edgeHub"].update({"heartbeat": heartbeat, "reconnectInitial": 0.2, "reconnectMax": 1.0})
        cfg["leaseRenewPeriod"] = 1.0
        state = self.data.parent / node / "edgecore.json"
        if state.exists():
            # Restart on the same MetaServer port: the node's view of default/kubernetes points at it.
            cfg["metaServer"]["port"] = json.loads(state.read_text())["metaServerPort"]
        cfg_path.write_text(yaml.safe_dump(cfg))
        self.procs.start(node, "edgecore", "--config", str(cfg_path))


def edge_objects(node_dir: Path, gvr: str) -> dict[str, dict[str, Any]]:
    db = sqlite3.connect(f"file:{node_dir / 'edgecore.db'}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute(
            "select name, value from meta_v2 where group_version_resource = ?", (gvr,)
        ).fetchall()
    finally:
        db.close()
    return {name: json.loads(value) for name, value in rows}


def cloud_objects(cluster: Cluster, plural: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", plural, "-n", "default", "-o", "json"))["items"]
    return {o["metadata"]["name"]: o for o in items}


def pod(name: str, node: str, configmap: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "c", "image": "nginx", "envFrom": [{"configMapRef": {"name": configmap}}]}
            ],
        },
    }


def configmap(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"v": value},
    }


def expected_for(cluster: Cluster, node: str) -> dict[str, dict[str, str]]:
    """name -> resourceVersion of the pods and configmaps ``node`` should hold."""
    pods = {n: o for n, o in cloud_objects(cluster, "pods").items() if o["spec"].get("nodeName") == node}
    cms = cloud_objects(cluster, "configmaps")
    refs = {
        e["configMapRef"]["name"]
        for p in pods.values()
        for c in p["spec"]["containers"]
        for e in c.get("envFrom", [])
    }
    return {
        "pods": {n: o["metadata"]["resourceVersion"] for n, o in pods.items()},
        "configmaps": {n: cms[n]["metadata"]["resourceVersion"] for n in refs if n in cms},
    }


def held_by(node_dir: Path) -> dict[str, dict[str, str]]:
    return {
        "pods": {
            n: o["metadata"]["resourceVersion"] for n, o in edge_objects(node_dir, "core/v1/pods").items()
        },
        "configmaps": {
            n: o["metadata"]["resourceVersion"]
            for n, o in edge_objects(node_dir, "core/v1/configmaps").items()
        },
    }


def test_two_edges_kill9_and_restart(procs: Processes, tmp_path: Path) -> None:
    cluster = Cluster(procs, tmp_path / "cloud")
    cluster.start_cloudcore()
    token = subprocess.run(
        [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(cluster.data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    bad = cluster.join("edge-x", token[:-4] + "AAAA")
    assert bad.returncode != 0 and "invalid token" in bad.stderr
    for node in ("edge-a", "edge-b"):
        out = cluster.join(node, token)
        assert out.returncode == 0, out.stderr
        assert f"edgecore --config {tmp_path / node / 'edgecore.yaml'}" in out.stdout
        cluster.start_edge(node)
    wait_for(
        lambda: cluster.ready("edge-a") == "True" and cluster.ready("edge-b") == "True", 30, "both Ready"
    )
    nodes = cluster.kubectl("get", "nodes")
    assert "edge-a" in nodes and "edge-b" in nodes

    # Each edge keeps its Lease in kube-node-lease through the channel, as KubeEdge's edged does.
    def lease(node: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(
            cluster.kubectl("get", "lease", node, "-n", "kube-node-lease", "-o", "json")
        )["spec"]
        return out

    first = wait_for(lambda: lease("edge-a"), 20, "edge-a Lease")
    assert first["holderIdentity"] == "edge-a" and first["leaseDurationSeconds"] == 40
    wait_for(lambda: lease("edge-a")["renewTime"] != first["renewTime"], 20, "edge-a Lease renewed")
    assert lease("edge-b")["holderIdentity"] == "edge-b"

    cluster.apply(configmap("cfg-a", "1"))
    cluster.apply(configmap("cfg-b", "1"))
    cluster.apply(pod("pa", "edge-a", "cfg-a"))
    cluster.apply(pod("pb", "edge-b", "cfg-b"))
    a_dir, b_dir = tmp_path / "edge-a", tmp_path / "edge-b"
    wait_for(lambda: held_by(a_dir) == expected_for(cluster, "edge-a"), 20, "edge-a synced")
    wait_for(lambda: held_by(b_dir) == expected_for(cluster, "edge-b"), 20, "edge-b synced")
    assert set(held_by(a_dir)["pods"]) == {"pa"} and set(held_by(a_dir)["configmaps"]) == {"cfg-a"}
    assert set(held_by(b_dir)["pods"]) == {"pb"}
    # What a user on the edge sees: kubectl against the node's MetaServer.
    ms_port = json.loads((a_dir / "edgecore.json").read_text())["metaServerPort"]
    out = subprocess.run(
        [
            *("kubectl", "--kubeconfig", "/dev/null", "--server", f"http://127.0.0.1:{ms_port}"),
            *("get", "pods,configmaps", "-A", "-o", "name"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["configmap/cfg-a", "pod/pa"]

    # kill -9 an edge: Unknown after the grace period; changes while it is away, then only those are sent.
    procs.kill9("edge-a")
    wait_for(lambda: cluster.ready("edge-a") == "Unknown", 20, "edge-a Unknown")
    assert cluster.ready("edge-b") == "True"
    before = cluster.objects_sent("edge-a")
    cluster.apply(configmap("cfg-a", "2"))  # changed
    cluster.apply(pod("pa2", "edge-a", "cfg-a"))  # created
    cluster.kubectl("delete", "pod", "pa", "-n", "default", "--wait=false")  # deleted
    wait_for(lambda: "pa" not in cloud_objects(cluster, "pods"), 20, "pa deleted")
    cluster.start_edge("edge-a")
    wait_for(lambda: cluster.ready("edge-a") == "True", 30, "edge-a Ready again")
    wait_for(lambda: held_by(a_dir) == expected_for(cluster, "edge-a"), 20, "edge-a resynced")
    after = cluster.objects_sent("edge-a")
    sent = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
    assert sent == {("configmap", "update"): 1, ("pod", "insert"): 1, ("pod", "delete"): 1}

    # kill -9 cloudcore while objects change; after the restart every edge equals the cluster.
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                cluster.apply(configmap("cfg-b", f"churn-{i}"))
                cluster.apply(pod(f"pb-{i}", "edge-b", "cfg-b"))
            except subprocess.SubprocessError:
                time.sleep(0.2)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    time.sleep(2.0)
    procs.kill9("cloudcore")
    stop.set()
    t.join(60)
    cluster.start_cloudcore()
    cluster.kubectl("delete", "pod", "pb", "-n", "default", "--wait=false")
    for node, d in (("edge-a", a_dir), ("edge-b", b_dir)):
        wait_for(lambda n=node, d=d: held_by(d) == expected_for(cluster, n), 40, f"{node} equals the cluster")
    assert "pb-1" in held_by(b_dir)["pods"]


@pytest.mark.parametrize(
    ("grace", "keepalive"), [(3.0, 8.0), (12.0, 1.0)], ids=["session-open", "session-closed-first"]
)
def test_frozen_edge_turns_unknown_grace_period_after_it_stopped(
    procs: Processes, tmp_path: Path, grace: float, keepalive: float
) -> None:
    """SIGSTOP leaves the TCP connection open but silent: the Node is Ready=Unknown ``grace`` after
    the node's last heartbeat whether or not the keepalive timeout closed the session first, and
    Ready again after SIGCONT."""
    cluster = Cluster(procs, tmp_path / "cloud")
    cluster.start_cloudcore(grace=grace, keepalive=keepalive)
    token = subprocess.run(
        [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(cluster.data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    out = cluster.join("edge-a", token)
    assert out.returncode == 0, out.stderr
    heartbeat = 0.3
    cluster.start_edge("edge-a", heartbeat=heartbeat)
    wait_for(lambda: cluster.ready("edge-a") == "True", 30, "edge-a Ready")
    time.sleep(2 * heartbeat)
    edge = procs.procs["edge-a"]
    os.kill(edge.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_for(lambda: cluster.ready("edge-a") == "Unknown", grace + 10, "edge-a Unknown")
        took = time.monotonic() - stopped
        # Grace period after the last heartbeat (at most one heartbeat before the stop), plus the
        # monitor tick and a kubectl round trip.
        assert grace - heartbeat < took < grace + 2.5, took
    finally:
        os.kill(edge.pid, signal.SIGCONT)
    wait_for(lambda: cluster.ready("edge-a") == "True", 20, "edge-a Ready after SIGCONT")
