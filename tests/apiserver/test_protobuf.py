"""Kubernetes' protobuf form of built-in kinds: bodies Go clients really sent, the types whose JSON form
differs from their protobuf form, answers and watches in protobuf, and the generated modules' freshness.

``tests/fixtures/protobuf/*.bin`` are request bodies captured from real Go clients (``kubectl create
... -v=10``; KubeEdge's cloudcore at ``-v=10`` for ``kubeedge-*``), byte for byte.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import random
import re
import ssl
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloudcore.apiserver import EmbeddedAPIServer
from kubeapi import _protobuf
from kubeapi.defaults import apply_defaults
from kubeapi.errors import APIError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "protobuf"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def _fixture(name: str) -> dict[str, Any]:
    return _protobuf.decode((FIXTURES / f"{name}.bin").read_bytes())


def _message(full_name: str) -> Any:
    return _protobuf._class(full_name)()


def _wrap(api_version: str, kind: str, msg: Any) -> bytes:
    envelope = _message("k8s.io.apimachinery.pkg.runtime.Unknown")
    envelope.typeMeta.apiVersion = api_version
    envelope.typeMeta.kind = kind
    envelope.raw = msg.SerializeToString()
    return bytes(b"k8s\x00" + envelope.SerializeToString())


def _field_strings(value: Any) -> list[str]:
    """String values of object fields (not list items: ``apiGroups: [""]`` is meant)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in ([v] if isinstance(v, str) else _field_strings(v))]
    if isinstance(value, list):
        return [s for v in value if isinstance(v, (dict, list)) for s in _field_strings(v)]
    return []


# -- what Go clients sent ----------------------------------------------------------------------


def test_kubectl_bodies_decode_to_kubernetes_json() -> None:
    deployment = _fixture("deployment")
    assert deployment["apiVersion"] == "apps/v1" and deployment["kind"] == "Deployment"
    # gogo writes every non-pointer field: empty strings and the zero Time are not kept ...
    assert deployment["metadata"] == {"name": "web", "labels": {"app": "web"}}
    # ... a pointer set to zero is (kubectl create deployment --replicas=0).
    assert deployment["spec"]["replicas"] == 0
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.27" and container["ports"][0]["containerPort"] == 8080

    service = _fixture("service-nodeport")
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["port"] == 80
    assert service["spec"]["ports"][0]["targetPort"] == "http"  # IntOrString holding a string

    configmap = _fixture("configmap")
    assert configmap["data"] == {"a": "1"} and configmap["binaryData"] == {"blob": "AAEC/w=="}
    secret = _fixture("secret")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["data"] == {"username": "YWRtaW4=", "password": "czNjcjN0"}

    role = _fixture("role")
    assert role["rules"] == [
        {
            "verbs": ["get", "list"],
            "apiGroups": [""],
            "resources": ["pods", "configmaps"],
            "resourceNames": ["x"],
        }
    ]
    binding = _fixture("rolebinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"}
    assert {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"} in binding["subjects"]
    assert _fixture("namespace")["metadata"] == {"name": "ns1"}


def test_kubeedge_cloudcore_bodies_decode_to_kubernetes_json() -> None:
    node = _fixture("kubeedge-node")
    ready = node["status"]["conditions"][0]
    assert ready["type"] == "Ready" and ready["status"] == "True"
    assert ready["lastHeartbeatTime"] == "2026-12-05T03:13:16Z"  # Time: seconds, RFC 3339
    assert node["status"]["capacity"] == {"pods": "110", "memory": "24683792Ki", "cpu": "2"}  # Quantity
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}  # Go's JSON name
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]

    lease = _fixture("kubeedge-lease-create")
    assert lease["spec"] == {
        "holderIdentity": "ks-edge-1",
        "leaseDurationSeconds": 40,
        "renewTime": "2026-12-05T03:13:16.791595Z",  # MicroTime: microseconds
    }
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    assert _fixture("kubeedge-lease-update")["metadata"]["resourceVersion"] == "68"


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.bin")))
def test_every_captured_body_round_trips(name: str) -> None:
    obj = _fixture(name)
    assert "" not in _field_strings(obj)
    assert _protobuf.decode(_protobuf.encode(obj)) == obj


# -- the types whose JSON is not their protobuf ------------------------------------------------


