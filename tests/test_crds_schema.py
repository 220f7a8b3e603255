"""The generated CRD manifests (freshness: tests/test_codegen.py): structural, and validating objects as an API server would."""
# ruff: noqa: E501  (the table of bad objects reads best one per line)

from __future__ import annotations

import re
from typing import Any

import pytest
from crd_fixtures import FIXTURES, load_fixture
from crd_validation import committed_crds, printer_cells, schema_of, validation_errors

import crds

# Short names of the built-in Kubernetes resources (kubectl api-resources), which CRDs must not shadow.
BUILTIN_SHORT_NAMES = {
    "cm", "cs", "ep", "ev", "limits", "ns", "no", "pvc", "pv", "po", "rc", "quota", "sa", "svc",
    "crd", "crds", "apiservice", "ds", "deploy", "rs", "sts", "hpa", "cj", "csr", "ing", "netpol",
    "pdb", "pc", "psp", "sc", "ingclass", "vac", "pvs",
}  # fmt: skip


def test_one_manifest_per_kind_with_kubeedge_names_and_scope() -> None:
    found = {kind: crd for (_, kind), crd in committed_crds().items()}
    expected = {
        "Device": ("devices.devices.kubeedge.io", "devices", "Namespaced", "v1beta1"),
        "DeviceModel": ("devicemodels.devices.kubeedge.io", "devicemodels", "Namespaced", "v1beta1"),
        "DeviceStatus": ("devicestatuses.devices.kubeedge.io", "devicestatuses", "Namespaced", "v1beta1"),
        "NodeGroup": ("nodegroups.apps.kubeedge.io", "nodegroups", "Cluster", "v1alpha1"),
        "EdgeApplication": (
            "edgeapplications.apps.kubeedge.io",
            "edgeapplications",
            "Namespaced",
            "v1alpha1",
        ),
        "ObjectSync": ("objectsyncs.reliablesyncs.kubeedge.io", "objectsyncs", "Namespaced", "v1alpha1"),
        "ClusterObjectSync": (
            "clusterobjectsyncs.reliablesyncs.kubeedge.io",
            "clusterobjectsyncs",
            "Cluster",
            "v1alpha1",
        ),
    }
    assert set(found) == set(expected)
    for kind, (name, plural, scope, version) in expected.items():
        crd = found[kind]
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == name
        assert crd["spec"]["names"]["plural"] == plural
        assert crd["spec"]["names"]["listKind"] == f"{kind}List"
        assert crd["spec"]["scope"] == scope
        assert [v["name"] for v in crd["spec"]["versions"]] == [version]


def test_status_subresource_exactly_where_kubeedge_declares_it() -> None:
    with_status = {
        kind for (_, kind), crd in committed_crds().items() if "subresources" in crd["spec"]["versions"][0]
    }
    assert with_status == {"NodeGroup", "EdgeApplication", "ObjectSync", "ClusterObjectSync"}


def test_short_names_are_unique_and_do_not_shadow_builtins() -> None:
    short = [s for crd in committed_crds().values() for s in crd["spec"]["names"].get("shortNames", [])]
    assert len(short) == len(set(short))
    assert not set(short) & BUILTIN_SHORT_NAMES
    assert {"ng", "eapp", "dev", "dm", "devst"} <= set(short)


def _walk(node: dict[str, Any], path: str) -> list[str]:
    """Violations of the structural-schema rules Kubernetes enforces on CRDs."""
    problems = []
    for banned in ("$ref", "anyOf", "oneOf", "allOf", "not", "nullable", "definitions", "$defs"):
        if banned in node:
            problems.append(f"{path}: uses {banned}")
    typed = (
        "type" in node
        or node.get("x-kubernetes-int-or-string")
        or (node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node)
    )
    if not typed:
        problems.append(f"{path}: no type")
    if node.get("x-kubernetes-preserve-unknown-fields") and node.get("type") != "object":
        problems.append(f"{path}: preserve-unknown-fields on a non-object")
    for name, child in node.get("properties", {}).items():
        problems += _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}{{}}")
    if "items" in node:
        problems += _walk(node["items"], f"{path}[]")
    for key in node.get("required", []):
        if key not in node.get("properties", {}):
            problems.append(f"{path}: required {key} is not a property")
    return problems


