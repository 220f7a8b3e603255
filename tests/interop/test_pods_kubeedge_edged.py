"""KubeEdge's edgecore running Pods under kubeshore's cloudcore: its edged (KubeEdge's embedded kubelet)
on a containerd of the run's own (``tests/pods/_containerd``), joined to a standalone cloudcore with a
``kubeshore token create`` token. What a user sees goes through our cloud: the Node's runtime, the
Pod's status (KubeEdge's ``podpatch``, answered as KubeEdge's cloud answers it), and the final delete.

Needs KubeEdge's binaries (the interop lane) and what the pods lane needs (root, containerd, runc, CNI
plugins, busybox-static, umoci, skopeo); skipped otherwise. The tests run in order on one edge."""

from __future__ import annotations

import ipaddress
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._peers import Mosquitto, free_port
from tests._stack import Stack, wait_for
from tests.interop._kubeedge import KubeEdgeEdge, edged_missing, node_ready
from tests.pods._containerd import HTTP, PAUSE, Containerd, missing

NODE = "ke-edged-1"


@dataclass
class Lane:
    stack: Stack
    edge: KubeEdgeEdge
    runtime: Containerd

    def pod(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.stack.kubectl("get", "pod", name, "-o", "json"))
        return out

    def pod_names(self) -> set[str]:
        return set(self.stack.kubectl("get", "pods", "-o", "jsonpath={.items[*].metadata.name}").split())


@pytest.fixture(scope="module")
def lane(
    kubeedge_bin: Path, kubeedge_recipes: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lane]:
    if (why := missing() or edged_missing()) is not None:
        pytest.skip(f"KubeEdge's edged skipped: {why}")
    tmp = tmp_path_factory.mktemp("keedged")
    broker = Mosquitto(free_port(), tmp)
    broker.start()
    runtime = Containerd(tmp / "ctrd")
    stack = Stack(tmp, broker.url)
    edge: KubeEdgeEdge | None = None
    try:
        runtime.start()
        stack.start_cloudcore()
        edge = KubeEdgeEdge.on_kubeshore(
            stack, kubeedge_bin, kubeedge_recipes, tmp / "ke-edge", node=NODE, mqtt=broker.url
        )
        edge.enable_edged(runtime.endpoint, PAUSE)
        edge.start()
        yield Lane(stack, edge, runtime)
    finally:
        stack.stop_all()
        runtime.stop()
        if edge is not None:
            edge.cleanup()
        broker.stop()


def test_node_ready_with_its_runtime(lane: Lane) -> None:
    """KubeEdge's edged registers its Node through our cloud, with the runtime it found on its CRI."""
    wait_for(lambda: node_ready(lane.stack, NODE) == "True", 120, "Node Ready")

    def node_info() -> dict[str, Any] | None:
        status = json.loads(lane.stack.kubectl("get", "node", NODE, "-o", "json")).get("status") or {}
        info: dict[str, Any] | None = status.get("nodeInfo")
        return info if info and info.get("containerRuntimeVersion") else None

    info = wait_for(node_info, 120, "the Node's runtime as edged reports it")
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert "kubeedge" in info["kubeletVersion"]


def test_pod_runs_and_reports_running_with_its_ip(lane: Lane) -> None:
    """A Pod bound to the node runs on its containerd; KubeEdge's edged reports it Running, Ready and
    with its IP through our cloud (podpatch), and that IP answers."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": HTTP,
                    "imagePullPolicy": "Never",
                    "env": [{"name": "SITE", "value": "ke"}],
                }
            ],
        },
    }
    lane.stack.apply(yaml.safe_dump(pod))

    def running() -> dict[str, Any] | None:
        st = lane.pod("web").get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []
        )
        return st if st.get("phase") == "Running" and st.get("podIP") and ready else None

    st = wait_for(running, 120, "web Running and Ready with an IP")
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(lane.runtime.node.subnet)
    cs = st["containerStatuses"][0]
    assert cs["state"].get("running") and cs["containerID"].startswith("containerd://")
    assert cs["image"] == HTTP and cs["restartCount"] == 0
    assert lane.runtime.container_pids(), "no container process in the run's containerd"
    with urllib.request.urlopen(f"http://{st['podIP']}:8080/", timeout=5) as r:
        assert "hello from ke" in r.read().decode()
    row = lane.stack.kubectl("get", "pod", "web", "-o", "wide", "--no-headers")
    assert "Running" in row and st["podIP"] in row and NODE in row


def test_pod_delete_stops_it_and_the_final_delete_reaches_the_cloud(lane: Lane) -> None:
    """kubectl delete marks the Pod; KubeEdge's edged stops its containers and sends the final delete,
    which our cloud applies: the Pod is gone from the API and its processes from the node."""
    lane.stack.kubectl("delete", "pod", "web", "--wait=false")
    wait_for(lambda: "web" not in lane.pod_names(), 120, "Pod gone from the API")
    wait_for(lambda: not lane.runtime.container_pids(), 60, "containers stopped")


def test_pod_selecting_a_label_added_after_join_is_admitted(lane: Lane) -> None:
    """A label added to the Node in the cloud after the node joined reaches KubeEdge's edge (cloudcore
    sends the edge its own Node, as KubeEdge's edgecontroller does): its kubelet admits a Pod whose
    ``nodeSelector`` asks for that label, instead of rejecting it (``NodeAffinity``)."""
    lane.stack.kubectl("label", "node", NODE, "kubeshore.io/zone=late")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "picky", "namespace": "default"},
        "spec": {
            "nodeSelector": {"kubeshore.io/zone": "late"},
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "main",
                    "image": HTTP,
                    "imagePullPolicy": "Never",
                    "env": [{"name": "SITE", "value": "z"}],
                }
            ],
        },
    }
    lane.stack.apply(yaml.safe_dump(pod))

    def settled() -> dict[str, Any] | None:
        st = lane.pod("picky").get("status") or {}
        return st if st.get("phase") in ("Running", "Failed") else None

    st = wait_for(settled, 120, "picky Running (or rejected)")
    assert st["phase"] == "Running", (
        f"KubeEdge's kubelet refused the Pod: {st.get('reason')}: {st.get('message')}"
    )
    assert lane.pod("picky")["spec"]["nodeName"] == NODE
    lane.stack.kubectl("delete", "pod", "picky", "--wait=false")
    wait_for(lambda: "picky" not in lane.pod_names(), 120, "picky gone from the API")
