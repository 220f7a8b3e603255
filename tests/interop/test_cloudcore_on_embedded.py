"""KubeEdge's own cloudcore against kubeshore's embedded API server, as a controller written with client-go.

KubeEdge builds its Kubernetes client for protobuf (``cloud/pkg/common/client/client.go``): request
bodies in ``application/vnd.kubernetes.protobuf`` and ``Accept: application/vnd.kubernetes.protobuf,
*/*``, so its lists and watches are answered in protobuf too. The scenario: the standalone API server
(``kubeshore apiserver``), KubeEdge's CRDs, KubeEdge's cloudcore (which creates its namespace and
secrets), a kubeshore edge node joined to it with KubeEdge's token (the cloudcore then creates its
Node and Lease and renews the Lease), a Pod bound to the node and its ConfigMap reaching the edge
through the cloudcore's protobuf watches. cloudcore runs at ``-v=6`` so that its log has one line per
response; no write may be refused (a 409 on a create of something that exists is what kube-apiserver
answers too, and KubeEdge then updates), and nothing may fail on the server.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
from pathlib import Path

import yaml

from tests._peers import Mosquitto, free_port
from tests._stack import BIN, Processes, wait_for
from tests.interop._kubeedge import ControlPlane, KubeEdgeCloud, node_ready

NODE = "ks-edge-1"
CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: default}
data: {greeting: hello}
binaryData: {blob: AAEC}
"""
# client-go at -v=6: "POST https://127.0.0.1:PORT/api/v1/nodes 201 Created in 3 milliseconds"
_RESPONSE = re.compile(r"round_trippers\.go:\d+\] (GET|POST|PUT|PATCH|DELETE) (\S+) (\d{3}) ")


def _responses(log: str) -> list[tuple[str, str, int]]:
    return [(m.group(1), m.group(2), int(m.group(3))) for m in _RESPONSE.finditer(log)]


def _refused_writes(log: str) -> list[tuple[str, str, int]]:
    return [
        (verb, url, code)
        for verb, url, code in _responses(log)
        if (verb != "GET" and code >= 400 and not (verb == "POST" and code == 409)) or code >= 500
    ]


def _edge_keys(edge_dir: Path) -> set[str]:
    with sqlite3.connect(f"file:{edge_dir / 'edgecore.db'}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT key FROM meta_v2")}


def test_kubeedge_cloudcore_writes_through_the_embedded_apiserver(
    tmp_path: Path, kubeedge_bin: Path, kubeedge_recipes: Path
) -> None:
    procs = Processes(tmp_path)
    broker = Mosquitto(free_port(), tmp_path)
    api = ControlPlane(tmp_path / "api")  # only its kubectl: the kubeconfig sits in the data dir
    try:
        procs.start(
            "apiserver", "kubeshore", "apiserver", "--data-dir", str(api.root), "--port", "0",
            "--log-level", "info",
        )  # fmt: skip
        wait_for(lambda: Path(api.kubeconfig).exists(), 60, "the embedded API server's kubeconfig")
        api.apply_kubeedge_crds()
        cloud = KubeEdgeCloud(procs, kubeedge_bin, kubeedge_recipes, tmp_path / "kecloud", api.kubeconfig)
        proc = procs.start(cloud.name, cloud.exe, "--config", str(cloud.root / "cloudcore.yaml"), "-v=6")

        def listening() -> bool:
            if proc.poll() is not None:  # e.g. a refused create of its namespace: fail now, with why
                raise AssertionError(f"KubeEdge's cloudcore exited:\n{cloud.log()[-2000:]}")
            with socket.create_connection(("127.0.0.1", cloud.ws_port), timeout=1):
                return True

        wait_for(listening, 120, "KubeEdge's cloudhub listening")
        token = wait_for(cloud.token, 60, "KubeEdge's tokensecret")
        broker.start()

        edge_dir = tmp_path / "edge"
        joined = subprocess.run(
            [str(BIN / "kubeshore"), "join", "--cloudcore", f"127.0.0.1:{cloud.ws_port}",
             "--https-port", str(cloud.https_port), "--token", token, "--node-name", NODE,
             "--data-dir", str(edge_dir), "--metaserver-port", "0", "--metrics-port", "0",
             "--mqtt-url", broker.url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        cfg_path = edge_dir / "edgecore.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["edgeHub"].update({"heartbeat": 2.0, "reconnectInitial": 0.2, "reconnectMax": 1.0})
        cfg_path.write_text(yaml.safe_dump(cfg))
        procs.start("edgecore", str(BIN / "edgecore"), "--config", str(cfg_path))

        # Node and Lease: created by KubeEdge's cloudcore, in protobuf.
        wait_for(lambda: node_ready(api, NODE) == "True", 60, "Node Ready")
        node = api.get("node", NODE)
        assert "node-role.kubernetes.io/edge" in node["metadata"]["labels"]
        lease = api.get("lease", NODE, "-n", "kube-node-lease")["spec"]
        assert lease["holderIdentity"] == NODE and lease["leaseDurationSeconds"] == 40
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lease["renewTime"]), lease
        wait_for(
            lambda: (
                api.get("lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"] != lease["renewTime"]
            ),
            60,
            "Lease renewed",
        )

        # Down: KubeEdge's informers watch in protobuf. A Pod bound to the node reaches it, then the
        # ConfigMap the Pod uses (KubeEdge sends a ConfigMap to the nodes whose Pods reference it).
        api.apply(
            f"""
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default, labels: {{app: web}}}}
spec:
  nodeName: {NODE}
  containers:
  - name: c
    image: busybox
    ports: [{{containerPort: 8080}}]
    envFrom: [{{configMapRef: {{name: web-config}}}}]
    readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 5}}
"""
        )
        wait_for(lambda: "/core/v1/pods/default/web" in _edge_keys(edge_dir), 60, "Pod in the edge store")
        api.apply(CONFIGMAP)
        wait_for(
            lambda: "/core/v1/configmaps/default/web-config" in _edge_keys(edge_dir),
            60,
            "ConfigMap at the edge",
        )

        log = cloud.log()
        writes = [(verb, url) for verb, url, _ in _responses(log) if verb != "GET"]
        assert any(v == "POST" and url.endswith("/api/v1/nodes") for v, url in writes), writes
        assert any(v == "PUT" and "/leases/" in url for v, url in writes), writes
        assert any(v == "POST" and url.endswith("/namespaces/kubeedge/secrets") for v, url in writes)
        assert _refused_writes(log) == []
        assert "UnsupportedMediaType" not in log and "unknown format" not in log
        # Its informers watch in protobuf; a frame they cannot read ends the watch (then they relist).
        assert "unable to decode an event from the watch stream" not in log
        assert "ended with: an error on the server" not in log
    finally:
        procs.stop_all()
        broker.stop()
