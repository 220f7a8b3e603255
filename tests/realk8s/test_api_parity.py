"""API parity: the same requests against the embedded API server and a real kube-apiserver (v1.36.2),
through the official kubernetes client (``kubeclient.Kube``) and kubectl, with the answers compared
field by field where Kubernetes defines them. Values that differ by nature (uid, resourceVersion,
timestamps) are compared by presence and form only. A difference either is fixed in the embedded server
or is listed in docs/apiserver.md ("Differences from kube-apiserver") and in ``KNOWN`` below."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from _peers import ControlPlane
from _stack import REPO, wait_for

from kubeapi import generate
from kubeclient import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, ApiError, Kube
from tests.apiserver.conftest import APIServerProcess

pytestmark = pytest.mark.timeout(300)

NS = "parity"
CM = "/api/v1/namespaces/parity/configmaps"
DEPLOYS = "/apis/apps/v1/namespaces/parity/deployments"
NODEGROUPS = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"
# Fields whose values are the server's own; only their presence (and form) is compared.
VOLATILE = {"uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp"}
# Known differences, each explained in docs/apiserver.md ("Differences from kube-apiserver"): left out
# of the comparison. The embedded server records no managedFields.
KNOWN_FIELDS = {"managedFields"}


class Side:
    """One server: the official client for requests and kubectl for the CLI parts."""

    def __init__(self, name: str, kubeconfig: str) -> None:
        self.name = name
        self.kubeconfig = kubeconfig
        self.kube = Kube.from_kubeconfig(kubeconfig, workers=2)

    def call(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        """(HTTP status, body) with errors as (code, {"reason": ...})."""
        try:
            return 200, self.kube.request(method, path, **options)
        except ApiError as exc:
            return exc.status, {"reason": exc.reason}

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args], input=stdin, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip


@pytest.fixture(scope="module")
def sides(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Side]]:
    embedded = APIServerProcess(tmp_path_factory.mktemp("embedded"))
    embedded.start()
    out = [Side("embedded", str(embedded.kubeconfig)), Side("kube-apiserver", control_plane.kubeconfig)]
    try:
        for side in out:
            assert side.kubectl("create", "namespace", NS).returncode == 0
            applied = side.kubectl("apply", "-f", str(REPO / "crds" / "nodegroups.apps.kubeedge.io.yaml"))
            assert applied.returncode == 0, applied.stderr
            side.kubectl("wait", "--for=condition=Established", "crd/nodegroups.apps.kubeedge.io")
        yield out
    finally:
        for side in out:
            side.kube.close()
        embedded.stop()


def shape(value: Any, key: str = "") -> Any:
    """``value`` with the server's own values replaced by their kind, for comparing two servers."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items() if k not in KNOWN_FIELDS}
    if isinstance(value, list | tuple):
        return [shape(v) for v in value]
    if key in VOLATILE:
        return f"<{type(value).__name__}>"
    return value


def both(sides: list[Side], fn: Callable[[Side], Any]) -> Any:
    """Run ``fn`` on both servers; assert their (shaped) answers are equal; return the embedded one's."""
    answers = [shape(fn(side)) for side in sides]
    assert answers[0] == answers[1], f"embedded: {answers[0]}\nkube-apiserver: {answers[1]}"
    return answers[0]


def cm(name: str, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": labels or {}, **meta},
        "data": {"a": "1"},
    }


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj["metadata"]
    return {k: md.get(k) for k in ("name", "namespace", "labels", "annotations", "finalizers", "generation")}


