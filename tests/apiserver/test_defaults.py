"""Defaulting of built-in kinds (kubeapi/defaults.py): the expected objects are what kube-apiserver
v1.36.2 answered to the same minimal objects (``kubectl create --dry-run=server``), less what its
admission plugins add (service account, tolerations, priority) and what its storage allocates
(clusterIP, nodePort). tests/realk8s/test_api_parity.py compares with the real server itself."""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloudcore.apiserver._store import SQLiteStore
from kubeapi import ObjectService, Registry, ResourceType
from kubeapi.builtins import builtin_types
from kubeapi.defaults import apply_defaults

CONTAINER = {
    "imagePullPolicy": "IfNotPresent",
    "resources": {},
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}
POD_SPEC = {
    "dnsPolicy": "ClusterFirst",
    "restartPolicy": "Always",
    "schedulerName": "default-scheduler",
    "securityContext": {},
    "terminationGracePeriodSeconds": 30,
}


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    group, _, version = out["apiVersion"].rpartition("/")
    apply_defaults(group, version, out["kind"], out)
    return out


def test_pod() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert defaulted(pod) == {
        **pod,
        "spec": {
            "containers": [{"name": "c", "image": "busybox", **CONTAINER, "imagePullPolicy": "Always"}],
            "enableServiceLinks": True,
            **POD_SPEC,
        },
        "status": {},
    }


def test_pod_details() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p2"},
        "spec": {
            "hostNetwork": True,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "volumes": [
                {"name": "a"},
                {"name": "b", "secret": {"secretName": "x"}},
                {
                    "name": "c",
                    "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]},
                },
                {"name": "d", "hostPath": {"path": "/x"}},
            ],
            "containers": [
                {
                    "name": "c",
                    "image": "reg:5000/busybox",
                    "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"memory": "1Gi"}},
                    "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "lifecycle": {"preStop": {"httpGet": {"port": 80}}},
                }
            ],
            "initContainers": [{"name": "i", "image": "busybox@sha256:" + "a" * 64}],
        },
    }
    spec = defaulted(pod)["spec"]
    assert spec["enableServiceLinks"] is False and spec["terminationGracePeriodSeconds"] == 0
    assert spec["volumes"] == [
        {"name": "a", "emptyDir": {}},
        {"name": "b", "secret": {"secretName": "x", "defaultMode": 420}},
        {"name": "c", "downwardAPI": {"defaultMode": 420, "items": [
            {"path": "n", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]}},
        {"name": "d", "hostPath": {"path": "/x", "type": ""}},
    ]  # fmt: skip
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"  # no tag behind a registry port
    assert container["ports"] == [{"containerPort": 80, "hostPort": 80, "protocol": "TCP"}]
    assert container["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}
    assert container["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    http = {"path": "/", "port": 80, "scheme": "HTTP"}
    assert container["livenessProbe"] == {
        "httpGet": http, "failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1,
        "timeoutSeconds": 1,
    }  # fmt: skip
    assert container["lifecycle"]["preStop"]["httpGet"] == http
    assert spec["initContainers"][0]["imagePullPolicy"] == "IfNotPresent"  # by digest


@pytest.mark.parametrize(
    ("image", "policy"),
    [("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
     ("reg:5000/a/b", "Always"), ("reg:5000/a/b:v1", "IfNotPresent"),
     ("b:latest@sha256:" + "0" * 64, "Always")],
)  # fmt: skip
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "image": image}]}}
    assert defaulted(pod)["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_deployment_and_replica_set_templates() -> None:
    template = {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "b:1"}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": template}}  # fmt: skip
    defaulted_template = {
        "metadata": {"labels": {"app": "d"}},
        "spec": {"containers": [{"name": "c", "image": "b:1", **CONTAINER}], **POD_SPEC},
    }
    assert defaulted(deployment) == {
        **deployment,
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "d"}},
            "strategy": {
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate",
            },
            "template": defaulted_template,
        },
        "status": {},
    }
    recreate = copy.deepcopy(deployment)
    recreate["spec"].update(replicas=0, strategy={"type": "Recreate"})
    assert defaulted(recreate)["spec"]["strategy"] == {"type": "Recreate"}
    assert defaulted(recreate)["spec"]["replicas"] == 0
    replica_set = {**deployment, "kind": "ReplicaSet"}
    assert defaulted(replica_set) == {
        **replica_set,
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}}, "template": defaulted_template},
        "status": {"replicas": 0},
    }


