"""The end-to-end scenarios on both backends: standalone cloudcore (embedded API server and its own
workload controllers) and cloudcore plus ``kubeshore nodegroup-controller`` on the host against a real
control plane, each with its ServiceAccount's token under deploy/'s RBAC.

One stack per backend (module scope), and the tests run in file order on it: join, objects to the edge
store, devices, desired values, node groups and EdgeApplications (the scheduler binds the pods, the
EndpointSlice controller makes the slices: the real ones, or standalone cloudcore's on the same inputs),
an invalid EdgeApplication, cloud kill -9, edge kill -9 with NotReady under the real node-lifecycle
controller (once: ~50 s), and last the RBAC check against what the processes called."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _peers import mosquitto
from _stack import BIN, REPO, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLES = REPO / "examples"
NODE = "edge-1"


@pytest.fixture(scope="module", params=["embedded", "realk8s"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cluster = request.getfixturevalue("control_plane") if request.param == "realk8s" else None
    tmp = tmp_path_factory.mktemp(request.param)
    with mosquitto() as broker:
        s = Stack(tmp, broker, cluster)
        try:
            # The embedded backend has no node-lifecycle controller but cloudcore's own: a short grace
            # keeps its NotReady quick. On the real cluster cloudcore keeps its defaults.
            config: dict[str, Any] = {"deviceStatusFlushInterval": 0.2, "resyncPeriod": 5}
            if cluster is None:
                config |= {"nodeGracePeriod": 4, "keepaliveTimeout": 3}
            s.start_cloudcore(**config)
            s.start_nodegroup_controller()
            s.join_edge()
            s.start_edgecore()
            s.start(
                "mapper", str(BIN / "kubeshore"), "mapper", "run", "virtual",
                "--edgecore-sock", str(s.edge_dir / "dmi.sock"), "--socket", str(tmp / "virtual.sock"),
                "--rest-port", "0",
            )  # fmt: skip
            yield s
        finally:
            s.stop_all()


def ready(stack: Stack, node: str = NODE) -> str:
    conds = stack.get("node", node).get("status", {}).get("conditions") or []
    return next((str(c["status"]) for c in conds if c["type"] == "Ready"), "")


def taints(stack: Stack, node: str = NODE) -> set[str]:
    return {t["key"] for t in stack.get("node", node).get("spec", {}).get("taints") or []}


def test_join(stack: Stack) -> None:
    wait_for(lambda: ready(stack) == "True", 90, f"{NODE} Ready on {stack.backend}")
    node = stack.get("node", NODE)
    assert "node-role.kubernetes.io/edge" in node["metadata"]["labels"]
    if stack.cluster:
        # The real node-lifecycle controller lifts the not-ready taint admission puts on new Nodes.
        wait_for(lambda: not taints(stack), 60, "no taints on a Ready node")


POD = """
apiVersion: v1
kind: Pod
metadata: {name: app-1, namespace: default}
spec:
  nodeName: edge-1
  containers:
    - name: c
      image: registry.k8s.io/pause:3.10
      envFrom: [{configMapRef: {name: app-config}}, {secretRef: {name: app-secret}}]