def test_create_get_update_delete(sides: list[Side]) -> None:
    def crud(side: Side) -> list[Any]:
        out: list[Any] = []
        status, created = side.call("POST", CM, body=cm("crud", {"app": "x"}))
        out.append((status, {k: created[k] for k in ("apiVersion", "kind", "data")}, created["metadata"]))
        out.append(side.call("POST", CM, body=cm("crud"))[0])  # 409 AlreadyExists
        out.append(side.call("POST", CM, body=cm("crud")))
        _, got = side.call("GET", f"{CM}/crud")
        stale = {**got, "data": {"a": "2"}, "metadata": {**got["metadata"], "resourceVersion": "1"}}
        out.append(side.call("PUT", f"{CM}/crud", body=stale))  # 409 Conflict
        fresh = {**got, "data": {"a": "3"}}
        status, updated = side.call("PUT", f"{CM}/crud", body=fresh)
        out.append((status, updated["data"], int(updated["metadata"]["resourceVersion"]) > 0))
        out.append(side.call("GET", f"{CM}/missing"))  # 404 NotFound
        status, deleted = side.call("DELETE", f"{CM}/crud")
        out.append((status, deleted.get("kind"), deleted.get("status")))
        out.append(side.call("GET", f"{CM}/crud")[0])
        return out

    both(sides, crud)


def test_invalid_objects_are_422(sides: list[Side]) -> None:
    def invalid(side: Side) -> list[Any]:
        return [
            side.call("POST", CM, body=cm("Bad_Name")),
            side.call("POST", CM, body={**cm("x"), "data": {"a": 1}}),  # not a string: 400
            side.call("POST", CM, body={**cm("x"), "data": {"bad key!": "v"}}),
            side.call("POST", CM, body={**cm("x"), "binaryData": {"ok": "AA==", "no/slash": "AA=="}}),
        ]

    both(sides, invalid)


def test_patches_of_each_type(sides: list[Side]) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
            },
        },
    }

    def patches(side: Side) -> list[Any]:
        side.call("POST", CM, body=cm("patched", {"k": "v"}))
        out: list[Any] = []
        merge = {"metadata": {"labels": {"k": None, "m": "1"}}, "data": {"b": "2"}}
        _, obj = side.call("PATCH", f"{CM}/patched", body=merge, content_type=MERGE_PATCH)
        out.append((obj["metadata"].get("labels"), obj["data"]))
        ops = [{"op": "add", "path": "/data/c", "value": "3"}, {"op": "remove", "path": "/data/a"}]
        _, obj = side.call("PATCH", f"{CM}/patched", body=ops, content_type=JSON_PATCH)
        out.append(obj["data"])
        failed = [{"op": "test", "path": "/data/c", "value": "nope"}]
        out.append(side.call("PATCH", f"{CM}/patched", body=failed, content_type=JSON_PATCH)[0])
        out.append(side.call("PATCH", f"{CM}/patched", body=[{"op": "bogus"}], content_type=JSON_PATCH)[0])
        side.call("POST", DEPLOYS, body=deployment)
        # Strategic merge: containers merge by name, $patch: delete removes one.
        smp = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "a", "$patch": "delete"}]}
                }
            }
        }
        _, obj = side.call("PATCH", f"{DEPLOYS}/web", body=smp, content_type=STRATEGIC_MERGE_PATCH)
        containers = obj["spec"]["template"]["spec"]["containers"]
        out.append(containers)
        out.append(obj["metadata"]["generation"])
        # Server-side apply: creates, then merges; the field manager is recorded.
        applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": NS},
                   "data": {"x": "1"}}  # fmt: skip
        for data in ({"x": "1"}, {"x": "1", "y": "2"}):
            _, obj = side.call(
                "PATCH", f"{CM}/ssa", body={**applied, "data": data},
                content_type="application/apply-patch+yaml", query={"fieldManager": "parity"},
            )  # fmt: skip
            out.append(obj["data"])
        return out

    both(sides, patches)


def names(body: Any) -> list[str]:
    return sorted(i["metadata"]["name"] for i in body.get("items") or [])