def test_int_or_string_time_and_raw_extension() -> None:
    svc = _message("k8s.io.api.core.v1.Service")
    svc.metadata.name = "s"
    port = svc.spec.ports.add()
    port.port, port.targetPort.type, port.targetPort.intVal = 80, 0, 8080
    svc.metadata.creationTimestamp.SetInParent()  # Go's zero time: an empty message
    svc.metadata.deletionTimestamp.seconds = 0  # the epoch: present, and rendered
    obj = _protobuf.decode(_wrap("v1", "Service", svc))
    assert obj["spec"]["ports"] == [{"port": 80, "targetPort": 8080}]
    assert "creationTimestamp" not in obj["metadata"]
    assert obj["metadata"]["deletionTimestamp"] == "1970-01-01T00:00:00Z"

    revision = _message("k8s.io.api.apps.v1.ControllerRevision")
    revision.metadata.name = "r"
    revision.data.raw = b'{"spec":{"template":{"x":1}}}'
    revision.revision = 3
    managed = revision.metadata.managedFields.add()
    managed.manager, managed.fieldsV1.Raw = "kubectl", b'{"f:data":{}}'
    obj = _protobuf.decode(_wrap("apps/v1", "ControllerRevision", revision))
    assert obj["data"] == {"spec": {"template": {"x": 1}}} and obj["revision"] == 3
    assert obj["metadata"]["managedFields"] == [{"manager": "kubectl", "fieldsV1": {"f:data": {}}}]


def test_embedded_go_structs_sit_in_their_parent() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                    "envFrom": [{"secretRef": {"name": "s"}}],
                    "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                    "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}},
                }
            ],
            "volumes": [{"name": "v", "configMap": {"name": "cm", "defaultMode": 420}}],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
        },
    }
    wire = _protobuf.encode(pod)
    msg = _message("k8s.io.api.core.v1.Pod")
    msg.ParseFromString(_message("k8s.io.apimachinery.pkg.runtime.Unknown").FromString(wire[4:]).raw)
    # On the wire the embedded structs are messages of their own, as Go's generated.proto has them.
    assert msg.spec.volumes[0].volumeSource.configMap.localObjectReference.name == "cm"
    assert msg.spec.containers[0].livenessProbe.handler.httpGet.port.strVal == "http"
    assert _protobuf.decode(wire) == pod


def test_bodies_with_no_json_form_are_refused_naming_why() -> None:
    meta = b"\x0a\x02\xff\xfe"  # ObjectMeta.name, not UTF-8
    configmap = _message("k8s.io.api.core.v1.ConfigMap")
    configmap.MergeFromString(b"\x0a" + bytes([len(meta)]) + meta)
    pod = _message("k8s.io.api.core.v1.Pod")
    pod.metadata.creationTimestamp.seconds = 10**15
    cases = [
        (_wrap("v1", "ConfigMap", configmap), "ObjectMeta.name is not UTF-8"),
        (_wrap("v1", "Pod", pod), "out of range"),
        (b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret\x12\x03\xff\xff\xff", "Wire format was corrupt"),
    ]
    for body, reason in cases:
        with pytest.raises(APIError) as err:
            _protobuf.decode(body)
        assert err.value.code == 400 and reason in err.value.message


def test_mutated_bodies_decode_or_are_refused_cleanly() -> None:
    """Random byte flips, truncations and insertions of the captured bodies: every outcome is an object
    that serializes to JSON or a 400/415 Status, never another exception (which would be a 500)."""
    rng = random.Random(12)
    bodies = [p.read_bytes() for p in sorted(FIXTURES.glob("*.bin"))]
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(3000):
        data = bytearray(rng.choice(bodies))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(4, len(data))
            action = rng.randrange(3)
            if action == 0:
                data[at] = rng.randrange(256)
            elif action == 1:
                del data[at:]
                if len(data) <= 4:
                    data += b"\x00"
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        try:
            json.dumps(_protobuf.decode(bytes(data)))
            outcomes["decoded"] += 1
        except APIError as err:
            assert err.code in (400, 415), err.message
            outcomes["refused"] += 1
    assert outcomes["decoded"] > 50 and outcomes["refused"] > 50, outcomes


def test_values_protobuf_cannot_carry_are_left_out_of_an_answer() -> None:
    stored = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"bad\ud800": "x"}, "generation": 2**70},
        "data": {"k": 5},
        "immutable": True,
    }
    assert _protobuf.decode(_protobuf.encode(stored)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "immutable": True,
    }


def test_go_durations() -> None:
    for ns, text in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (-5_000_000_000, "-5s"),
    ]:
        assert _protobuf.format_duration(ns) == text
        assert _protobuf.parse_duration(text) == ns
    assert _protobuf.parse_duration("1h30m") == 5_400_000_000_000
    with pytest.raises(_protobuf.ConversionError):
        _protobuf.parse_duration("5 minutes")


