"""``/openapi/v2`` in gnostic's protobuf, the form client-go asks for: the real kubectl validating and
applying a ``kind: List`` against a real `kubeshore apiserver` process, the served bytes decoded with the
generated ``openapi.v2.Document`` and compared with the JSON document. (The generated module's
freshness: tests/test_codegen.py.)"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeapi._openapiv2_pb2 import Document

from .conftest import APIServerProcess

REPO = Path(__file__).resolve().parents[2]
PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
CLIENT_GO = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"  # what client-go sends

DEVICE = yaml.safe_load((REPO / "examples" / "device-virtual-thermometer.yaml").read_text())


def _configmap(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": name},
        **extra,
    }


def _list(*items: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(items)})


@pytest.fixture(scope="module")
def server(apiserver: APIServerProcess) -> APIServerProcess:
    apiserver.kubectl("apply", "-f", str(REPO / "crds" / "devices.devices.kubeedge.io.yaml"))
    apiserver.kubectl(
        "wait", "--for=condition=Established", "crd/devices.devices.kubeedge.io", "--timeout=30s"
    )
    return apiserver


def _get(
    server: APIServerProcess, path: str, accept: str, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    pki = server.data_dir / "pki"
    token = (pki / "admin.token").read_text().strip()
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {token}", "Accept": accept, **headers}
    )
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# -- kubectl ---------------------------------------------------------------------------------------


def test_kubectl_applies_a_list_and_round_trips_get_output(server: APIServerProcess) -> None:
    out = server.kubectl("apply", "-f", "-", input=_list(_configmap("listed"), DEVICE))
    assert "configmap/listed created" in out.stdout
    assert "device.devices.kubeedge.io/thermometer-1 created" in out.stdout
    assert server.kubectl_json("get", "cm", "listed")["data"] == {"k": "listed"}

    # `kubectl get -o yaml` writes a kind: List, built-in kinds with every field the server filled in.
    server.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2")
    server.kubectl("run", "solo", "--image=busybox", "--labels=app=solo", "--", "sleep", "3600")
    server.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    before = server.kubectl_json("get", "cm,devices,deployments,pods,services")["items"]
    dump = server.kubectl("get", "cm,devices,deployments,pods,services", "-o", "yaml").stdout
    assert "kind: List" in dump
    out = server.kubectl("apply", "-f", "-", input=dump)
    for name in ("configmap/listed", "device.devices.kubeedge.io/thermometer-1", "deployment.apps/web"):
        assert name in out.stdout
    assert "error" not in out.stderr.lower()
    after = server.kubectl_json("get", "cm,devices,deployments,pods,services")["items"]
    assert [(o["kind"], o["metadata"]["name"], o.get("spec"), o.get("data")) for o in after] == [
        (o["kind"], o["metadata"]["name"], o.get("spec"), o.get("data")) for o in before
    ]

    out = server.kubectl("explain", "--output=plaintext-openapiv2", "devices.spec").stdout
    assert "KIND:     Device" in out and "deviceModelRef" in out


def test_kubectl_refuses_a_list_item_with_an_unknown_field(server: APIServerProcess) -> None:
    bad_cm = _configmap("refused", bogus=1)
    out = server.kubectl("apply", "-f", "-", input=_list(_configmap("innocent"), bad_cm), check=False)
    assert out.returncode != 0
    assert 'unknown field "bogus" in io.k8s.api.core.v1.ConfigMap' in out.stderr
    device = {**DEVICE, "metadata": {"name": "refused", "namespace": "default"}}
    device["spec"] = {**DEVICE["spec"], "colour": "red"}
    out = server.kubectl("apply", "-f", "-", input=_list(device), check=False)
    assert out.returncode != 0
    assert 'unknown field "colour" in io.kubeedge.devices.v1beta1.Device.spec' in out.stderr
    # kubectl validates the whole list before it sends anything.
    names = server.kubectl("get", "cm,devices", "-o", "name").stdout.split()
    assert "configmap/innocent" not in names and "device.devices.kubeedge.io/refused" not in names


# -- the served document -----------------------------------------------------------------------------


def _camel(name: str) -> str:
    if name == "_ref":
        return "$ref"
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


_PAIRS = ("additional_properties", "path", "response_code")


def _decode(message: Any) -> Any:
    """The JSON value a gnostic message stands for (the inverse of the server's conversion)."""
    name = message.DESCRIPTOR.name
    if name == "Any":
        return yaml.safe_load(message.yaml)
    if name in ("TypeItem", "ItemsItem"):
        values = [
            _decode(v) if name == "ItemsItem" else v
            for v in (message.value if name == "TypeItem" else message.schema)
        ]
        return values[0] if len(values) == 1 else values
    if name == "StringArray":
        return list(message.value)
    if "oneof" in message.DESCRIPTOR.oneofs_by_name:
        chosen = message.WhichOneof("oneof")
        value = getattr(message, chosen)
        return value if isinstance(value, bool) else _decode(value)
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.name == "vendor_extension":
            out.update({pair.name: yaml.safe_load(pair.value.yaml) for pair in value})
        elif field.name in _PAIRS and field.is_repeated:
            out.update(
                {
                    pair.name: _decode(pair.value) if hasattr(pair.value, "DESCRIPTOR") else pair.value
                    for pair in value
                }
            )
        elif field.type == field.TYPE_MESSAGE:
            out[_camel(field.name)] = [_decode(v) for v in value] if field.is_repeated else _decode(value)
        else:
            out[_camel(field.name)] = list(value) if field.is_repeated else value
    return out


_YAML_CARRIED = ("default", "example", "enum", "security")


def _without_zero_scalars(value: Any, key: str = "") -> Any:
    """``value`` as proto3 keeps it: false, 0, "" and [] in a field are not on the wire (gnostic's
    Document loses them too); YAML-carried values (extensions, default, example, enum) keep theirs, as
    do the values of a security requirement (a message even when the list is empty)."""
    if key.startswith("x-") or key in _YAML_CARRIED:
        return value
    if isinstance(value, list):
        return [_without_zero_scalars(v) for v in value]
    if isinstance(value, dict):
        # Kubernetes' schemas carry zero defaults (`default: ""`, `default: 0`): kept, as YAML.
        return {
            k: _without_zero_scalars(v, k)
            for k, v in value.items()
            if k.startswith("x-")
            or k in ("additionalProperties", *_YAML_CARRIED)
            or not (v == [] or v in (False, 0, ""))
        }
    return value


def test_served_protobuf_is_the_json_document(server: APIServerProcess) -> None:
    status, headers, body = _get(server, "/openapi/v2", CLIENT_GO)
    assert status == 200, body[:200]
    assert headers["Content-Type"] == PROTOBUF
    doc = Document.FromString(body)
    status, json_headers, json_body = _get(server, "/openapi/v2", "application/json")
    assert status == 200 and json_headers["Content-Type"].startswith("application/json")
    expected = json.loads(json_body)
    assert headers["ETag"] == json_headers["ETag"]

    definitions = {pair.name: pair.value for pair in doc.definitions.additional_properties}
    assert list(definitions) == list(expected["definitions"])
    for name, schema in definitions.items():
        assert _decode(schema) == _without_zero_scalars(expected["definitions"][name]), name
    assert _decode(doc) == _without_zero_scalars(expected)

    device = definitions["io.kubeedge.devices.v1beta1.Device"]
    gvk = {pair.name: yaml.safe_load(pair.value.yaml) for pair in device.vendor_extension}
    assert gvk["x-kubernetes-group-version-kind"] == [
        {"group": "devices.kubeedge.io", "kind": "Device", "version": "v1beta1"}
    ]
    # kubectl apply reads a kind's PATCH content types here: strategic merge patch for built-in kinds
    # (computed from these schemas, Kubernetes' own), as kube-apiserver says; not for custom resources.
    paths = {pair.name: pair.value for pair in doc.paths.path}
    patch = paths["/api/v1/namespaces/{namespace}/configmaps/{name}"].patch
    assert "application/strategic-merge-patch+json" in patch.consumes
    assert "application/merge-patch+json" in patch.consumes
    patch = paths["/apis/devices.kubeedge.io/v1beta1/namespaces/{namespace}/devices/{name}"].patch
    assert "application/strategic-merge-patch+json" not in patch.consumes


def test_v2_content_negotiation(server: APIServerProcess) -> None:
    assert _get(server, "/openapi/v2", PROTOBUF)[1]["Content-Type"] == PROTOBUF
    assert _get(server, "/openapi/v2", f"{CLIENT_GO};q=0.5, application/json")[1]["Content-Type"].startswith(
        "application/json"
    )
    assert _get(server, "/openapi/v2", "*/*")[1]["Content-Type"].startswith("application/json")
    status, _, body = _get(server, "/openapi/v2", "text/html")
    assert status == 406 and PROTOBUF.encode() in body
    status, headers, _ = _get(server, "/openapi/v2", CLIENT_GO)
    assert _get(server, "/openapi/v2", CLIENT_GO, **{"If-None-Match": headers["ETag"]})[0] == 304


def test_v2_schemas_are_what_kubectl_copes_with() -> None:
    """kube-apiserver's rewrite of CRD schemas for v2 (kubectl refuses fields ``properties`` leave out,
    and a whole document with an array that has no ``items``)."""
    from kubeapi.openapi import ResourceDescription, build_openapi

    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["maybe", "tags"],
                "properties": {
                    "open": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"a": {"type": "string"}},
                    },
                    "maybe": {"type": "object", "nullable": True, "properties": {"b": {"type": "string"}}},
                    "tags": {"type": "array", "x-kubernetes-preserve-unknown-fields": True, "items": {}},
                    "plain": {"type": "array", "items": {"type": "string"}},
                },
            }
        },
    }
    res = ResourceDescription("example.io", "v1", "Thing", "things", True, schema)
    v2 = build_openapi([res]).v2["definitions"]["io.example.v1.Thing"]["properties"]["spec"]
    assert v2["properties"]["open"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert v2["properties"]["maybe"] == {}
    assert v2["properties"]["tags"] == {"x-kubernetes-preserve-unknown-fields": True}
    assert v2["properties"]["plain"] == {"type": "array", "items": {"type": "string"}}
    assert v2["required"] == ["tags"]


def test_a_value_of_the_wrong_type_is_left_out_not_the_document() -> None:
    from kubeapi._openapi_protobuf import encode_document

    odd = {"type": "integer", "maximum": "ten", "minimum": 1, "maxLength": 2**70, "description": "odd"}
    doc = Document.FromString(encode_document({"swagger": "2.0", "definitions": {"odd": odd}}))
    assert _decode(doc) == {
        "swagger": "2.0",
        "definitions": {"odd": {"type": "integer", "minimum": 1, "description": "odd"}},
    }