def test_selectors_and_pagination(sides: list[Side]) -> None:
    def selectors(side: Side) -> list[Any]:
        for i, env in enumerate(["prod", "prod", "dev", "test", ""]):
            side.call("POST", CM, body=cm(f"sel-{i}", {"env": env} if env else {"other": "x"}))
        out: list[Any] = []
        for selector in ("env=prod", "env!=prod", "env in (dev,test)", "!env", "env", "env notin (prod)"):
            _, body = side.call("GET", CM, query={"labelSelector": selector})
            out.append((selector, [n for n in names(body) if n.startswith("sel-")]))
        for selector in ("metadata.name=sel-1", "metadata.name!=sel-1,metadata.namespace=parity"):
            _, body = side.call("GET", CM, query={"fieldSelector": selector})
            out.append((selector, [n for n in names(body) if n.startswith("sel-")]))
        out.append(side.call("GET", CM, query={"labelSelector": "env in (("})[0])  # 400
        out.append(side.call("GET", CM, query={"fieldSelector": "data.a=1"})[0])  # 400: not a field label
        # Pages of 2 over the sel-* objects, following continue tokens.
        pages, token = [], None
        while True:
            _, body = side.call(
                "GET", CM, query={"labelSelector": "env", "limit": 2, "continue": token}
            )  # fmt: skip
            token = body["metadata"].get("continue")
            if body.get("items"):  # kube-apiserver may hand out a last, empty page
                pages.append((names(body), "remainingItemCount" in body["metadata"]))
            if not token:
                break
        out.append(pages)
        out.append(side.call("GET", CM, query={"limit": 2, "continue": "garbage"})[0])  # 400
        return out

    both(sides, selectors)


def test_watch_from_a_resource_version(sides: list[Side]) -> None:
    def watch(side: Side) -> list[Any]:
        _, listing = side.call("GET", CM, query={"labelSelector": "w=1"})
        rv = listing["metadata"]["resourceVersion"]
        side.call("POST", CM, body=cm("w", {"w": "1"}))
        side.call("PATCH", f"{CM}/w", body={"data": {"a": "2"}}, content_type=MERGE_PATCH)
        side.call("DELETE", f"{CM}/w")
        query = {"watch": "true", "resourceVersion": rv, "labelSelector": "w=1", "timeoutSeconds": 2}
        raw = side.kube.request("GET", CM, query=query, stream=True, timeout=(10, 20))
        events = [json.loads(line) for line in raw.read().splitlines() if line.strip()]
        return [(e["type"], e["object"]["metadata"]["name"], e["object"]["data"]) for e in events]

    both(sides, watch)


def test_status_subresource_and_generation(sides: list[Side]) -> None:
    group = {"apiVersion": "apps.kubeedge.io/v1alpha1", "kind": "NodeGroup", "metadata": {"name": "pg"},
             "spec": {"nodes": ["a"]}}  # fmt: skip

    def status(side: Side) -> list[Any]:
        out: list[Any] = []
        _, obj = side.call("POST", NODEGROUPS, body={**group, "status": {"nodeStatuses": []}})
        out.append((obj.get("status"), obj["metadata"]["generation"]))
        # The main resource ignores status; /status ignores everything but status.
        status_patch = {"status": {"nodeStatuses": [{"nodeName": "a", "readyStatus": "Ready",
                                                     "selectionStatus": "Succeeded"}]}}  # fmt: skip
        _, obj = side.call("PATCH", f"{NODEGROUPS}/pg", body=status_patch, content_type=MERGE_PATCH)
        out.append((obj.get("status"), obj["metadata"]["generation"]))
        both_patch = {"spec": {"nodes": ["b"]}, **status_patch}
        _, obj = side.call("PATCH", f"{NODEGROUPS}/pg/status", body=both_patch, content_type=MERGE_PATCH)
        out.append((obj["spec"], obj.get("status"), obj["metadata"]["generation"]))
        _, obj = side.call(
            "PATCH", f"{NODEGROUPS}/pg", body={"spec": {"nodes": ["c"]}}, content_type=MERGE_PATCH
        )
        out.append((obj["spec"], obj["metadata"]["generation"]))
        status, obj = side.call("DELETE", f"{NODEGROUPS}/pg")
        out.append((status, obj.get("kind")))  # a Status, as for most built-in kinds
        return out

    both(sides, status)