def test_inline_fields_match_the_kubernetes_clients_json_names() -> None:
    """Every message field the official client's models have no JSON name for is an embedded struct
    (``INLINE_FIELDS``, generated from the OpenAPI spec), and every embedded struct is one: a second
    source agrees. Messages of kinds not served (no definition in the spec) are not converted."""
    from kubeapi._generated_schemas import SCHEMAS

    models = importlib.import_module("kubernetes.client.models")
    pool = _protobuf._pool()
    missing = set()
    for module in ("core_v1", "apps_v1", "autoscaling_v1", "coordination_v1", "discovery_v1", "rbac_v1"):
        group = module.split("_")[0].capitalize()
        for name, descriptor in pool.FindFileByName(
            f"k8sproto/api/{module}.proto"
        ).message_types_by_name.items():
            model = getattr(models, f"V1{name}", None) or getattr(models, f"{group}V1{name}", None)
            if model is None or "io." + descriptor.full_name.replace("k8s.io.", "k8s.", 1) not in SCHEMAS:
                continue
            names = set(model.attribute_map.values())
            missing |= {(descriptor.full_name, f.name) for f in descriptor.fields if f.name not in names}
    assert missing == set(_protobuf.INLINE_FIELDS)


def test_kinds_without_a_message() -> None:
    assert _protobuf.message_name("apps/v1", "Deployment") == "k8s.io.api.apps.v1.Deployment"
    assert _protobuf.message_name("rbac.authorization.k8s.io/v1", "Role") == "k8s.io.api.rbac.v1.Role"
    assert (
        _protobuf.message_name("apps/v1", "DeleteOptions")
        == "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions"
    )
    assert _protobuf.message_name("devices.kubeedge.io/v1beta1", "Device") is None
    assert _protobuf.message_name("apps.kubeedge.io/v1alpha1", "NodeGroup") is None
    assert _protobuf.message_name("apiextensions.k8s.io/v1", "CustomResourceDefinition") is None


def test_accept_negotiation() -> None:
    assert _protobuf.wants_protobuf("application/vnd.kubernetes.protobuf, */*")  # client-go
    assert _protobuf.wants_protobuf("application/vnd.kubernetes.protobuf,application/json")  # kubectl
    assert not _protobuf.wants_protobuf("application/json, */*")
    assert not _protobuf.wants_protobuf("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not _protobuf.wants_protobuf("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io")
    assert not _protobuf.wants_protobuf("")


# -- the server ----------------------------------------------------------------------------------


class _Client:
    def __init__(self, server: EmbeddedAPIServer, session: aiohttp.ClientSession) -> None:
        self.base = server.url
        self.session = session
        token = (server.data_dir / "pki" / "admin.token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {token}"}
        self.ssl = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))

    async def request(
        self, method: str, path: str, body: bytes | None = None, *, content_type: str = PROTOBUF, accept: str
    ) -> tuple[int, str, bytes]:
        headers = {**self.headers, "Content-Type": content_type, "Accept": accept}
        async with self.session.request(
            method, self.base + path, data=body, headers=headers, ssl=self.ssl
        ) as r:
            return r.status, r.headers.get("Content-Type", ""), await r.read()


def _frames(body: bytes) -> list[Any]:
    out = []
    while body:
        (length,) = struct.unpack(">I", body[:4])
        out.append(
            _message("k8s.io.apimachinery.pkg.apis.meta.v1.WatchEvent").FromString(body[4 : 4 + length])
        )
        body = body[4 + length :]
    return out