@pytest.mark.parametrize("kind", [r.info.kind for r in crds.RESOURCES])
def test_schemas_are_structural(kind: str) -> None:
    crd = next(c for (_, k), c in committed_crds().items() if k == kind)
    schema = schema_of(crd)
    assert _walk(schema, kind) == []
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_kubeedge_int64_fields_carry_the_format() -> None:
    device = schema_of(committed_crds()[("devices.kubeedge.io/v1beta1", "Device")])
    prop = device["properties"]["spec"]["properties"]["properties"]["items"]["properties"]
    assert prop["reportCycle"] == {
        "description": "Push interval in milliseconds.",
        "type": "integer",
        "format": "int64",
    }
    assert prop["collectCycle"]["format"] == "int64"
    http = prop["pushMethod"]["properties"]["http"]["properties"]
    assert http["port"]["format"] == http["timeout"]["format"] == "int64"
    assert prop["pushMethod"]["properties"]["mqtt"]["properties"]["qos"]["format"] == "int32"
    assert prop["visitors"]["properties"]["configData"] == {
        "description": "Protocol-specific visitor config.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _schema_has_path(schema: dict[str, Any], json_path: str) -> bool:
    # Printer columns use kubectl JSONPath; drop filters and wildcards to get the field path.
    plain = re.sub(r"\[\?\(.*?\)\]|\[\*\]|\[\d+\]", "", json_path)
    node = schema
    for part in plain.strip(".").split("."):
        if node.get("type") == "array":
            node = node["items"]
        if node.get("x-kubernetes-preserve-unknown-fields") or node == {"type": "object"}:
            return True
        if part not in node.get("properties", {}):
            return False
        node = node["properties"][part]
    return True


@pytest.mark.parametrize("kind", [r.info.kind for r in crds.RESOURCES])
def test_printer_columns_point_at_real_fields(kind: str) -> None:
    crd = next(c for (_, k), c in committed_crds().items() if k == kind)
    version = crd["spec"]["versions"][0]
    columns = version["additionalPrinterColumns"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    for column in columns:
        assert _schema_has_path(version["schema"]["openAPIV3Schema"], column["jsonPath"]), column


def test_printer_columns_yield_one_value_each() -> None:
    # The API server prints only the first value of a column's JSONPath, so [*] would show one element.
    for crd in committed_crds().values():
        for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
            assert "[*]" not in column["jsonPath"], column


def test_kubectl_get_shows_useful_columns() -> None:
    assert printer_cells(load_fixture("device_full.yaml")) == {
        "Node": "edge-1",
        "Model": "full-model",
        "Protocol": "modbus",
        "Reporting": None,
        "Age": None,
    }
    assert printer_cells(load_fixture("devicemodel_full.yaml"))["Protocol"] == "modbus"
    status = printer_cells(load_fixture("devicestatus_full.yaml"))
    assert (status["State"], status["Last-Online"]) == ("online", "2026-11-22T01:00:00Z")
    assert (status["Reason"], status["Property"], status["Value"]) == ("Online", "temperature", "21")
    assert printer_cells(load_fixture("nodegroup_full.yaml")) == {
        "Nodes": "[edge-1 edge-2]",
        "Match-Labels": "map[location:hangzhou]",
        "Not-Ready": "edge-9",
        "Age": None,
    }
    app = load_fixture("edgeapplication_full.yaml")
    assert printer_cells(app)["Processing"] is None
    app["status"]["workloadStatus"][0]["conditions"] = "Processing"
    assert printer_cells(app)["Processing"] == "nginx"
    assert printer_cells(load_fixture("objectsync_full.yaml")) == {
        "Kind": "ConfigMap",
        "Object": "app-config",
        "Synced-Version": "1234",
        "Age": None,
    }


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*_full.yaml")))
def test_fully_populated_objects_validate(name: str) -> None:
    assert validation_errors(load_fixture(name)) == []


def _with(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the dotted ``path`` set to ``value`` (deleted when value is ...)."""
    import copy

    out = copy.deepcopy(obj)
    node: Any = out
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


BAD_OBJECTS = [
    # (fixture, path to change, new value (... deletes), expected message)
    ("devicemodel_full.yaml", "spec.properties.0.type", "LONG", "spec.properties[0].type: 'LONG' is not one of"),
    ("devicemodel_full.yaml", "spec.properties.1.accessMode", "WriteOnly", "spec.properties[1].accessMode: 'WriteOnly' is not one of"),
    ("devicemodel_full.yaml", "spec.properties.0.name", ..., "spec.properties[0]: 'name' is a required property"),
    ("device_full.yaml", "spec.properties.0.reportCycle", "2s", "spec.properties[0].reportCycle: '2s' is not of type 'integer'"),
    ("device_full.yaml", "spec.properties.0.reportToCloud", "yes", "spec.properties[0].reportToCloud: 'yes' is not of type 'boolean'"),
    ("device_full.yaml", "spec.properties.0.pushMethod.mqtt.qos", 1.5, "spec.properties[0].pushMethod.mqtt.qos: 1.5 is not of type 'integer'"),
    ("device_full.yaml", "spec.properties.0.collectCycle", 2**63, "spec.properties[0].collectCycle: 9223372036854775808 is greater than the maximum"),
    ("device_full.yaml", "spec.deviceModelRef", ..., "spec: 'deviceModelRef' is a required property"),
    ("device_full.yaml", "spec.properties.0.desired.value", ..., "spec.properties[0].desired: 'value' is a required property"),
    ("device_full.yaml", "spec.nodename", "edge-1", "spec: Additional properties are not allowed ('nodename' was unexpected)"),
    ("device_full.yaml", "spec.protocol.configData", "ip=1", "spec.protocol.configData: 'ip=1' is not of type 'object'"),
    ("device_full.yaml", "spec", ..., "<root>: 'spec' is a required property"),
    ("nodegroup_full.yaml", "spec.nodes", "edge-1", "spec.nodes: 'edge-1' is not of type 'array'"),
    ("nodegroup_full.yaml", "status.nodeStatuses.0.readyStatus", ..., "status.nodeStatuses[0]: 'readyStatus' is a required property"),
    ("edgeapplication_full.yaml", "spec.workloadScope.targetNodeGroups.0.overriders.imageOverriders.0.component", "Digest", "imageOverriders[0].component: 'Digest' is not one of ['Registry', 'Repository', 'Tag']"),
    ("edgeapplication_full.yaml", "spec.workloadScope.targetNodeGroups.0.overriders.commandOverriders.0.operator", "replace", "commandOverriders[0].operator: 'replace' is not one of ['add', 'remove']"),
    ("edgeapplication_full.yaml", "spec.workloadScope.targetNodeGroups.0.overriders.resourcesOverriders.0.value.limits.cpu", 0.5, "value.limits.cpu: 0.5 is not valid under any of the given schemas"),
    ("edgeapplication_full.yaml", "spec.workloadScope", ..., "spec: 'workloadScope' is a required property"),
    ("edgeapplication_full.yaml", "status.workloadStatus.0.identifier.ordinal", -1, "identifier.ordinal: -1 is less than the minimum of 0"),
    ("edgeapplication_full.yaml", "status.workloadStatus.0.conditions", "Ready", "workloadStatus[0].conditions: 'Ready' is not one of ['Processing', 'Available']"),
    ("objectsync_full.yaml", "status.objectResourceVersion", 1234, "status.objectResourceVersion: 1234 is not of type 'string'"),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "path", "value", "message"), BAD_OBJECTS)
def test_bad_objects_are_rejected_naming_the_field(fixture: str, path: str, value: Any, message: str) -> None:
    errors = validation_errors(_with(load_fixture(fixture), path, value))
    assert len(errors) == 1, errors
    assert message in errors[0]


def test_free_form_objects_accept_anything_and_metadata_is_not_restricted() -> None:
    obj = _with(
        load_fixture("device_full.yaml"), "spec.protocol.configData", {"nested": {"a": [1, {"b": None}]}}
    )
    obj["metadata"]["somethingNew"] = {"x": 1}
    assert validation_errors(obj) == []


def test_schema_matches_what_the_models_accept() -> None:
    # A field the schema requires must be one pydantic requires too, so no valid object fails parsing.
    for fixture in sorted(FIXTURES.glob("*_full.yaml")):
        obj = load_fixture(fixture.name)
        crds.parse_object(obj)
        assert validation_errors(crds.parse_object(obj).to_dict()) == []
