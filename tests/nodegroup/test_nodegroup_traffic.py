"""Two node groups of real edgecores under a real standalone cloudcore (all subprocesses).

An EdgeApplication becomes per-group Deployments; an EndpointSlice for its Service (created here as
Kubernetes' EndpointSlice controller would) reaches each edge's store and MetaServer holding only that
group's endpoints; moving a node between groups moves what both sides hold; default/kubernetes points at each
node's MetaServer; NodeGroup status follows a killed edgecore to Unknown and back; deleting the
EdgeApplication removes everything it made.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _stack import Processes
from nodegroup_testing import eventually

from edgecore.config import EdgeCoreConfig
from edgecore.metamanager import EdgeStore
from kubeclient import Kube
from kubeshore.config import load_config
from nodegroup._naming import BELONGING_TO_LABEL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

BIN = Path(sys.executable).parent
NG = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
EAPPS = "/apis/apps.kubeedge.io/v1alpha1/namespaces/default/edgeapplications"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"

# Edge node -> its MetaServer port. The edges bind port 0 and report the port they got; the test
# reads it from the Node annotation cloudcore keeps, which also shows that report at work.
EDGES: dict[str, int] = {"e-a1": 0, "e-b1": 0, "e-b2": 0}


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


def wait_file(path: Path, proc: subprocess.Popen[bytes], what: str, within: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        if path.exists():
            try:
                data: dict[str, Any] = json.loads(path.read_text())
                return data
            except ValueError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


async def edge_slices(edge_dir: Path) -> dict[str, dict[str, Any]]:
    cfg = load_config(EdgeCoreConfig, edge_dir / "edgecore.yaml")
    store = EdgeStore(cfg.database.path)
    try:
        objs = await store.list_objects("discovery.k8s.io/v1/endpointslices")
    finally:
        store.close()
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs}


def metaserver_slice(port: int, name: str) -> dict[str, Any]:
    """The slice as the node's MetaServer serves it (what in-cluster clients on the edge read)."""
    url = f"http://127.0.0.1:{port}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{name}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except OSError as exc:  # not listening yet, or 404 before the object arrived: poll again
        raise AssertionError(f"MetaServer :{port} {name}: {exc}") from exc


def slice_nodes(obj: dict[str, Any]) -> list[str]:
    return sorted(ep.get("nodeName", "") for ep in obj.get("endpoints") or [])