async def test_the_server_answers_client_go_in_protobuf(embedded: EmbeddedAPIServer) -> None:
    client_go = f"{PROTOBUF}, */*"
    path = "/apis/apps/v1/namespaces/default/deployments"
    async with aiohttp.ClientSession() as session:
        c = _Client(embedded, session)
        status, kind, body = await c.request(
            "POST", path, (FIXTURES / "deployment.bin").read_bytes(), accept=client_go
        )
        assert status == 201 and kind == PROTOBUF, body
        created = _protobuf.decode(body)
        assert created["metadata"]["uid"] and created["spec"]["replicas"] == 0

        status, kind, body = await c.request("GET", f"{path}/web", accept="application/json")
        assert kind == "application/json" and json.loads(body)["spec"]["replicas"] == 0
        status, kind, body = await c.request("GET", path, accept=client_go)
        listed = _protobuf.decode(body)
        assert kind == PROTOBUF and listed["kind"] == "DeploymentList"
        assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]
        assert listed["metadata"]["resourceVersion"]

        # A custom resource has no protobuf form: JSON, as kube-apiserver answers for CRDs.
        status, kind, _ = await c.request(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", accept=client_go
        )
        assert status == 200 and kind == "application/json"

        # The watch: length-prefixed WatchEvents whose objects carry the k8s envelope.
        watch = f"{path}?watch=true&resourceVersion=0&timeoutSeconds=1"
        status, kind, body = await c.request("GET", watch, accept=client_go)
        assert status == 200 and kind == _protobuf.WATCH_PROTOBUF
        (length,) = struct.unpack(">I", body[:4])
        assert len(body) == 4 + length
        event = _message("k8s.io.apimachinery.pkg.apis.meta.v1.WatchEvent").FromString(body[4:])
        assert event.type == "ADDED"
        assert _protobuf.decode(event.object.raw)["metadata"]["uid"] == created["metadata"]["uid"]
        # Bookmarks (every 0.5 s in this fixture) and a version too old for the event log, as frames.
        rv = listed["metadata"]["resourceVersion"]
        marks = f"{path}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=2"
        _, _, body = await c.request("GET", marks, accept=client_go)
        frames = _frames(body)
        assert frames and all(f.type == "BOOKMARK" for f in frames), frames
        bookmark = _protobuf.decode(frames[0].object.raw)
        assert bookmark["kind"] == "Deployment" and bookmark["metadata"]["resourceVersion"] == rv
        configmaps = "/api/v1/namespaces/default/configmaps"
        for start in range(0, 220, 20):  # past the fixture's event log of 200
            await asyncio.gather(
                *(
                    c.request(
                        "POST",
                        configmaps,
                        json.dumps({"metadata": {"name": f"cm-{i}"}}).encode(),
                        content_type="application/json",
                        accept="application/json",
                    )
                    for i in range(start, start + 20)
                )
            )
        too_old = f"{path}?watch=true&resourceVersion={rv}&timeoutSeconds=2"
        _, _, body = await c.request("GET", too_old, accept=client_go)
        (gone,) = _frames(body)
        assert gone.type == "ERROR" and _protobuf.decode(gone.object.raw)["code"] == 410

        # DeleteOptions in protobuf, as client-go sends them with a delete.
        options = _message("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        options.propagationPolicy = "Orphan"
        status, kind, body = await c.request(
            "DELETE", f"{path}/web", _wrap("apps/v1", "DeleteOptions", options), accept=client_go
        )
        assert status == 200 and kind == PROTOBUF, body


def test_edge_imports_no_protobuf_module_until_asked() -> None:
    """The MetaServer shares kubeapi.server; importing it loads none of the generated modules."""
    import subprocess
    import sys

    code = "import sys, kubeapi.server; print(sorted(m for m in sys.modules if m.startswith('k8sproto')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- objects the official client wrote, read back and written again in protobuf ------------------

_OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pb"}}),
    (
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "pb-node", "labels": {"node-role.kubernetes.io/edge": ""}},
            "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}], "unschedulable": False},
            "status": {
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastHeartbeatTime": "2026-12-05T03:13:16Z",
                        "lastTransitionTime": "1970-01-01T00:00:00Z",
                        "reason": "EdgeReady",
                    }
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        },
    ),
    (
        "/api/v1/namespaces/pb/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {
                "nodeName": "pb-node",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": False,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", ""],
                        "env": [
                            {"name": "A", "value": "1"},
                            {
                                "name": "B",
                                "valueFrom": {
                                    "configMapKeyRef": {"name": "cm", "key": "k", "optional": True}
                                },
                            },
                            {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                            {
                                "name": "D",
                                "valueFrom": {
                                    "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}
                                },
                            },
                        ],
                        "envFrom": [{"prefix": "S_", "secretRef": {"name": "s"}}],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "250m"}, "requests": {"memory": "64Mi"}},
                        "livenessProbe": {"tcpSocket": {"port": "http"}, "initialDelaySeconds": 0},
                        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5},
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
                        "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
                        "volumeMounts": [{"name": "cfg", "mountPath": "/cfg", "readOnly": True}],
                    }
                ],
                "volumes": [
                    {
                        "name": "cfg",
                        "configMap": {"name": "cm", "items": [{"key": "k", "path": "k", "mode": 256}]},
                    },
                    {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "host", "hostPath": {"path": "/tmp", "type": "Directory"}},
                    {"name": "proj", "projected": {"sources": [{"secret": {"name": "s"}}]}},
                ],
                "tolerations": [{"key": "k", "operator": "Exists", "tolerationSeconds": 30}],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}
                            ]
                        }
                    }
                },
            },
        },
    ),
    (
        "/api/v1/namespaces/pb/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm"},
            "data": {"k": "v", "empty": ""},
            "binaryData": {"b": "AAEC/w=="},
            "immutable": False,
        },
    ),
    (
        "/api/v1/namespaces/pb/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "type": "Opaque",
            "data": {"k": "dg=="},
        },
    ),
    (
        "/api/v1/namespaces/pb/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [
                    {"name": "a", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "b", "port": 81, "targetPort": "http"},
                ],
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
            },
        },
    ),
    (
        "/api/v1/namespaces/pb/endpoints",
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "svc"},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.1", "nodeName": "pb-node"}], "ports": [{"port": 8080}]}
            ],
        },
    ),
    (
        "/api/v1/namespaces/pb/events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "pb"},
            "reason": "Started",
            "type": "Normal",
            "count": 2,
            "firstTimestamp": "2026-12-05T03:13:16Z",
            "eventTime": "2026-12-05T03:13:16.123456Z",
            "series": {"count": 2, "lastObservedTime": "2026-12-05T03:13:17.000001Z"},
        },
    ),
    (
        "/apis/discovery.k8s.io/v1/namespaces/pb/endpointslices",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "svc-1", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": True}}],
            "ports": [{"name": "a", "port": 8080, "protocol": "TCP"}],
        },
    ),
    (
        "/apis/apps/v1/namespaces/pb/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    ),
    (
        "/apis/coordination.k8s.io/v1/namespaces/pb/leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "pb-node"},
            "spec": {
                "holderIdentity": "pb-node",
                "leaseDurationSeconds": 40,
                "renewTime": "2026-12-05T03:13:16.791595Z",
            },
        },
    ),
    (
        "/api/v1/namespaces/pb/serviceaccounts",
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "sa"},
            "secrets": [{"name": "s"}],
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "pb-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]},
        },
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/pb/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pb-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "pb"}],
        },
    ),
]