def test_finalizers_hold_deletion(sides: list[Side]) -> None:
    def finalizers(side: Side) -> list[Any]:
        out: list[Any] = []
        side.call("POST", CM, body=cm("fin", finalizers=["example.com/hold"]))
        status, obj = side.call("DELETE", f"{CM}/fin")
        out.append(
            (status, obj.get("kind"), "deletionTimestamp" in obj["metadata"], obj["metadata"]["finalizers"])
        )
        _, obj = side.call("GET", f"{CM}/fin")
        out.append("deletionTimestamp" in obj["metadata"])
        # No new finalizers on an object being deleted.
        more = {"metadata": {"finalizers": ["example.com/hold", "x.io/y"]}}
        out.append(side.call("PATCH", f"{CM}/fin", body=more, content_type=MERGE_PATCH)[0])
        side.call("PATCH", f"{CM}/fin", body={"metadata": {"finalizers": None}}, content_type=MERGE_PATCH)
        out.append(wait_for(lambda: side.call("GET", f"{CM}/fin")[0] == 404, 30, "gone once unfinalized"))
        return out

    both(sides, finalizers)


def test_garbage_collection_by_owner_references(sides: list[Side]) -> None:
    def gc(side: Side) -> list[Any]:
        _, owner = side.call("POST", CM, body=cm("owner"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        side.call("POST", CM, body=cm("dependent", ownerReferences=[ref]))
        side.call("POST", CM, body=cm("orphan", ownerReferences=[ref]))
        side.call(
            "DELETE", f"{CM}/orphan", body={"propagationPolicy": "Orphan"}
        )  # a dependent alone: no effect
        side.call("DELETE", f"{CM}/owner", body={"propagationPolicy": "Background"})
        wait_for(
            lambda: side.call("GET", f"{CM}/dependent")[0] == 404, 60, f"{side.name}: dependent collected"
        )
        return [side.call("GET", f"{CM}/owner")[0], side.call("GET", f"{CM}/dependent")[0]]

    both(sides, gc)


def test_foreground_deletion_dry_run_and_delete_collection(sides: list[Side]) -> None:
    def more(side: Side) -> list[Any]:
        out: list[Any] = []
        _, owner = side.call("POST", CM, body=cm("fg-owner"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "fg-owner", "uid": owner["metadata"]["uid"],
               "blockOwnerDeletion": True}  # fmt: skip
        side.call("POST", CM, body=cm("fg-dependent", ownerReferences=[ref]))
        # Foreground: the owner waits, marked with the foregroundDeletion finalizer, for its dependent.
        _, obj = side.call("DELETE", f"{CM}/fg-owner", body={"propagationPolicy": "Foreground"})
        out.append(
            (obj.get("kind"), obj["metadata"].get("finalizers"), "deletionTimestamp" in obj["metadata"])
        )
        wait_for(lambda: side.call("GET", f"{CM}/fg-owner")[0] == 404, 60, f"{side.name}: owner gone last")
        out.append(side.call("GET", f"{CM}/fg-dependent")[0])
        # dryRun=All answers as if created and stores nothing.
        status, obj = side.call("POST", CM, body=cm("dry"), query={"dryRun": "All"})
        out.append((status, obj["metadata"]["name"], obj["data"]))
        out.append(side.call("GET", f"{CM}/dry")[0])
        # deletecollection by label selector.
        for i in range(3):
            side.call("POST", CM, body=cm(f"dc-{i}", {"dc": "yes" if i < 2 else "no"}))
        status, obj = side.call("DELETE", CM, query={"labelSelector": "dc=yes"})
        out.append((status, obj.get("kind")))
        _, listing = side.call("GET", CM, query={"labelSelector": "dc"})
        out.append(names(listing))
        return out

    both(sides, more)


def test_kubectl(sides: list[Side]) -> None:
    manifest = yaml.safe_dump(cm("kc", {"via": "kubectl"}))

    def kubectl(side: Side) -> list[Any]:
        out: list[Any] = []
        for _ in range(2):
            done = side.kubectl("apply", "-f", "-", stdin=manifest)
            out.append((done.returncode, done.stdout.strip()))
        changed = manifest.replace('a: "1"', 'a: "2"').replace("a: '1'", "a: '2'")
        done = side.kubectl("apply", "-f", "-", stdin=changed)
        out.append((done.returncode, done.stdout.strip()))
        done = side.kubectl("get", "configmap", "kc", "-n", NS, "-o", "jsonpath={.data.a} {.metadata.labels}")
        out.append(done.stdout)
        done = side.kubectl("get", "configmaps", "-n", NS, "-l", "via=kubectl", "-o", "name")
        out.append(done.stdout.split())
        done = side.kubectl("get", "configmap", "nope", "-n", NS)
        out.append((done.returncode, done.stderr.strip().splitlines()[-1]))
        done = side.kubectl("delete", "configmap", "kc", "-n", NS)
        out.append((done.returncode, done.stdout.strip()))
        return out

    both(sides, kubectl)


def test_committed_openapi_spec_is_what_kube_apiserver_publishes(control_plane: ControlPlane) -> None:
    """kubeapi's built-in schemas and merge lists come from kubeapi/openapi-spec: it must be this
    kube-apiserver's OpenAPI, trimmed (else run python -m kubeapi.generate --fetch)."""
    version, documents = generate.read_documents(control_plane.server, control_plane.dir / "pki")
    fetched = generate.trim(documents, version, generate.served_kinds())
    committed = generate.load_spec()
    assert fetched["info"] == committed["info"]
    stale = sorted(
        name
        for name in {*fetched["components"]["schemas"], *committed["components"]["schemas"]}
        if fetched["components"]["schemas"].get(name) != committed["components"]["schemas"].get(name)
    )
    assert stale == [], "run python -m kubeapi.generate --fetch"


@pytest.mark.parametrize(
    "field",
    [
        "pods.spec.containers.ports",
        "deployments.spec.strategy",
        "services.spec.ports.targetPort",
        "nodes.status.conditions",
        "leases.spec",
        "roles.rules",
        "customresourcedefinitions.spec.versions.schema",
    ],
)
def test_kubectl_explain_of_builtin_kinds(sides: list[Side], field: str) -> None:
    def explain(side: Side) -> tuple[int, str, str]:
        done = side.kubectl("explain", field)
        return done.returncode, done.stdout, done.stderr

    both(sides, explain)


def test_strategic_merge_patch_of_kinds_the_hand_table_lacked(sides: list[Side]) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "reader", "namespace": NS, "finalizers": ["a/b"]},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    roles = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles"

    def patch(side: Side) -> list[Any]:
        side.call("POST", roles, body=role)
        smp = {
            "metadata": {"finalizers": ["c/d"]},
            "rules": [{"apiGroups": [""], "resources": ["cm"], "verbs": ["list"]}],
        }
        status, obj = side.call("PATCH", f"{roles}/reader", body=smp, content_type=STRATEGIC_MERGE_PATCH)
        side.call(
            "PATCH", f"{roles}/reader", body={"metadata": {"finalizers": None}}, content_type=MERGE_PATCH
        )
        return [status, obj.get("metadata", {}).get("finalizers"), obj.get("rules")]

    both(sides, patch)


def test_kubectl_apply_merges_lists_of_builtin_kinds(sides: list[Side]) -> None:
    """kubectl apply computes a strategic merge patch from the served OpenAPI (both servers advertise
    it for built-in kinds); the server applies it with the generated merge lists."""

    def deployment(containers: list[dict[str, Any]], ports: list[dict[str, Any]]) -> str:
        docs = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "applied", "namespace": NS},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "applied"}},
                    "template": {
                        "metadata": {"labels": {"app": "applied"}},
                        "spec": {"containers": containers},
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "applied", "namespace": NS},
                "spec": {"selector": {"app": "applied"}, "ports": ports},
            },
        ]
        return yaml.safe_dump_all(docs)

    first = deployment(
        [{"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "image": "b:1"}],
        [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
    )
    second = deployment(
        [{"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Z", "value": "2"}]}],
        [{"name": "http", "port": 80, "targetPort": 8080}],
    )

    def apply(side: Side) -> list[Any]:
        out: list[Any] = []
        for manifest in (first, second):
            done = side.kubectl("apply", "--server-side=false", "-f", "-", stdin=manifest)
            out.append((done.returncode, done.stdout.strip(), done.stderr.strip()))
        deploy = json.loads(side.kubectl("get", "deployment", "applied", "-n", NS, "-o", "json").stdout)
        containers = deploy["spec"]["template"]["spec"]["containers"]
        out.append(containers)
        service = json.loads(side.kubectl("get", "service", "applied", "-n", NS, "-o", "json").stdout)
        out.append([{k: p.get(k) for k in ("name", "port", "targetPort")} for p in service["spec"]["ports"]])
        return out

    both(sides, apply)


def test_discovery_of_builtin_kinds(sides: list[Side]) -> None:
    """Each built-in resource the embedded server lists is described as kube-apiserver describes it
    (names, scope, kind, verbs, short names, categories); kube-apiserver serves more subresources
    (exec, log, eviction, ...), which the embedded server leaves out."""
    embedded, kube = sides
    groups = (
        "apps",
        "discovery.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "rbac.authorization.k8s.io",
    )
    paths = ["/api/v1", *(f"/apis/{group}/v1" for group in groups)]
    fields = ("singularName", "namespaced", "kind", "verbs", "shortNames", "categories", "group", "version")
    for path in paths:
        served = embedded.kube.request("GET", path)["resources"]
        theirs = {r["name"]: r for r in kube.kube.request("GET", path)["resources"]}
        assert served
        for resource in served:
            assert resource["name"] in theirs, (path, resource["name"])
            ours = {f: resource.get(f) for f in fields}
            assert ours == {f: theirs[resource["name"]].get(f) for f in fields}, (path, resource["name"])


def test_kubectl_list(sides: list[Side]) -> None:
    """A ``kind: List`` (what ``kubectl get -o yaml`` writes): kubectl validates its items with the
    server's /openapi/v2 (protobuf) before it applies them, and names an unknown field the same way."""
    labels = {"via": "list"}
    group = {
        "apiVersion": "apps.kubeedge.io/v1alpha1",
        "kind": "NodeGroup",
        "metadata": {"name": "listed", "labels": labels},
    }

    def listed(*items: dict[str, Any]) -> str:
        return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(items)})

    def kubectl(side: Side) -> list[Any]:
        out: list[Any] = []
        for manifest in (
            listed(cm("listed", labels), {**group, "spec": {"nodes": ["edge-1"]}}),
            listed({**cm("odd"), "bogus": 1}),
            listed({**group, "spec": {"nodes": ["edge-1"], "colour": "red"}}),
        ):
            done = side.kubectl("apply", "-f", "-", stdin=manifest)
            out.append((done.returncode, done.stdout.strip(), done.stderr.strip()))
        dump = side.kubectl("get", "configmap", "listed", "-n", NS, "-o", "yaml").stdout
        done = side.kubectl("get", "configmaps,nodegroups", "-n", NS, "-l", "via=list", "-o", "yaml")
        assert done.returncode == 0 and "kind: List" in done.stdout and "listed" in dump
        done = side.kubectl("apply", "-f", "-", stdin=done.stdout)
        out.append((done.returncode, done.stderr.strip()))
        side.kubectl("delete", "nodegroup", "listed")
        return out

    both(sides, kubectl)