@pytest.fixture
def cluster(processes: Processes, tmp_path: Path) -> dict[str, Any]:
    """Standalone cloudcore and three joined edgecores, all real commands; returns cloudcore's state."""
    cloud_dir = tmp_path / "cloud"
    cloud = processes.start(
        "cloudcore",
        str(BIN / "cloudcore"),
        "--standalone",
        "--data-dir", str(cloud_dir),
        "--bind", "127.0.0.1",
        "--websocket-port", "0",
        "--https-port", "0",
        "--metrics-port", "0",
        "--apiserver-port", "0",
        "--node-grace-period", "4",
        "--node-status-update-period", "1",
        "--keepalive-timeout", "6",
    )  # fmt: skip
    state = wait_file(cloud_dir / "cloudcore.json", cloud, "cloudcore")
    token = subprocess.run(
        [str(BIN / "kubeshore"), "token", "create", "--data-dir", str(cloud_dir)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    for name in EDGES:
        subprocess.run(
            [
                str(BIN / "kubeshore"), "join",
                "--cloudcore", f"127.0.0.1:{state['websocketPort']}",
                "--https-port", str(state["httpsPort"]),
                "--token", token,
                "--node-name", name,
                "--data-dir", str(tmp_path / name),
                "--metaserver-port", "0", "--metrics-port", "0",
            ],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        processes.start(name, str(BIN / "edgecore"), "--config", str(tmp_path / name / "edgecore.yaml"))
    return state


async def test_two_groups_of_edgecores(cluster: dict[str, Any], processes: Processes, tmp_path: Path) -> None:
    kube = Kube.from_kubeconfig(cluster["kubeconfig"])
    try:
        await run_scenario(kube, processes, tmp_path)
    finally:
        kube.close()


def ready_of(node: dict[str, Any]) -> str:
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return ""


async def run_scenario(kube: Kube, processes: Processes, tmp_path: Path) -> None:
    async def nodes_ready() -> None:
        for name in EDGES:
            node = await kube.aget_or_none(f"/api/v1/nodes/{name}")
            assert node is not None and ready_of(node) == "True", name

    await eventually(nodes_ready, within=60)

    async def metaserver_ports() -> None:
        for name in EDGES:
            node = await kube.aget(f"/api/v1/nodes/{name}")
            port = (node["metadata"].get("annotations") or {}).get("kubeshore.io/metaserver-port")
            assert port is not None and int(port) > 0, name
            EDGES[name] = int(port)

    await eventually(metaserver_ports, within=30)

    group = {"apiVersion": "apps.kubeedge.io/v1alpha1", "kind": "NodeGroup"}
    await kube.acreate(NG, group | {"metadata": {"name": "ga"}, "spec": {"nodes": ["e-a1"]}})
    await kube.acreate(NG, group | {"metadata": {"name": "gb"}, "spec": {"nodes": ["e-b1", "e-b2"]}})
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    }
    targets = [{"name": "ga", "overriders": {"replicas": 2}}, {"name": "gb"}]
    await kube.acreate(
        EAPPS,
        {
            "apiVersion": "apps.kubeedge.io/v1alpha1",
            "kind": "EdgeApplication",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "workloadTemplate": {"manifests": [deployment, service]},
                "workloadScope": {"targetNodeGroups": targets},
            },
        },
    )

    async def stamped() -> None:
        ga = await kube.aget_or_none("/apis/apps/v1/namespaces/default/deployments/web-ga")
        gb = await kube.aget_or_none("/apis/apps/v1/namespaces/default/deployments/web-gb")
        assert ga is not None and gb is not None
        assert (ga["spec"]["replicas"], gb["spec"]["replicas"]) == (2, 1)
        assert ga["spec"]["template"]["spec"]["nodeSelector"] == {BELONGING_TO_LABEL: "ga"}
        assert ga["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
        svc = await kube.aget_or_none("/api/v1/namespaces/default/services/web")
        assert (
            svc is not None
            and svc["metadata"]["annotations"]["apps.kubeedge.io/service-topology"] == "range-nodegroup"
        )
        for name, grp in (("e-a1", "ga"), ("e-b1", "gb"), ("e-b2", "gb")):
            node = await kube.aget(f"/api/v1/nodes/{name}")
            assert node["metadata"]["labels"].get(BELONGING_TO_LABEL) == grp

    await eventually(stamped, within=30)

    # As Kubernetes' EndpointSlice controller would publish it: endpoints on nodes of both groups.
    await kube.acreate(
        SLICES,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"10.0.0.{i}"], "nodeName": n, "conditions": {"ready": True}}
                for i, n in enumerate(EDGES, start=1)
            ],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    )

    async def views(expected: dict[str, list[str]]) -> None:
        for name, nodes in expected.items():
            held = await edge_slices(tmp_path / name)
            assert "default/web-abc12" in held, f"{name} has no slice yet"
            assert slice_nodes(held["default/web-abc12"]) == nodes, name
            served = await asyncio.to_thread(metaserver_slice, EDGES[name], "web-abc12")
            assert slice_nodes(served) == nodes, f"{name} MetaServer"

    await eventually(
        lambda: views({"e-a1": ["e-a1"], "e-b1": ["e-b1", "e-b2"], "e-b2": ["e-b1", "e-b2"]}), within=30
    )

    # default/kubernetes on each edge points at that edge's MetaServer.
    async def kubernetes_slices() -> None:
        for name, port in EDGES.items():
            held = await edge_slices(tmp_path / name)
            kube_slice = held.get("default/kubernetes")
            assert kube_slice is not None, f"{name} has no default/kubernetes slice"
            assert [ep["addresses"] for ep in kube_slice["endpoints"]] == [["127.0.0.1"]]
            assert {p["name"]: p["port"] for p in kube_slice["ports"]}["https"] == port
            served = await asyncio.to_thread(metaserver_slice, port, "kubernetes")
            assert {p["name"]: p["port"] for p in served["ports"]}["https"] == port, f"{name} MetaServer"

    await eventually(kubernetes_slices, within=30)

    # Move e-b2 from gb to ga: what every node holds follows.
    await kube.apatch(f"{NG}/gb", {"spec": {"nodes": ["e-b1"]}})
    await kube.apatch(f"{NG}/ga", {"spec": {"nodes": ["e-a1", "e-b2"]}})
    await eventually(
        lambda: views({"e-a1": ["e-a1", "e-b2"], "e-b1": ["e-b1"], "e-b2": ["e-a1", "e-b2"]}), within=30
    )

    # A Service of its own (not from the EdgeApplication) is sent whole until it is annotated.
    await kube.acreate(
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "plain"},
            "spec": {"ports": [{"port": 81}]},
        },
    )
    await kube.acreate(
        SLICES,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "plain-x1", "labels": {"kubernetes.io/service-name": "plain"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"10.1.0.{i}"], "nodeName": n} for i, n in enumerate(EDGES, start=1)
            ],
            "ports": [{"port": 81}],
        },
    )
    everywhere = sorted(EDGES)

    async def plain_views(expected: dict[str, list[str]]) -> None:
        for name, nodes in expected.items():
            held = await edge_slices(tmp_path / name)
            assert "default/plain-x1" in held and slice_nodes(held["default/plain-x1"]) == nodes, name

    await eventually(lambda: plain_views({name: everywhere for name in EDGES}), within=30)
    topology = {"apps.kubeedge.io/service-topology": "range-nodegroup"}
    await kube.apatch("/api/v1/namespaces/default/services/plain", {"metadata": {"annotations": topology}})
    scoped = {"e-a1": ["e-a1", "e-b2"], "e-b1": ["e-b1"], "e-b2": ["e-a1", "e-b2"]}
    await eventually(lambda: plain_views(scoped), within=30)
    unscoped = {"apps.kubeedge.io/service-topology": None}
    await kube.apatch("/api/v1/namespaces/default/services/plain", {"metadata": {"annotations": unscoped}})
    await eventually(lambda: plain_views({name: everywhere for name in EDGES}), within=30)

    # A killed edgecore goes Unknown in its group's status, and Ready again once restarted.
    processes.kill9("e-b1")

    async def status_of(group: str, node: str, wanted: str) -> None:
        obj = await kube.aget(f"{NG}/{group}")
        entries = {
            e["nodeName"]: e["readyStatus"] for e in (obj.get("status") or {}).get("nodeStatuses") or []
        }
        assert entries.get(node) == wanted, entries

    await eventually(lambda: status_of("gb", "e-b1", "Unknown"), within=30)
    # While it is away its peers change groups; on reconnect it gets the view it missed.
    await kube.apatch(f"{NG}/ga", {"spec": {"nodes": ["e-a1"]}})
    await kube.apatch(f"{NG}/gb", {"spec": {"nodes": ["e-b1", "e-b2"]}})
    await eventually(lambda: views({"e-a1": ["e-a1"], "e-b2": ["e-b1", "e-b2"]}), within=30)
    processes.start("e-b1", str(BIN / "edgecore"), "--config", str(tmp_path / "e-b1" / "edgecore.yaml"))
    await eventually(lambda: status_of("gb", "e-b1", "Ready"), within=30)
    # Restarted on another free port: cloudcore learns it and re-points its default/kubernetes.
    old_port = EDGES["e-b1"]

    async def new_port() -> None:
        await metaserver_ports()
        assert EDGES["e-b1"] != old_port

    await eventually(new_port, within=30)
    await eventually(lambda: views({"e-b1": ["e-b1", "e-b2"]}), within=30)
    await eventually(kubernetes_slices, within=30)

    await kube.adelete(f"{EAPPS}/web")

    async def gone() -> None:
        for path in (
            "/apis/apps/v1/namespaces/default/deployments/web-ga",
            "/apis/apps/v1/namespaces/default/deployments/web-gb",
            "/api/v1/namespaces/default/services/web",
        ):
            assert await kube.aget_or_none(path) is None, path

    await eventually(gone, within=30)