_UTC_OFFSET = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)\+00:00$")


def _utc_as_z(value: Any) -> Any:
    """Times as Kubernetes renders them: the official client sends ``+00:00``, which the embedded server
    stores as sent and the protobuf form (seconds and nanos) renders as ``Z``."""
    if isinstance(value, dict):
        return {k: _utc_as_z(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utc_as_z(v) for v in value]
    if isinstance(value, str):
        return _UTC_OFFSET.sub(r"\1Z", value)
    return value


def _zero_values(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the zero values JSON shows and protobuf does not tell from absent ones (a Node's
    ``nodeInfo.bootID: ""``): what the server's defaulting writes back into a decoded protobuf body."""
    group, _, version = obj["apiVersion"].rpartition("/")
    apply_defaults(group, version, obj["kind"], obj)
    return obj


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(_subset(v, actual.get(k)) for k, v in expected.items())
    if isinstance(expected, list):
        return (
            isinstance(actual, list) and len(expected) == len(actual) and all(map(_subset, expected, actual))
        )
    return bool(expected == actual)


async def test_objects_of_every_kind_round_trip_through_protobuf(embedded: EmbeddedAPIServer) -> None:
    """Each kind, written in JSON by the official client, reads back in protobuf exactly as in JSON, and
    writing that protobuf back stores the same object."""
    from kubernetes import config, utils

    api = config.new_client_from_config(config_file=str(embedded.kubeconfig))

    def create_all() -> None:
        for _, obj in _OBJECTS:
            utils.create_from_dict(api, obj, namespace="pb")

    await asyncio.to_thread(create_all)
    client_go = f"{PROTOBUF}, */*"
    async with aiohttp.ClientSession() as session:
        c = _Client(embedded, session)
        for path, obj in _OBJECTS:
            item = f"{path}/{obj['metadata']['name']}"
            _, _, raw = await c.request("GET", item, accept="application/json")
            as_json = _utc_as_z(json.loads(raw))
            assert _subset(obj, as_json), (obj, as_json)
            status, kind, wire = await c.request("GET", item, accept=client_go)
            assert status == 200 and kind == PROTOBUF, (item, wire)
            assert _zero_values(_protobuf.decode(wire)) == as_json, item
            status, kind, body = await c.request("PUT", item, wire, accept=client_go)
            assert status == 200, (item, body)
            written = _zero_values(_protobuf.decode(body))
            # The same object (its times now stored as Kubernetes renders them, hence a new version).
            for doc in (written, as_json):
                doc["metadata"].pop("resourceVersion")
            assert written == as_json, item