---
apiVersion: v1
kind: Pod
metadata: {name: elsewhere, namespace: default}
spec:
  nodeName: no-such-node
  containers: [{name: c, image: registry.k8s.io/pause:3.10, envFrom: [{configMapRef: {name: other}}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: default}
data: {mode: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other, namespace: default}
data: {mode: "x"}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret, namespace: default}
stringData: {password: s3cret}
"""


def test_pods_configmaps_secrets_reach_the_edge_store(stack: Stack) -> None:
    stack.apply(POD)
    wait_for(lambda: "default/app-1" in stack.edge_objects("core/v1/pods"), 30, "pod at the edge")
    wait_for(lambda: "default/app-config" in stack.edge_objects("core/v1/configmaps"), 30, "configmap")
    wait_for(lambda: "default/app-secret" in stack.edge_objects("core/v1/secrets"), 30, "secret")
    # Only what the node's pods use.
    assert "default/elsewhere" not in stack.edge_objects("core/v1/pods")
    assert "default/other" not in stack.edge_objects("core/v1/configmaps")
    stack.kubectl("patch", "configmap", "app-config", "-p", '{"data":{"mode":"2"}}')
    wait_for(
        lambda: stack.edge_objects("core/v1/configmaps")["default/app-config"]["data"]["mode"] == "2",
        30,
        "configmap update at the edge",
    )
    stack.kubectl("delete", "secret", "app-secret")
    wait_for(lambda: "default/app-secret" not in stack.edge_objects("core/v1/secrets"), 30, "secret deleted")


def twins_reported(stack: Stack) -> dict[str, str]:
    return {k: v for k, v in stack.reported("thermometer-1").items() if v not in (None, "")}


def test_device_twins_in_devicestatus(stack: Stack) -> None:
    stack.kubectl(
        "apply", "-f", str(EXAMPLES / "devicemodel-virtual-thermometer.yaml"),
        "-f", str(EXAMPLES / "device-virtual-thermometer.yaml"),
    )  # fmt: skip
    twins = wait_for(lambda: len(twins_reported(stack)) == 4 and twins_reported(stack), 60, "four twins")
    assert set(twins) == {"temperature", "humidity", "target-temperature", "power"}
    wait_for(lambda: stack.state("thermometer-1") == "online", 30, "thermometer-1 online")


def set_desired(stack: Stack, value: str) -> None:
    op = [{"op": "replace", "path": "/spec/properties/2/desired/value", "value": value}]
    stack.kubectl("patch", "device", "thermometer-1", "--type=json", "-p", json.dumps(op))


def reports(stack: Stack, value: float) -> bool:
    return float(stack.reported("thermometer-1").get("target-temperature") or "nan") == value


def test_desired_value_reaches_the_device(stack: Stack) -> None:
    set_desired(stack, "19")
    wait_for(lambda: reports(stack, 19.0), 30, "target-temperature 19 reported")


FAKE_NODE = """
apiVersion: v1
kind: Node
metadata:
  name: edge-2
  labels: {kubernetes.io/hostname: edge-2, kubeshore.io/site: b}
status:
  conditions: [{type: Ready, status: "True", reason: KubeletReady, message: fake}]
  capacity: {cpu: "8", memory: 32Gi, pods: "110"}
  allocatable: {cpu: "8", memory: 32Gi, pods: "110"}
"""


def members(stack: Stack, group: str) -> list[str]:
    statuses = stack.get("nodegroup", group).get("status", {}).get("nodeStatuses") or []
    return sorted(s["nodeName"] for s in statuses if s.get("selectionStatus") == "Succeeded")


def pods_by_node(stack: Stack, deployment: str) -> dict[str, int]:
    """node -> number of the deployment's pods bound there (by the scheduler)."""
    out: dict[str, int] = {}
    for pod in stack.get("pods", "-l", "app=hello-edge")["items"]:
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("name", "")
        live = "deletionTimestamp" not in pod["metadata"]
        if owner.startswith(deployment + "-") and pod["spec"].get("nodeName") and live:
            out[pod["spec"]["nodeName"]] = out.get(pod["spec"]["nodeName"], 0) + 1
    return out


def test_nodegroups_edgeapplication_pods_and_endpointslices(stack: Stack) -> None:
    # edge-2 is a Node with no edgecore behind it: a second group to schedule to. It is used at once,
    # well before the node-lifecycle controller would find its missing heartbeats (~50 s).
    stack.apply(FAKE_NODE)
    stack.kubectl(
        "apply", "-f", str(EXAMPLES / "nodegroups.yaml"), "-f", str(EXAMPLES / "edgeapplication.yaml")
    )
    wait_for(lambda: members(stack, "site-a") == [NODE], 60, "site-a members")
    wait_for(lambda: members(stack, "site-b") == ["edge-2"], 60, "site-b members")
    assert stack.get("node", NODE)["metadata"]["labels"]["apps.kubeedge.io/belonging-to"] == "site-a"
    deployments = wait_for(
        lambda: (
            {
                d["metadata"]["name"]: d
                for d in stack.get("deployments")["items"]
                if d["metadata"]["name"].startswith("hello-edge-")
            }
            if len(stack.get("deployments")["items"]) >= 2
            else None
        ),
        60,
        "two deployments",
    )
    assert sorted(deployments) == ["hello-edge-site-a", "hello-edge-site-b"]
    assert deployments["hello-edge-site-a"]["spec"]["replicas"] == 2
    service = stack.get("service", "hello-edge")
    assert service["metadata"]["annotations"]["apps.kubeedge.io/service-topology"] == "range-nodegroup"
    # The controller-manager makes ReplicaSets and Pods, the scheduler binds each group's pods to that
    # group's node: the real ones, or standalone cloudcore's workload controllers on the same inputs.
    # They stay Pending: this edge runs no pods (edged is off).
    wait_for(lambda: pods_by_node(stack, "hello-edge-site-a") == {NODE: 2}, 60, "site-a pods on edge-1")
    wait_for(lambda: pods_by_node(stack, "hello-edge-site-b") == {"edge-2": 1}, 60, "site-b pod on edge-2")
    wait_for(
        lambda: len([k for k in stack.edge_objects("core/v1/pods") if "/hello-edge-" in k]) == 2,
        30,
        "edge-1 holds its two pods",
    )
    # Play the kubelets' part: each pod gets an IP and becomes Ready; the EndpointSlice controller (real
    # or standalone) then lists all three endpoints, with the node each is on.
    for n, pod in enumerate(stack.get("pods", "-l", "app=hello-edge")["items"]):
        ip = f"10.244.0.{10 + n}"
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {
            "status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
            }
        }  # fmt: skip
        stack.kubectl(
            "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
            "-p", json.dumps(status),
        )  # fmt: skip

    def cloud_endpoints() -> list[dict[str, Any]]:
        slices = stack.get("endpointslices", "-l", "kubernetes.io/service-name=hello-edge")["items"]
        return [e for s in slices for e in s.get("endpoints") or []]

    wait_for(lambda: len(cloud_endpoints()) == 3, 60, "three endpoints in the cloud's slice")

    def edge_endpoints() -> list[dict[str, Any]]:
        slices = stack.edge_objects("discovery.k8s.io/v1/endpointslices").values()
        service = "kubernetes.io/service-name"
        mine = [s for s in slices if s["metadata"].get("labels", {}).get(service) == "hello-edge"]
        return [e for s in mine for e in s.get("endpoints") or []]

    # edge-1 (site-a) sees only site-a's two endpoints.
    got = wait_for(lambda: len(edge_endpoints()) == 2 and edge_endpoints(), 30, "edge-1's filtered slice")
    assert {e["nodeName"] for e in got} == {NODE}

    # edge-2 leaves site-b: the pod placed there for site-b is deleted (its ReplicaSet makes another,
    # which no node of site-b can take now).
    (evicted,) = [
        p["metadata"]["name"]
        for p in stack.get("pods", "-l", "app=hello-edge")["items"]
        if p["spec"].get("nodeName") == "edge-2"
    ]
    stack.kubectl(
        "patch", "nodegroup", "site-b", "--type=merge", "-p", '{"spec":{"nodes":[],"matchLabels":null}}'
    )
    wait_for(lambda: members(stack, "site-b") == [], 60, "site-b empty")

    def terminating() -> bool:
        # Gone, or (no kubelet on edge-2 to confirm a graceful delete) marked for deletion.
        pods = {p["metadata"]["name"]: p for p in stack.get("pods", "-l", "app=hello-edge")["items"]}
        return evicted not in pods or "deletionTimestamp" in pods[evicted]["metadata"]

    wait_for(terminating, 60, "the site-b pod on edge-2 deleted")
    # A changed EdgeApplication changes its Deployments.
    op = [{"op": "replace", "path": "/spec/workloadScope/targetNodeGroups/1/overriders/replicas", "value": 3}]
    stack.kubectl("patch", "edgeapplication", "hello-edge", "--type=json", "-p", json.dumps(op))
    wait_for(
        lambda: stack.get("deployment", "hello-edge-site-b")["spec"]["replicas"] == 3,
        60,
        "site-b's 3 replicas",
    )
    # Taints: edge-2 back in site-b but tainted NoSchedule takes none of site-b's pods; untainted, all 3.
    stack.kubectl("taint", "node", "edge-2", "example.com/maintenance=yes:NoSchedule")
    stack.kubectl("patch", "nodegroup", "site-b", "--type=merge", "-p", '{"spec":{"nodes":["edge-2"]}}')
    wait_for(lambda: members(stack, "site-b") == ["edge-2"], 60, "edge-2 in site-b again")
    time.sleep(3)  # what a scheduler would do by now, it has done
    assert pods_by_node(stack, "hello-edge-site-b") == {}, "a pod went to a tainted node"
    stack.kubectl("taint", "node", "edge-2", "example.com/maintenance-")
    wait_for(lambda: pods_by_node(stack, "hello-edge-site-b") == {"edge-2": 3}, 60, "3 site-b pods on edge-2")
    # A rollout: site-a's changed template (its SITE variable) makes a new ReplicaSet whose first (surge)
    # pod goes to edge-1; the old pods stay, as the new one never becomes Ready without a kubelet.
    env = "/spec/workloadScope/targetNodeGroups/0/overriders/envOverriders/0/value/0/value"
    stack.kubectl("patch", "edgeapplication", "hello-edge", "--type=json", "-p", json.dumps(
        [{"op": "replace", "path": env, "value": "a2"}]
    ))  # fmt: skip

    def rolled() -> bool:
        site_a = {}
        for p in stack.get("pods", "-l", "app=hello-edge")["items"]:
            if p["metadata"]["ownerReferences"][0]["name"].startswith("hello-edge-site-a-"):
                values = {e["name"]: e.get("value") for e in p["spec"]["containers"][0].get("env") or []}
                site_a[values.get("SITE")] = p["spec"].get("nodeName")
        return site_a.get("a2") == NODE and set(site_a) == {"a", "a2"}

    wait_for(rolled, 60, "site-a's rollout: a new pod with the new template on edge-1")
    stack.kubectl("delete", "node", "edge-2", "--wait=false")


