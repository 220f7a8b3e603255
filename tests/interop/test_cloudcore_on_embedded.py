"""KubeEdge's own cloudcore against kubeshore's embedded API server, as a controller written with client-go.

KubeEdge builds its Kubernetes client for protobuf (``cloud/pkg/common/client/client.go``): request
bodies in ``application/vnd.kubernetes.protobuf`` and ``Accept: application/vnd.kubernetes.protobuf,
*/*``, so its lists and watches are answered in protobuf too. The lane: the standalone API server
(``kubeshore apiserver``), KubeEdge's CRDs, KubeEdge's cloudcore (which creates its namespace and
secrets), a kubeshore edge node joined to it with KubeEdge's token (the cloudcore then creates its
Node and Lease and renews the Lease), a Pod bound to the node and its ConfigMap reaching the edge
through the cloudcore's protobuf watches; where containerd can run (the pods lane's fixture), the Pod
really runs and the cloudcore writes its status and Events. cloudcore runs at ``-v=6`` so that its log
has one line per response: no write may be refused (a 409 on a create of something that exists is what
kube-apiserver answers too, and KubeEdge then updates), nothing may fail on the server, and no watch
frame may fail to decode.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._peers import Kubectl, Mosquitto, free_port
from tests._stack import BIN, Processes, wait_for
from tests.interop._kubeedge import KubeEdgeCloud, apply_kubeedge_crds, node_ready

NODE = "ks-edge-1"
# client-go at -v=6: "POST https://127.0.0.1:PORT/api/v1/nodes 201 Created in 3 milliseconds"
_RESPONSE = re.compile(r"round_trippers\.go:\d+\] (GET|POST|PUT|PATCH|DELETE) (\S+) (\d{3}) ")
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: default}
data: {greeting: hello}
"""


def _responses(log: str) -> list[tuple[str, str, int]]:
    return [(m.group(1), m.group(2), int(m.group(3))) for m in _RESPONSE.finditer(log)]


def _refused_writes(log: str) -> list[tuple[str, str, int]]:
    return [
        (verb, url, code)
        for verb, url, code in _responses(log)
        if (verb != "GET" and code >= 400 and not (verb == "POST" and code == 409)) or code >= 500
    ]


@dataclass
class Lane:
    api: Kubectl  # the embedded API server's admin
    cloud: KubeEdgeCloud
    edge_dir: Path
    runtime: Any  # the pods lane's Containerd, or None where real Pods cannot run

    def edge_keys(self) -> set[str]:
        with sqlite3.connect(f"file:{self.edge_dir / 'edgecore.db'}?mode=ro", uri=True) as db:
            return {row[0] for row in db.execute("SELECT key FROM meta_v2")}


def _containerd(root: Path) -> Any:
    try:
        from tests.pods._containerd import Containerd, missing
    except ImportError:
        return None
    if missing() is not None:
        return None
    runtime = Containerd(root)
    runtime.start()
    return runtime


