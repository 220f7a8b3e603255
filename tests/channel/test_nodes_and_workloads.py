"""A standalone cloudcore and one edgecore, as processes, driven with kubectl: what the edge learns of its
own Node, the Node's labels, and the garbage collection the workload controllers rely on.

- A label added to the Node in the cloud reaches the edge's copy (its store and its MetaServer), as
  KubeEdge's edgecontroller sends it (KubeEdge's kubelet admits Pods against that copy).
- The Node's ``kubernetes.io/hostname`` is the node name (KubeEdge runs its kubelet with the hostname
  override set to the node name), and so is its Hostname address.
- A node whose edged cannot reach its container runtime is not Ready (as the kubelet says, with its
  reason), and the scheduler places nothing there.
- A Deployment deleted while its ReplicaSet is creating Pods leaves neither ReplicaSet nor Pod behind,
  and applied again it scales.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests._peers import Mosquitto, free_port
from tests._stack import Stack, wait_for

NODE = "edge-1"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("nodesync")
    broker = Mosquitto(free_port(), tmp)
    broker.start()
    s = Stack(tmp, broker.url)
    try:
        s.start_cloudcore()
        s.join_edge(NODE)
        s.start_edgecore()
        wait_for(lambda: _ready(s), 60, "edge-1 Ready")
        yield s
    finally:
        s.stop_all()
        broker.stop()


def _ready(stack: Stack) -> bool:
    try:
        node = stack.get("node", NODE)
    except Exception:
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _edge_node(stack: Stack) -> dict[str, Any] | None:
    return stack.edge_objects("core/v1/nodes").get(f"/{NODE}")


def test_a_label_added_in_the_cloud_reaches_the_edges_node(stack: Stack) -> None:
    stack.kubectl("label", "node", NODE, "site=north")

    def labelled() -> bool:
        node = _edge_node(stack)
        return node is not None and (node["metadata"].get("labels") or {}).get("site") == "north"

    wait_for(labelled, 60, "the label in the edge store")
    port = json.loads((stack.edge_dir / "edgecore.json").read_text())["metaServerPort"]
    out = subprocess.run(
        ["kubectl", "--kubeconfig", "/dev/null", "--server", f"http://127.0.0.1:{port}",
         "get", "node", NODE, "-o", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert json.loads(out)["metadata"]["labels"]["site"] == "north"

    stack.kubectl("label", "node", NODE, "site-")
    wait_for(lambda: "site" not in ((_edge_node(stack) or {}).get("metadata", {}).get("labels") or {}),
             60, "the label removed at the edge")  # fmt: skip


def test_hostname_label_and_address_are_the_node_name(stack: Stack) -> None:
    def reported() -> dict[str, Any] | None:
        node = stack.get("node", NODE)
        return node if (node.get("status") or {}).get("addresses") else None

    node = wait_for(reported, 60, "the Node's addresses")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    hostnames = [a["address"] for a in node["status"]["addresses"] if a["type"] == "Hostname"]
    assert hostnames == [NODE]


def _deployment(replicas: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "churn", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "churn"}},
                "template": {
                    "metadata": {"labels": {"app": "churn"}},
                    "spec": {"nodeSelector": {"no-such": "node"},
                             "containers": [{"name": "main", "image": "localhost/busybox:latest"}]},
                },
            },
        }
    )  # fmt: skip


def _left(stack: Stack) -> tuple[list[str], list[str]]:
    def names(kind: str) -> list[str]:
        out = stack.kubectl("get", kind, "-l", "app=churn", "-o", "jsonpath={.items[*].metadata.name}")
        return out.split()

    return names("replicasets"), names("pods")


def test_deleting_a_deployment_while_it_scales_leaves_nothing_and_it_comes_back(stack: Stack) -> None:
    """The Pods stay unscheduled (no node matches): only the controllers and the collector act."""
    for pods in (0, 3):
        stack.apply(_deployment(20))
        if pods:
            wait_for(lambda: len(_left(stack)[1]) >= pods, 60, "some Pods created")  # noqa: B023
        stack.kubectl("delete", "deployment", "churn", "--wait=false")
        wait_for(lambda: _left(stack) == ([], []), 60, "no ReplicaSet and no Pod left")
    stack.apply(_deployment(3))
    wait_for(lambda: _scaled(stack, 3), 60, "the re-applied Deployment's ReplicaSet and its 3 Pods")
    stack.kubectl("delete", "deployment", "churn", "--wait=false")
    wait_for(lambda: _left(stack) == ([], []), 60, "nothing left at the end")


def _scaled(stack: Stack, replicas: int) -> bool:
    d = stack.get("deployment", "churn")
    pods = _left(stack)[1]
    return int((d.get("status") or {}).get("replicas") or 0) == replicas and len(pods) >= replicas


def test_what_a_controller_creates_for_a_deleted_owner_is_collected(stack: Stack) -> None:
    """A controller acting on a stale cache creates a ReplicaSet for a Deployment already deleted (or a
    Pod for a deleted ReplicaSet): the owner's deletion came first, so only the collector noticing the
    absent owner removes it, as kube's garbage collector does."""
    stack.apply(_deployment(0))
    gone = stack.get("deployment", "churn")["metadata"]
    stack.kubectl("delete", "deployment", "churn")
    wait_for(lambda: _left(stack) == ([], []), 60, "the Deployment's ReplicaSet collected")
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "churn", "uid": gone["uid"],
             "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    rs = yaml.safe_load(_deployment(2))
    rs["kind"] = "ReplicaSet"
    rs["metadata"] = {"name": "churn-late", "namespace": "default", "labels": {"app": "churn"},
                      "ownerReferences": [owner]}  # fmt: skip
    stack.apply(yaml.safe_dump(rs))
    wait_for(lambda: _left(stack) == ([], []), 60, "the late ReplicaSet and its Pods collected")