def test_services() -> None:
    def service(**spec: Any) -> dict[str, Any]:
        return defaulted({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec})

    assert service(selector={"app": "d"}, ports=[{"port": 80}]) == {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "d"},
                 "sessionAffinity": "None", "type": "ClusterIP"},
        "status": {"loadBalancer": {}},
    }  # fmt: skip
    headless = service(clusterIP="None", ports=[{"port": 80, "targetPort": "http"}])["spec"]
    assert headless["clusterIPs"] == ["None"] and headless["ipFamilyPolicy"] == "RequireDualStack"
    assert headless["ipFamilies"] == ["IPv4", "IPv6"] and headless["ports"][0]["targetPort"] == "http"
    node_port = service(type="NodePort", sessionAffinity="ClientIP", ports=[{"port": 80, "protocol": "UDP"}])
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"
    assert node_port["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert node_port["spec"]["ports"][0]["protocol"] == "UDP"
    external = service(type="ExternalName", externalName="example.com")["spec"]
    assert "ipFamilies" not in external and "internalTrafficPolicy" not in external


def test_other_kinds() -> None:
    assert defaulted({"apiVersion": "v1", "kind": "Secret", "data": {}})["type"] == "Opaque"
    assert (
        defaulted({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls"})["type"]
        == "kubernetes.io/tls"
    )
    namespace = defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nsx"}})
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": "nsx"}
    assert namespace["status"] == {"phase": "Active"}
    event = defaulted({"apiVersion": "v1", "kind": "Event", "involvedObject": {"kind": "Pod", "name": "p"}})
    assert event == {
        "apiVersion": "v1", "kind": "Event", "metadata": {}, "eventTime": None, "firstTimestamp": None,
        "lastTimestamp": None, "involvedObject": {"kind": "Pod", "name": "p"}, "reportingComponent": "",
        "reportingInstance": "", "source": {},
    }  # fmt: skip
    node = defaulted({"apiVersion": "v1", "kind": "Node", "status": {"capacity": {"cpu": "2"}}})
    assert node["status"]["allocatable"] == {"cpu": "2"}
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    assert node["status"]["nodeInfo"]["kubeletVersion"] == ""
    endpoint_slice = defaulted({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                "endpoints": [{"addresses": ["1.2.3.4"]}],
                                "ports": [{"port": 80}]})  # fmt: skip
    assert endpoint_slice["endpoints"] == [{"addresses": ["1.2.3.4"], "conditions": {}}]
    assert endpoint_slice["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    binding = defaulted({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "roleRef": {"kind": "Role", "name": "x"},
                         "subjects": [{"kind": "User", "name": "u"},
                                      {"kind": "ServiceAccount", "name": "s"}]})  # fmt: skip
    assert binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "u"},
        {"kind": "ServiceAccount", "name": "s"},
    ]
    assert defaulted({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
    }  # fmt: skip


@pytest.mark.parametrize(
    "spec",
    [
        {"containers": "x"},
        {"containers": [1, None, {"image": 5, "ports": "p", "livenessProbe": []}]},
        {"volumes": [{"name": "v", "secret": "s"}], "containers": None},
        {
            "hostNetwork": True,
            "containers": [{"ports": [{"containerPort": "80"}], "resources": {"limits": 3}}],
        },
    ],
)
def test_values_of_the_wrong_type_are_left_alone(spec: dict[str, Any]) -> None:
    """Defaulting never fails a request: what it cannot read it leaves as it is."""
    out = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": copy.deepcopy(spec)})
    assert out["spec"]["enableServiceLinks"] is True


def test_deployment_values_of_the_wrong_type_are_left_alone() -> None:
    for strategy in ("Recreate", {"type": "RollingUpdate", "rollingUpdate": 3}):
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"strategy": strategy, "template": 1},
        }
        assert defaulted(deployment)["spec"]["strategy"] == strategy


# -- through the object service: create, update, patch -------------------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[ObjectService, Registry]]:
    registry = Registry()
    registry.add(*builtin_types())
    store = SQLiteStore(tmp_path / "db.sqlite", registry)
    await store.open()
    try:
        objects = ObjectService(store, registry)
        ns = registry.get("", "v1", "namespaces")
        assert ns is not None
        await objects.create(ns, "", {"metadata": {"name": "default"}})
        yield objects, registry
    finally:
        await store.close()