# What kube-apiserver's admission plugins and storage add to a Pod or a Service that the embedded
# server does not (docs/apiserver.md, "Differences from kube-apiserver"): the service account and its
# token volume (ServiceAccount admission), tolerations (DefaultTolerationSeconds), priority (Priority),
# the cluster IP (allocated by Service storage). Status is the controllers' and the kubelet's.
NOT_DEFAULTING: dict[str, dict[str, tuple[str, ...]]] = {
    "Pod": {"spec": ("serviceAccount", "serviceAccountName", "tolerations", "priority", "preemptionPolicy")},
    "Service": {"spec": ("clusterIP", "clusterIPs")},
}


def as_defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without what the comparison leaves out: the server's own values, admission, status."""
    out = {k: v for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in KNOWN_FIELDS}
    for part, fields in NOT_DEFAULTING.get(obj["kind"], {}).items():
        out[part] = {k: v for k, v in out[part].items() if k not in fields}
    return out


def test_minimal_objects_are_defaulted_alike(sides: list[Side]) -> None:
    """The same minimal Pod, Deployment, ReplicaSet, Service, Secret (and Namespace, Event, Node,
    EndpointSlice, RoleBinding) created on both servers come back with the same fields, field for field:
    what kube-apiserver defaults, the embedded server defaults."""
    template = {
        "metadata": {"labels": {"app": "dflt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}]}]},
    }
    pod_spec = {
        "automountServiceAccountToken": False,
        "volumes": [{"name": "a"}, {"name": "b", "secret": {"secretName": "x"}}],
        "containers": [
            {
                "name": "c",
                "image": "busybox",
                "livenessProbe": {"httpGet": {"port": 80}},
                "resources": {"limits": {"memory": "1Gi"}},
                "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            }
        ],
    }
    selector = {"matchLabels": {"app": "dflt"}}
    objects: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/namespaces/parity/pods", {"kind": "Pod", "spec": pod_spec}),
        (DEPLOYS, {"kind": "Deployment", "spec": {"selector": selector, "template": template}}),
        ("/apis/apps/v1/namespaces/parity/replicasets",
         {"kind": "ReplicaSet", "spec": {"replicas": 0, "selector": selector, "template": template}}),
        ("/api/v1/namespaces/parity/services",
         {"kind": "Service", "spec": {"selector": {"app": "dflt"}, "ports": [{"port": 80}]}}),
        ("/api/v1/namespaces/parity/services",
         {"kind": "Service", "metadata": {"name": "dflt-headless"},
          "spec": {"clusterIP": "None", "ports": [{"port": 81, "targetPort": "http"}]}}),
        ("/api/v1/namespaces/parity/secrets", {"kind": "Secret", "data": {"a": "YQ=="}}),
        ("/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "parity-dflt"}}),
        ("/api/v1/namespaces/parity/events",
         {"kind": "Event", "involvedObject": {"kind": "Pod", "name": "dflt", "namespace": NS},
          "reason": "Test"}),
        ("/apis/discovery.k8s.io/v1/namespaces/parity/endpointslices",
         {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
          "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
        ("/apis/rbac.authorization.k8s.io/v1/namespaces/parity/rolebindings",
         {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
          "subjects": [{"kind": "User", "name": "u"},
                       {"kind": "ServiceAccount", "name": "s", "namespace": NS}]}),
    ]  # fmt: skip
    api_versions = {"Deployment": "apps/v1", "ReplicaSet": "apps/v1"}

    def create(side: Side) -> list[Any]:
        out: list[Any] = []
        for path, partial in objects:
            body = {"apiVersion": api_versions.get(partial["kind"], "v1"), **partial}
            body["metadata"] = {"name": "dflt", **partial.get("metadata", {})}
            status, created = side.call("POST", path, body=body)
            out.append((status, as_defaulted(created) if status == 200 else created))
        return out

    both(sides, create)