def test_a_deployment_applied_again_scales_when_a_replicaset_has_its_name(stack: Stack) -> None:
    """A ReplicaSet left from an earlier Deployment of the same name and template (here orphaned on
    purpose) holds the name the new one would take: the controller moves on (``collisionCount``)
    instead of failing with AlreadyExists for ever."""
    stack.apply(_deployment(1))
    wait_for(lambda: _scaled(stack, 1), 60, "the first Deployment scaled")
    stack.kubectl("delete", "deployment", "churn", "--cascade=orphan")
    stack.apply(_deployment(2))
    count = wait_for(
        lambda: stack.get("deployment", "churn").get("status", {}).get("collisionCount"), 60, "collisionCount"
    )
    assert count == 1
    wait_for(lambda: len(stack.get("deployment", "churn").get("status", {}).get("conditions") or []) == 2
             and _scaled_new(stack, 2), 60, "the new Deployment's own ReplicaSet with 2 Pods")  # fmt: skip
    stack.kubectl("delete", "deployment", "churn")
    stack.kubectl("delete", "replicaset", "-l", "app=churn")
    wait_for(lambda: _left(stack) == ([], []), 60, "nothing left at the end")


def _scaled_new(stack: Stack, replicas: int) -> bool:
    uid = stack.get("deployment", "churn")["metadata"]["uid"]
    sets = stack.get("replicasets", "-l", "app=churn")["items"]
    mine = [r for r in sets if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])]
    return len(mine) == 1 and int((mine[0].get("status") or {}).get("replicas") or 0) == replicas


def test_a_node_whose_runtime_is_down_is_not_ready_and_gets_no_pods(stack: Stack) -> None:
    name = "edge-noruntime"
    edge_dir = stack.tmp / name
    socket = stack.tmp / "no-such-runtime.sock"
    stack.join_edge(name, edge_dir, ("--remote-runtime-endpoint", f"unix://{socket}"))
    stack.start_edgecore(name, edge_dir)

    def ready() -> dict[str, Any] | None:
        try:
            node = stack.get("node", name)
        except Exception:
            return None
        conds = (node.get("status") or {}).get("conditions") or []
        return next((c for c in conds if c.get("type") == "Ready"), None)

    cond = wait_for(lambda: (c := ready()) and c.get("reason") == "KubeletNotReady" and c, 60, "Ready=False")
    assert cond["status"] == "False" and "container runtime is down" in cond["message"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "wants-noruntime", "namespace": "default"},
           "spec": {"nodeSelector": {"kubernetes.io/hostname": name},
                    "containers": [{"name": "c", "image": "localhost/busybox:latest"}]}}  # fmt: skip
    stack.apply(yaml.safe_dump(pod))

    def unschedulable() -> str | None:
        st = stack.get("pod", "wants-noruntime").get("status") or {}
        c = next((c for c in st.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        return c.get("message") if c.get("status") == "False" else None

    assert "not ready" in wait_for(unschedulable, 60, "the Pod unschedulable")
    assert (ready() or {}).get("status") == "False"
    stack.kubectl("delete", "pod", "wants-noruntime", "--wait=false")