def _type(registry: Registry, group: str, plural: str) -> ResourceType:
    found = registry.get(group, "v1", plural)
    assert found is not None
    return found


async def test_create_update_and_patch_are_defaulted(service: tuple[ObjectService, Registry]) -> None:
    objects, registry = service
    pods = _type(registry, "", "pods")
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "b:1"}]}}
    created = (await objects.create(pods, "default", copy.deepcopy(body))).object()
    assert created["spec"]["enableServiceLinks"] is True
    assert created["spec"]["containers"][0]["terminationMessagePolicy"] == "File"
    assert created["metadata"]["generation"] == 1
    # A PUT of the object as first sent (no defaults) is the stored object again: nothing is written.
    again = {
        **copy.deepcopy(body),
        "metadata": {**body["metadata"], "resourceVersion": created["metadata"]["resourceVersion"]},
    }
    same = await objects.update(pods, "default", "p", again)
    assert same.resource_version == int(created["metadata"]["resourceVersion"])
    # A field removed by a patch comes back; one set to false stays.
    patched = await objects.patch(pods, "default", "p", "application/merge-patch+json",
                                  {"spec": {"enableServiceLinks": None, "dnsPolicy": None}})  # fmt: skip
    assert patched.object()["spec"]["enableServiceLinks"] is True
    assert patched.object()["spec"]["dnsPolicy"] == "ClusterFirst"
    patched = await objects.patch(pods, "default", "p", "application/merge-patch+json",
                                  {"spec": {"enableServiceLinks": False}})  # fmt: skip
    assert patched.object()["spec"]["enableServiceLinks"] is False
    assert patched.object()["metadata"]["generation"] == 2


async def test_deployment_generation_counts_real_changes_only(
    service: tuple[ObjectService, Registry],
) -> None:
    objects, registry = service
    deployments = _type(registry, "apps", "deployments")
    body = {
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                 "spec": {"containers": [{"name": "c", "image": "b:1"}]}}},
    }  # fmt: skip
    created = (await objects.create(deployments, "default", copy.deepcopy(body))).object()
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"
    assert created["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert (
        "enableServiceLinks" not in created["spec"]["template"]["spec"]
    )  # a Pod's default, not a template's
    updated = (await objects.update(deployments, "default", "d", copy.deepcopy(body))).object()
    assert updated["metadata"]["generation"] == 1
    assert updated["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_secret_and_status_writes(service: tuple[ObjectService, Registry]) -> None:
    objects, registry = service
    secrets = _type(registry, "", "secrets")
    created = await objects.create(secrets, "default", {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    assert created.object()["type"] == "Opaque"
    nodes = _type(registry, "", "nodes")
    await objects.create(nodes, "", {"metadata": {"name": "n"}})
    status = {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "2"}}}
    written = (await objects.update(nodes, "", "n", status, subresource="status")).object()
    assert written["status"]["allocatable"] == {"cpu": "2"}
    assert written["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}


async def test_objects_stored_before_defaulting_are_defaulted_once(tmp_path: Path) -> None:
    """A Pod an older kubeshore stored as sent (written to the store directly, and the store's defaults
    version removed) comes back defaulted after a restart, at the same resourceVersion, as
    kube-apiserver defaults what it reads from etcd; the row is rewritten once."""
    registry = Registry()
    registry.add(*builtin_types())
    pods = _type(registry, "", "pods")
    old = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "old", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "b:1"}]}}  # fmt: skip
    db = tmp_path / "db.sqlite"
    store = SQLiteStore(db, registry)
    await store.open()
    try:
        written = await store.create(pods, copy.deepcopy(old))
        assert "enableServiceLinks" not in written.object()["spec"]
    finally:
        await store.close()

    def row() -> Any:
        with sqlite3.connect(db) as conn:
            return json.loads(conn.execute("SELECT data FROM objects WHERE name = 'old'").fetchone()[0])

    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM counters WHERE name = 'defaults'")
    assert "enableServiceLinks" not in row()["spec"]
    for _ in range(2):
        store = SQLiteStore(db, registry)
        await store.open()
        try:
            loaded = await store.get(pods, "default", "old")
            assert loaded is not None and loaded.resource_version == written.resource_version
            assert loaded.object()["spec"]["enableServiceLinks"] is True
            assert loaded.object()["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
        finally:
            await store.close()
        assert row()["spec"]["enableServiceLinks"] is True
