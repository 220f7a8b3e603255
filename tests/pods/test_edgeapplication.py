"""The whole story on real Pods: an EdgeApplication across two node groups, with overriders, turned by
standalone cloudcore's controllers into Deployments, Pods scheduled onto each group's node and run by
edged on containerd; each node's MetaServer holds only its own group's endpoints of the Service, and
those addresses answer with their group's content."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _peers import mosquitto
from _stack import Stack, wait_for

from pods._containerd import BUSYBOX, Containerd

NODES = ("edge-1", "edge-2")
SITE_B_IMAGE = "localhost/busybox:site-b"

MANIFESTS = """
apiVersion: apps.kubeedge.io/v1alpha1
kind: NodeGroup
metadata: {name: site-a}
spec: {nodes: [edge-1]}
---
apiVersion: apps.kubeedge.io/v1alpha1
kind: NodeGroup
metadata: {name: site-b}
spec: {nodes: [edge-2]}
---
apiVersion: apps.kubeedge.io/v1alpha1
kind: EdgeApplication
metadata: {name: hello, namespace: default}
spec:
  workloadTemplate:
    manifests:
      - apiVersion: apps/v1
        kind: Deployment
        metadata: {name: hello, namespace: default}
        spec:
          replicas: 1
          selector: {matchLabels: {app: hello}}
          template:
            metadata: {labels: {app: hello}}
            spec:
              terminationGracePeriodSeconds: 1
              containers:
                - name: web
                  image: localhost/busybox:latest
                  imagePullPolicy: IfNotPresent
                  command: [sh, -c, 'echo $SITE > /www/index.html; exec httpd -f -p 8080 -h /www']
                  ports: [{containerPort: 8080}]
                  env: [{name: SITE, value: unknown}]
                  readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
      - apiVersion: v1
        kind: Service
        metadata: {name: hello, namespace: default}
        spec:
          selector: {app: hello}
          ports: [{port: 80, targetPort: 8080}]
  workloadScope:
    targetNodeGroups:
      - name: site-a
        overriders:
          replicas: 2
          envOverriders:
            - {containerName: web, operator: replace, value: [{name: SITE, value: a}]}
      - name: site-b
        overriders:
          replicas: 1
          imageOverriders:
            - {component: Tag, operator: replace, value: site-b}
          envOverriders:
            - {containerName: web, operator: replace, value: [{name: SITE, value: b}]}
"""


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as r:
        body: bytes = r.read()
        return body.decode().strip()


@pytest.fixture(scope="module")
def stack(containerd: Containerd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A second tag of the local image, for site-b's image overrider.
    subprocess.run(
        ["ctr", "-a", str(containerd.socket), "-n", "k8s.io", "images", "tag", "--force",
         BUSYBOX, SITE_B_IMAGE],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tmp = Path(tmp_path_factory.mktemp("eapp"))
    with mosquitto() as broker:
        s = Stack(tmp, broker)
        try:
            s.start_cloudcore()
            for node in NODES:
                s.join_edge(node, tmp / node, extra=containerd.join_flags)
                s.start_edgecore(f"edgecore-{node}", tmp / node)
            ready = "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}"
            wait_for(
                lambda: s.kubectl("get", "nodes", "-o", ready).split() == ["True", "True"], 60, "nodes Ready"
            )
            s.apply(MANIFESTS)
            yield s
        finally:
            s.stop_all()


def _pods(stack: Stack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(stack.kubectl("get", "pods", "-l", "app=hello", "-o", "json"))[
        "items"
    ]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def test_each_group_runs_its_overridden_pods_on_its_own_nodes(stack: Stack) -> None:
    def settled() -> list[dict[str, Any]] | None:
        pods = _pods(stack)
        return pods if len(pods) == 3 and all(_ready(p) for p in pods) else None

    pods = wait_for(settled, 120, "3 hello pods Ready")
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        by_node.setdefault(p["spec"]["nodeName"], []).append(p)
    assert len(by_node["edge-1"]) == 2 and len(by_node["edge-2"]) == 1
    assert {p["spec"]["containers"][0]["image"] for p in by_node["edge-2"]} == {SITE_B_IMAGE}
    assert {p["spec"]["containers"][0]["image"] for p in by_node["edge-1"]} == {BUSYBOX}
    for node, site in (("edge-1", "a"), ("edge-2", "b")):
        for p in by_node[node]:
            assert http_get(f"http://{p['status']['podIP']}:8080/") == site
    wide = stack.kubectl("get", "deploy,pods", "-o", "wide")
    assert "Running" in wide and "edge-1" in wide and "edge-2" in wide


def test_each_node_sees_only_its_groups_endpoints_and_they_answer(stack: Stack) -> None:
    wait_for(lambda: len([p for p in _pods(stack) if _ready(p)]) == 3, 120, "3 hello pods Ready")
    pods = _pods(stack)
    for node, site in (("edge-1", "a"), ("edge-2", "b")):
        state = json.loads((stack.tmp / node / "edgecore.json").read_text())
        url = (
            f"http://127.0.0.1:{state['metaServerPort']}/apis/discovery.k8s.io/v1/namespaces/default/"
            "endpointslices?labelSelector=kubernetes.io/service-name=hello"
        )
        want = {p["status"]["podIP"] for p in pods if p["spec"]["nodeName"] == node}

        def held(url: str = url, want: set[str] = want) -> set[str] | None:
            with urllib.request.urlopen(url, timeout=3) as r:
                items = json.loads(r.read())["items"]
            got = {a for s in items for e in s.get("endpoints") or [] for a in e.get("addresses") or []}
            return got if got == want else None

        got = wait_for(held, 60, f"{node}'s MetaServer holds exactly its group's endpoints")
        for ip in got:
            assert http_get(f"http://{ip}:8080/") == site
