"""NodeGroup and EdgeApplication controllers against the real embedded API server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nodegroup_testing import eventually, kubectl, requires_apiserver

from nodegroup._naming import BELONGING_TO_LABEL, NODEGROUP_FINALIZER, ZONE_LABEL

pytestmark = [requires_apiserver, pytest.mark.timeout(120)]

NG = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
PODS = "/api/v1/namespaces/default/pods"


def ea_path(name: str, namespace: str = "default") -> str:
    return f"/apis/apps.kubeedge.io/v1alpha1/namespaces/{namespace}/edgeapplications/{name}"


async def make_node(kube: Any, name: str, labels: dict[str, str] | None = None, ready: str = "True") -> None:
    await kube.acreate(
        "/api/v1/nodes",
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}},
    )
    await set_ready(kube, name, ready)


async def set_ready(kube: Any, name: str, ready: str) -> None:
    condition = {
        "type": "Ready",
        "status": ready,
        "reason": "Test",
        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
    }
    await kube.apatch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": [condition]}})


async def labels_of(kube: Any, name: str) -> dict[str, str]:
    node = await kube.aget(f"/api/v1/nodes/{name}")
    return dict(node["metadata"].get("labels") or {})


async def statuses(kube: Any, group: str) -> list[dict[str, str]]:
    obj = await kube.aget(f"{NG}/{group}")
    return list((obj.get("status") or {}).get("nodeStatuses") or [])


def nodegroup(
    name: str, nodes: list[str] | None = None, match: dict[str, str] | None = None, topology: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodes": nodes or []}
    if match:
        spec["matchLabels"] = match
    if topology:
        spec["topologyEnabled"] = True
    return {
        "apiVersion": "apps.kubeedge.io/v1alpha1",
        "kind": "NodeGroup",
        "metadata": {"name": name},
        "spec": spec,
    }


async def test_nodegroup_labels_status_and_finalizer(kube: Any, controllers: None, apiserver: Path) -> None:
    await make_node(kube, "ng1-a", {"region": "east"})
    await make_node(kube, "ng1-b")
    await make_node(kube, "ng1-c", {"region": "west"})
    await kube.acreate(
        NG, nodegroup("ng1", nodes=["ng1-b", "ng1-ghost"], match={"region": "east"}, topology=True)
    )

    async def labelled() -> None:
        for name in ("ng1-a", "ng1-b"):
            labels = await labels_of(kube, name)
            assert labels.get(BELONGING_TO_LABEL) == "ng1" and labels.get(ZONE_LABEL) == "ng1"
        assert BELONGING_TO_LABEL not in await labels_of(kube, "ng1-c")
        obj = await kube.aget(f"{NG}/ng1")
        assert NODEGROUP_FINALIZER in obj["metadata"]["finalizers"]
        assert await statuses(kube, "ng1") == [
            {"nodeName": "ng1-a", "readyStatus": "Ready", "selectionStatus": "Succeeded"},
            {"nodeName": "ng1-b", "readyStatus": "Ready", "selectionStatus": "Succeeded"},
            {
                "nodeName": "ng1-ghost",
                "readyStatus": "Unknown",
                "selectionStatus": "Failed",
                "selectionStatusReason": "node does not exist",
            },
        ]

    await eventually(labelled)

    for ready, shown in (("False", "NotReady"), ("Unknown", "Unknown"), ("True", "Ready")):
        await set_ready(kube, "ng1-a", ready)

        async def readiness(shown: str = shown) -> None:
            assert (await statuses(kube, "ng1"))[0] == {
                "nodeName": "ng1-a",
                "readyStatus": shown,
                "selectionStatus": "Succeeded",
            }

        await eventually(readiness)

    # kubectl sees what a KubeEdge user would.
    out = kubectl(apiserver, "get", "nodes", "-l", f"{BELONGING_TO_LABEL}=ng1", "-o", "name").stdout
    assert sorted(out.split()) == ["node/ng1-a", "node/ng1-b"]

    await kube.adelete(f"{NG}/ng1")

    async def released() -> None:
        for name in ("ng1-a", "ng1-b"):
            labels = await labels_of(kube, name)
            assert BELONGING_TO_LABEL not in labels and ZONE_LABEL not in labels
        assert await kube.aget_or_none(f"{NG}/ng1") is None

    await eventually(released)


async def test_node_moves_between_groups(kube: Any, controllers: None) -> None:
    await make_node(kube, "mv-x", {"site": "a"})
    await kube.acreate(NG, nodegroup("mv-a", match={"site": "a"}))
    await kube.acreate(NG, nodegroup("mv-b", match={"site": "b"}))

    async def in_group(group: str, other: str) -> None:
        assert (await labels_of(kube, "mv-x")).get(BELONGING_TO_LABEL) == group
        assert [s["nodeName"] for s in await statuses(kube, group)] == ["mv-x"]
        assert await statuses(kube, other) == []

    await eventually(lambda: in_group("mv-a", "mv-b"))
    # A pod placed on mv-x for group mv-a, and one placed there for no group.
    for pod, selector in (("mv-grouped", {BELONGING_TO_LABEL: "mv-a"}), ("mv-plain", {})):
        spec = {
            "nodeName": "mv-x",
            "nodeSelector": selector,
            "containers": [{"name": "c", "image": "busybox"}],
        }
        await kube.acreate(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod}, "spec": spec})
    await kube.apatch("/api/v1/nodes/mv-x", {"metadata": {"labels": {"site": "b"}}})
    await eventually(lambda: in_group("mv-b", "mv-a"))

    async def evicted() -> None:
        assert await kube.aget_or_none(f"{PODS}/mv-grouped") is None
        assert await kube.aget_or_none(f"{PODS}/mv-plain") is not None

    await eventually(evicted)

    # A group naming a node that belongs elsewhere reports why it cannot have it.
    await kube.acreate(NG, nodegroup("mv-c", nodes=["mv-x"]))

    async def conflict() -> None:
        assert await statuses(kube, "mv-c") == [
            {
                "nodeName": "mv-x",
                "readyStatus": "Ready",
                "selectionStatus": "Failed",
                "selectionStatusReason": "node mv-x has already belonged to NodeGroup mv-b",
            }
        ]
        assert (await labels_of(kube, "mv-x")).get(BELONGING_TO_LABEL) == "mv-b"

    await eventually(conflict)
    # When the first group lets go, the waiting group takes the node.
    await kube.adelete(f"{NG}/mv-b")

    async def taken() -> None:
        assert (await labels_of(kube, "mv-x")).get(BELONGING_TO_LABEL) == "mv-c"
        assert (await statuses(kube, "mv-c"))[0]["selectionStatus"] == "Succeeded"

    await eventually(taken)


def web_manifests() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "nodeSelector": {"disk": "ssd"},
                        "containers": [{"name": "app", "image": "docker.io/library/nginx:1.25"}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config"}, "data": {"k": "v"}},
    ]


def edge_application(
    name: str, manifests: list[dict[str, Any]], groups: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "apps.kubeedge.io/v1alpha1",
        "kind": "EdgeApplication",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"workloadTemplate": {"manifests": manifests}, "workloadScope": {"targetNodeGroups": groups}},
    }


DEPLOY = "/apis/apps/v1/namespaces/default/deployments"


async def status_has_conditions(kube: Any) -> bool:
    """Whether the installed CRD keeps ``status.conditions`` (an API server prunes unknown fields)."""
    crd = await kube.aget(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/edgeapplications.apps.kubeedge.io"
    )
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return "conditions" in schema["properties"]["status"].get("properties", {})


async def test_edgeapplication_lifecycle(kube: Any, controllers: None, apiserver: Path) -> None:
    groups = [
        {
            "name": "east",
            "overriders": {
                "replicas": 3,
                "imageOverriders": [
                    {"component": "Registry", "operator": "replace", "value": "registry.east:5000"},
                    {"component": "Tag", "operator": "replace", "value": "1.26"},
                ],
                "envOverriders": [
                    {"containerName": "app", "operator": "add", "value": [{"name": "ZONE", "value": "east"}]}
                ],
            },
        },
        {"name": "west"},
    ]
    await kube.acreate(
        "/apis/apps.kubeedge.io/v1alpha1/namespaces/default/edgeapplications",
        edge_application("web", web_manifests(), groups),
    )

    async def generated() -> dict[str, Any]:
        east = await kube.aget_or_none(f"{DEPLOY}/web-east")
        west = await kube.aget_or_none(f"{DEPLOY}/web-west")
        assert east is not None and west is not None
        assert await kube.aget_or_none("/api/v1/namespaces/default/services/web") is not None
        assert await kube.aget_or_none("/api/v1/namespaces/default/configmaps/web-config") is not None
        return {"east": east, "west": west}

    deployments = await eventually(generated)
    east, west = deployments["east"], deployments["west"]
    assert east["spec"]["replicas"] == 3 and west["spec"]["replicas"] == 1
    east_pod = east["spec"]["template"]["spec"]
    assert east_pod["containers"][0]["image"] == "registry.east:5000/library/nginx:1.26"
    assert east_pod["containers"][0]["env"] == [{"name": "ZONE", "value": "east"}]
    assert east_pod["nodeSelector"] == {"disk": "ssd", BELONGING_TO_LABEL: "east"}
    assert west["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd", BELONGING_TO_LABEL: "west"}
    assert west["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/library/nginx:1.25"
    edge_app = await kube.aget(ea_path("web"))
    for obj in (east, west):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "EdgeApplication",
            "web",
            edge_app["metadata"]["uid"],
            True,
        )
    service = await kube.aget("/api/v1/namespaces/default/services/web")
    assert service["metadata"]["annotations"]["apps.kubeedge.io/service-topology"] == "range-nodegroup"
    assert await kube.aget_or_none("/api/v1/namespaces/default/services/web-east") is None
    assert (await kube.aget("/api/v1/namespaces/default/configmaps/web-config"))["data"] == {"k": "v"}

    async def workload_status(expected: dict[str, str]) -> None:
        obj = await kube.aget(ea_path("web"))
        entries = (obj.get("status") or {}).get("workloadStatus") or []
        assert {e["identifier"].get("name"): e["conditions"] for e in entries} == expected
        assert [e["identifier"]["ordinal"] for e in entries] == sorted(
            e["identifier"]["ordinal"] for e in entries
        )

    await eventually(
        lambda: workload_status(
            {
                "web-east": "Processing",
                "web-west": "Processing",
                "web": "Available",
                "web-config": "Available",
            }
        )
    )
    # The Deployment controller would report ready replicas; here the test does.
    await kube.apatch(f"{DEPLOY}/web-west/status", {"status": {"replicas": 1, "readyReplicas": 1}})
    await eventually(
        lambda: workload_status(
            {"web-east": "Processing", "web-west": "Available", "web": "Available", "web-config": "Available"}
        )
    )

    # Bad input: an overrider naming a missing container. The status and an Event say so, the other
    # targets are still applied, and the east Deployment made before stays.
    bad = [
        groups[0]
        | {
            "overriders": {
                "argsOverriders": [{"containerName": "sidecar", "operator": "add", "value": ["-v"]}]
            }
        },
        groups[1],
        {"name": "north"},
    ]
    await kube.apatch(ea_path("web"), {"spec": {"workloadScope": {"targetNodeGroups": bad}}})

    async def reported() -> None:
        assert await kube.aget_or_none(f"{DEPLOY}/web-north") is not None
        assert await kube.aget_or_none(f"{DEPLOY}/web-east") is not None
        events = await kube.aget("/api/v1/namespaces/default/events")
        messages = [e["message"] for e in events["items"] if e["involvedObject"].get("name") == "web"]
        assert any("container 'sidecar' not found" in m and "node group 'east'" in m for m in messages), (
            messages
        )
        if await status_has_conditions(kube):
            obj = await kube.aget(ea_path("web"))
            conditions = (obj.get("status") or {}).get("conditions") or []
            assert any("container 'sidecar' not found" in c.get("message", "") for c in conditions), obj.get(
                "status"
            )

    await eventually(reported)

    # Removing a target group removes what it produced.
    await kube.apatch(ea_path("web"), {"spec": {"workloadScope": {"targetNodeGroups": [groups[0]]}}})

    async def only_east() -> None:
        assert await kube.aget_or_none(f"{DEPLOY}/web-west") is None
        assert await kube.aget_or_none(f"{DEPLOY}/web-north") is None
        assert (await kube.aget(f"{DEPLOY}/web-east"))["spec"]["replicas"] == 3

    await eventually(only_east)

    # Removing a manifest removes its object.
    await kube.apatch(ea_path("web"), {"spec": {"workloadTemplate": {"manifests": web_manifests()[:2]}}})

    async def no_configmap() -> None:
        assert await kube.aget_or_none("/api/v1/namespaces/default/configmaps/web-config") is None

    await eventually(no_configmap)

    await kube.adelete(ea_path("web"))

    async def all_gone() -> None:
        assert await kube.aget_or_none(f"{DEPLOY}/web-east") is None
        assert await kube.aget_or_none("/api/v1/namespaces/default/services/web") is None

    await eventually(all_gone)


async def test_unknown_kind_is_reported(kube: Any, controllers: None) -> None:
    manifests = [
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        web_manifests()[2] | {"metadata": {"name": "uk-config"}},
    ]
    await kube.acreate(
        "/apis/apps.kubeedge.io/v1alpha1/namespaces/default/edgeapplications",
        edge_application("uk", manifests, [{"name": "east"}]),
    )

    async def reported() -> None:
        assert await kube.aget_or_none("/api/v1/namespaces/default/configmaps/uk-config") is not None
        obj = await kube.aget(ea_path("uk"))
        status = obj.get("status") or {}
        assert {"identifier": {"ordinal": 0}, "conditions": "Processing"} in (
            status.get("workloadStatus") or []
        )
        events = await kube.aget("/api/v1/namespaces/default/events")
        messages = [e["message"] for e in events["items"] if e["involvedObject"].get("name") == "uk"]
        assert any("does not serve kind 'Widget'" in m for m in messages), messages
        if await status_has_conditions(kube):
            conditions = status.get("conditions") or []
            assert any("does not serve kind 'Widget'" in c.get("message", "") for c in conditions)

    await eventually(reported)


async def test_label_set_target(kube: Any, controllers: None) -> None:
    from nodegroup._naming import label_set_suffix

    labels = {"arch": "arm64", "site": "lab"}
    manifest = web_manifests()[0] | {"metadata": {"name": "lbl"}}
    body = edge_application("lbl", [manifest], [])
    body["spec"]["workloadScope"]["targetNodeLabels"] = [
        {"labelSelector": {"matchLabels": labels}, "overriders": {"replicas": 2}}
    ]
    await kube.acreate("/apis/apps.kubeedge.io/v1alpha1/namespaces/default/edgeapplications", body)
    name = f"lbl-{label_set_suffix(labels)}"

    async def stamped() -> dict[str, Any]:
        obj = await kube.aget_or_none(f"{DEPLOY}/{name}")
        assert obj is not None
        return obj

    deployment = await eventually(stamped)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["nodeSelector"] == {"disk": "ssd"}, "the template's own selector is kept"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "arch", "operator": "In", "values": ["arm64"]},
                {"key": "site", "operator": "In", "values": ["lab"]},
            ]
        }
    ]