@pytest.fixture(scope="module")
def lane(
    kubeedge_bin: Path, kubeedge_recipes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lane]:
    tmp = tmp_path_factory.mktemp("keonembedded")
    procs = Processes(tmp)
    broker = Mosquitto(free_port(), tmp)
    api_dir = tmp / "api"
    api = Kubectl(str(api_dir / "admin.kubeconfig"))
    runtime = None
    try:
        procs.start(
            "apiserver", "kubeshore", "apiserver", "--data-dir", str(api_dir), "--port", "0",
            "--log-level", "info",
        )  # fmt: skip
        wait_for(lambda: Path(api.kubeconfig).exists(), 60, "the embedded API server's kubeconfig")
        apply_kubeedge_crds(api)
        cloud = KubeEdgeCloud(procs, kubeedge_bin, kubeedge_recipes, tmp / "kecloud", api.kubeconfig)
        proc = procs.start(cloud.name, cloud.exe, "--config", str(cloud.root / "cloudcore.yaml"), "-v=6")

        def listening() -> bool:
            if proc.poll() is not None:  # e.g. a refused create of its namespace: fail now, with why
                raise AssertionError(f"KubeEdge's cloudcore exited:\n{cloud.log()[-2000:]}")
            with socket.create_connection(("127.0.0.1", cloud.ws_port), timeout=1):
                return True

        wait_for(listening, 120, "KubeEdge's cloudhub listening")
        token = wait_for(cloud.token, 60, "KubeEdge's tokensecret")
        broker.start()
        runtime = _containerd(tmp / "ctrd")
        edge_dir = tmp / "edge"
        extra = list(runtime.join_flags) if runtime is not None else []
        joined = subprocess.run(
            [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{cloud.ws_port}",
             "--https-port", str(cloud.https_port), "--token", token, "--node-name", NODE,
             "--data-dir", str(edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
             "--mqtt-url", broker.url, *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        cfg_path = edge_dir / "edgecore.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["edgeHub"].update({"heartbeat": 2.0, "reconnectInitial": 0.2, "reconnectMax": 1.0})
        cfg_path.write_text(yaml.safe_dump(cfg))
        procs.start("edgecore", str(BIN / "edgecore"), "--config", str(cfg_path))
        yield Lane(api, cloud, edge_dir, runtime)
    finally:
        # The edge and KubeEdge's cloudcore before the API server, so that their streams end quietly.
        for name in ("edgecore", "ke-cloudcore", "apiserver"):
            if name in procs.procs:
                procs.kill9(name)
        procs.stop_all()
        broker.stop()
        if runtime is not None:
            runtime.stop()


def test_node_and_lease_created_in_protobuf(lane: Lane) -> None:
    api = lane.api
    wait_for(lambda: node_ready(api, NODE) == "True", 60, "Node Ready")
    node = api.get("node", NODE)
    assert "node-role.kubernetes.io/edge" in node["metadata"]["labels"]
    lease = api.get("lease", NODE, "-n", "kube-node-lease")["spec"]
    assert lease["holderIdentity"] == NODE and lease["leaseDurationSeconds"] == 40
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lease["renewTime"]), lease
    wait_for(
        lambda: api.get("lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"] != lease["renewTime"],
        60,
        "Lease renewed",
    )


def test_pod_and_configmap_reach_the_edge_through_protobuf_watches(lane: Lane) -> None:
    """A Pod bound to the node reaches it, then the ConfigMap the Pod uses (KubeEdge sends a ConfigMap to
    the nodes whose Pods reference it). With a container runtime the Pod runs, and KubeEdge writes its
    status and the edge's Events."""
    container: dict[str, Any] = {
        "name": "main",
        "image": "busybox",
        "command": ["sh", "-c", "echo hello > /www/index.html; exec httpd -f -p 8080 -h /www"],
        "ports": [{"containerPort": 8080}],
        "envFrom": [{"configMapRef": {"name": "web-config"}}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
    }
    if lane.runtime is not None:
        from tests.pods._containerd import BUSYBOX

        container.update(image=BUSYBOX, imagePullPolicy="Never")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": NODE, "containers": [container], "terminationGracePeriodSeconds": 2},
    }
    lane.api.apply(yaml.safe_dump(pod))
    wait_for(lambda: "/core/v1/pods/default/web" in lane.edge_keys(), 60, "Pod in the edge store")
    lane.api.apply(CONFIGMAP)
    wait_for(
        lambda: "/core/v1/configmaps/default/web-config" in lane.edge_keys(), 60, "ConfigMap at the edge"
    )
    if lane.runtime is None:
        return

    def running() -> bool:
        status = lane.api.get("pod", "web")["status"]
        ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
        return status.get("phase") == "Running" and bool(status.get("podIP")) and ready[0]["status"] == "True"

    wait_for(running, 90, "Pod Running and Ready, as the edge reported it through KubeEdge")
    events = lane.api.get("events", "--field-selector", "involvedObject.name=web")["items"]
    started = [e for e in events if e["reason"] == "Started"]
    assert started and started[0]["source"] == {"component": "kubelet", "host": NODE}, events
    assert started[0]["involvedObject"]["uid"] == lane.api.get("pod", "web")["metadata"]["uid"]


def test_no_write_refused_and_every_watch_frame_read(lane: Lane) -> None:
    log = lane.cloud.log()
    writes = [(verb, url) for verb, url, _ in _responses(log) if verb != "GET"]
    assert any(v == "POST" and url.endswith("/api/v1/nodes") for v, url in writes), writes
    assert any(v == "PUT" and "/leases/" in url for v, url in writes), writes
    assert any(v == "POST" and url.endswith("/namespaces/kubeedge/secrets") for v, url in writes)
    assert _refused_writes(log) == []
    assert "UnsupportedMediaType" not in log and "unknown format" not in log
    # Its informers watch in protobuf; a frame they cannot read ends the watch (then they relist).
    assert "unable to decode an event from the watch stream" not in log
    assert "ended with: an error on the server" not in log