BROKEN_APP = """
apiVersion: apps.kubeedge.io/v1alpha1
kind: EdgeApplication
metadata: {name: broken, namespace: default}
spec:
  workloadTemplate:
    manifests:
      - {apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: default}}
  workloadScope:
    targetNodeGroups: [{name: site-a}]
"""


def broken_events(stack: Stack) -> list[dict[str, Any]]:
    events = stack.get("events", "--field-selector", "involvedObject.name=broken")["items"]
    return [e for e in events if e["reason"] == "InvalidWorkload"]


def test_invalid_edgeapplication_is_reported(stack: Stack) -> None:
    stack.apply(BROKEN_APP)
    (event,) = wait_for(lambda: broken_events(stack), 60, "an InvalidWorkload event")
    assert "Widget" in event["message"] and event["count"] == 1


def test_node_label_reaches_the_edge_and_hostname_is_the_node_name(stack: Stack) -> None:
    assert stack.get("node", NODE)["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    stack.kubectl("label", "node", NODE, "kubeshore.io/late=yes")
    wait_for(
        lambda: (
            (stack.edge_objects("core/v1/nodes").get(f"/{NODE}") or {})
            .get("metadata", {})
            .get("labels", {})
            .get("kubeshore.io/late")
            == "yes"
        ),
        30,
        "the label in the edge's copy of its Node",
    )


def test_a_dependent_of_a_deleted_owner_is_collected(stack: Stack) -> None:
    """What a controller creates from a stale cache for an owner already deleted goes, as kube's garbage
    collector removes it (kube-controller-manager's; the embedded server's own on standalone)."""
    stack.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner, namespace: default}\n")
    uid = stack.get("configmap", "owner")["metadata"]["uid"]
    stack.kubectl("delete", "configmap", "owner")
    stack.apply(
        yaml.safe_dump(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "late", "namespace": "default", "ownerReferences": [
                 {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}
        )
    )  # fmt: skip
    names = lambda: stack.kubectl("get", "configmaps", "-o", "name").split()  # noqa: E731
    wait_for(lambda: "configmap/late" not in names(), 60, f"the late dependent collected on {stack.backend}")


def test_cloud_kill9(stack: Stack) -> None:
    stack.kill9("cloudcore")
    if stack.cluster:
        stack.kill9("nodegroup-controller")

    def change() -> None:
        stack.kubectl("patch", "configmap", "app-config", "-p", '{"data":{"mode":"3"}}')
        set_desired(stack, "23")

    if stack.cluster:
        change()  # the cluster lives on while cloudcore is down
    stack.start_cloudcore(same_ports=True, **yaml.safe_load((stack.tmp / "cloudcore.yaml").read_text()))
    stack.start_nodegroup_controller()
    if stack.cluster is None:
        change()  # standalone cloudcore is the API server too
    wait_for(
        lambda: stack.edge_objects("core/v1/configmaps")["default/app-config"]["data"]["mode"] == "3",
        60,
        "the configmap change reaches the edge",
    )
    wait_for(lambda: reports(stack, 23.0), 60, "the new desired value reaches the device")
    assert ready(stack) == "True"
    # The restarted controllers find the broken EdgeApplication again and count the same event up.
    wait_for(lambda: [e["count"] for e in broken_events(stack)] == [2], 60, "the event counted twice")


def lease_age(stack: Stack) -> float:
    lease = stack.get("lease", NODE, "-n", "kube-node-lease")
    renewed = dt.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
    return (dt.datetime.now(dt.UTC) - renewed).total_seconds()


def test_edge_kill9_notready_and_back(stack: Stack) -> None:
    if stack.cluster:
        # Ready under the real node-lifecycle controller: past its grace period (~50 s) from creation,
        # the node is still Ready and untainted because its Lease is renewed.
        created = dt.datetime.fromisoformat(
            stack.get("node", NODE)["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        )
        time.sleep(max(0.0, 60 - (dt.datetime.now(dt.UTC) - created).total_seconds()))
        assert ready(stack) == "True" and not taints(stack), stack.get("node", NODE)["spec"]
        assert lease_age(stack) < 40
    stack.kill9("edgecore")
    wait_for(lambda: ready(stack) == "Unknown", 120, "Ready=Unknown after the edge died")
    if stack.cluster:
        wait_for(lambda: "node.kubernetes.io/unreachable" in taints(stack), 60, "the unreachable taint")
    stack.kubectl("patch", "configmap", "app-config", "-p", '{"data":{"mode":"4"}}')
    stack.start_edgecore()
    wait_for(lambda: ready(stack) == "True", 60, "Ready again")
    if stack.cluster:
        wait_for(lambda: "node.kubernetes.io/unreachable" not in taints(stack), 60, "the taint lifted")
    # The store survived the kill, and what changed meanwhile arrived.
    wait_for(
        lambda: stack.edge_objects("core/v1/configmaps")["default/app-config"]["data"]["mode"] == "4",
        60,
        "the change made while the edge was down",
    )
    set_desired(stack, "17")
    wait_for(lambda: reports(stack, 17.0), 60, "twins flow again")


# --- RBAC: what deploy/ grants against what the processes called -----------------------------------------

# Granted but not (always) called in these scenarios, each for a reason; anything else unused fails.
NOT_EXERCISED: dict[tuple[str, str, str, str], str] = {
    ("cloudcore", "", "secrets", "patch"): "the stored join token renewed when it nears its expiry",
    ("cloudcore", "", "events", "get"): "a device Event repeated (counted up)",
    ("cloudcore", "", "events", "patch"): "a device Event repeated (counted up)",
    ("cloudcore", "", "pods", "get"): "pods the edge runs (tests/pods, with containerd)",
    ("cloudcore", "", "pods", "delete"): "pods the edge runs (tests/pods, with containerd)",
    ("cloudcore", "", "pods/status", "patch"): "pods the edge runs (tests/pods, with containerd)",
    (
        "cloudcore",
        "devices.kubeedge.io",
        "devices",
        "patch",
    ): "desired values set at the edge, written to spec",
    ("cloudcore", "devices.kubeedge.io", "devicestatuses", "delete"): "a Device deleted",
    ("cloudcore", "reliablesyncs.kubeedge.io", "objectsyncs", "delete"): (
        "a delete acknowledged by the node; under load the acknowledgement may come after the last scenario"
    ),
    (
        "cloudcore",
        "reliablesyncs.kubeedge.io",
        "clusterobjectsyncs",
        "create",
    ): "cluster-scoped objects to edges",
    (
        "cloudcore",
        "reliablesyncs.kubeedge.io",
        "clusterobjectsyncs",
        "delete",
    ): "cluster-scoped objects to edges",
    (
        "cloudcore",
        "reliablesyncs.kubeedge.io",
        "clusterobjectsyncs/status",
        "patch",
    ): "cluster-scoped objects",
    ("cloudcore", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "get"): (
        "the webhook's caBundle: tests/realk8s/test_webhook.py (cloudcore with --webhook-port)"
    ),
    ("cloudcore", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "patch"): (
        "the webhook's caBundle: tests/realk8s/test_webhook.py (cloudcore with --webhook-port)"
    ),
    ("nodegroup-controller", "", "nodes", "get"): "a Node label patch that conflicts is read again",
    ("nodegroup-controller", "apps", "deployments", "delete"): "an EdgeApplication or group removed",
    ("nodegroup-controller", "", "services", "patch"): "a Service of an EdgeApplication changed",
    ("nodegroup-controller", "", "services", "delete"): "an EdgeApplication removed",
    ("nodegroup-controller", "apps.kubeedge.io", "edgeapplications/finalizers", "update"): (
        "checked by the OwnerReferencesPermissionEnforcement admission plugin, off in this cluster"
    ),
}

ACCOUNTS = {"cloudcore": "cloudcore", "nodegroup-controller": "nodegroup-controller"}


def granted(account: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) that deploy/'s Roles and ClusterRoles bound to ``account`` allow."""
    docs = [
        d for f in sorted((REPO / "deploy").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs
             if d["kind"] in ("Role", "ClusterRole")}  # fmt: skip
    out: set[tuple[str, str, str]] = set()
    for b in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"]):
            continue
        ns = b["metadata"].get("namespace") if b["roleRef"]["kind"] == "Role" else None
        for rule in roles[(b["roleRef"]["kind"], ns, b["roleRef"]["name"])]["rules"]:
            out |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return out


def called(trace: Path) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every resource request in a trace (discovery paths left out)."""
    out: set[tuple[str, str, str]] = set()
    for line in trace.read_text().splitlines():
        req = json.loads(line)
        parts = req["path"].strip("/").split("/")
        group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            rest = rest[2:]
        if not rest:
            continue  # discovery
        resource = "/".join([rest[0], *rest[2:3]])
        named = len(rest) > 1
        verb = {
            "GET": "get" if named else ("watch" if req["query"].get("watch") == ["true"] else "list"),
            "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection",
        }[req["method"]]  # fmt: skip
        out.add((group, resource, verb))
    return out


def test_rbac_grants_what_the_processes_call(stack: Stack) -> None:
    """cloudcore and the node-group controllers ran every scenario above with their ServiceAccounts'
    tokens: no call was refused, and every right deploy/ grants was used (or is listed with a reason)."""
    if stack.cluster is None:
        pytest.skip("RBAC is the real cluster's (the embedded server authorizes no ServiceAccounts)")
    for name, account in ACCOUNTS.items():
        trace = stack.tmp / f"api-{name}.jsonl"
        refused = [json.loads(line) for line in trace.read_text().splitlines() if '"status": 403' in line]
        assert not refused, f"{name} was refused: {refused[:5]}"
        assert "Forbidden" not in stack.log(name), name
        used = called(trace)
        grants = granted(account)
        assert used <= grants, f"{name} called what deploy/ does not grant: {sorted(used - grants)}"
        excused = {(g, r, v) for (who, g, r, v) in NOT_EXERCISED if who == name}
        assert excused <= grants, f"stale NOT_EXERCISED entries: {sorted(excused - grants)}"
        assert grants - used - excused == set(), (
            f"{name} is granted more than it calls: {sorted(grants - used)}"
        )
