"""examples/: every object is valid as the API server would judge it, and devices reach a mapper intact."""
# ruff: noqa: E501  (the table of broken examples reads best one per line)

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_validation import validation_errors

import crds
from dmi import convert

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCUMENTS = _documents()


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCUMENTS if doc["kind"] == kind]


def test_examples_cover_every_kind_a_user_applies() -> None:
    kinds = sorted({doc["kind"] for _, doc in DOCUMENTS})
    assert kinds == ["Device", "DeviceModel", "EdgeApplication", "NodeGroup"]
    assert len(_of_kind("Device")) >= 2 and len(_of_kind("NodeGroup")) >= 2


@pytest.mark.parametrize(("name", "doc"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_example_validates_against_the_generated_crd(name: str, doc: dict[str, Any]) -> None:
    assert validation_errors(doc) == []
    parsed = crds.parse_object(doc)
    assert parsed.to_dict() == doc, "the models keep every field of the example"
    if parsed.info.scope is crds.Scope.NAMESPACED:
        assert doc["metadata"]["namespace"] == "default"


@pytest.mark.parametrize("device_doc", _of_kind("Device"), ids=lambda d: d["metadata"]["name"])
def test_example_devices_convert_to_dmi_with_their_model(device_doc: dict[str, Any]) -> None:
    device = crds.Device.model_validate(device_doc)
    models = {m["metadata"]["name"]: crds.DeviceModel.model_validate(m) for m in _of_kind("DeviceModel")}
    model = models[device.spec.device_model_ref.name]
    assert device.spec.protocol is not None and device.spec.protocol.protocol_name == model.spec.protocol
    assert device.spec.node_name in {"edge-1", "edge-2"}
    model_props = {p.name for p in model.spec.properties or []}
    assert {p.name for p in device.spec.properties or []} <= model_props

    msg = convert.device_to_dmi(convert.effective_device(device, model))
    convert.device_model_to_dmi(model)
    for prop in msg.spec.properties:
        # Every property gets a visitor with configData from the model, merged with the device's keys.
        assert convert.unpack_values(prop.visitors.configData.data, prop.name)


def test_virtual_thermometer_merges_model_defaults() -> None:
    device = crds.Device.model_validate(
        next(d for d in _of_kind("Device") if d["metadata"]["name"] == "thermometer-1")
    )
    model = crds.DeviceModel.model_validate(
        next(m for m in _of_kind("DeviceModel") if m["metadata"]["name"] == "virtual-thermometer")
    )
    msg = convert.device_to_dmi(convert.effective_device(device, model))
    temperature = convert.unpack_values(msg.spec.properties[0].visitors.configData.data, "temperature")
    assert temperature == {"generator": "sine", "max": 26, "min": 18, "periodSeconds": 60}
    assert convert.unpack_values(msg.spec.protocol.configData.data, "protocol") == {"seed": 7}
    writable = [p.name for p in model.spec.properties or [] if p.access_mode is crds.AccessMode.READ_WRITE]
    assert writable == ["target-temperature", "power"]
    assert msg.spec.properties[2].desired.value == "21.5"


def test_edge_application_targets_the_example_node_groups() -> None:
    (app,) = _of_kind("EdgeApplication")
    groups = {g["metadata"]["name"] for g in _of_kind("NodeGroup")}
    targets = [t["name"] for t in app["spec"]["workloadScope"]["targetNodeGroups"]]
    assert targets == ["site-a", "site-b"] and set(targets) <= groups
    kinds = [m["kind"] for m in app["spec"]["workloadTemplate"]["manifests"]]
    assert kinds == ["Deployment", "Service"]


BAD_EXAMPLE_EDITS = [
    ("devicemodel-virtual-thermometer.yaml", ["spec", "properties", 0, "type"], "REAL", "spec.properties[0].type: 'REAL' is not one of"),
    ("device-virtual-thermometer.yaml", ["spec", "properties", 0, "collectCycle"], "1s", "spec.properties[0].collectCycle: '1s' is not of type 'integer'"),
    ("device-modbus-thermostat.yaml", ["spec", "deviceModelRef"], ..., "spec: 'deviceModelRef' is a required property"),
    ("edgeapplication.yaml", ["spec", "workloadScope", "targetNodeGroups", 0, "overriders", "envOverriders", 0, "operator"], "swap", "envOverriders[0].operator: 'swap' is not one of ['add', 'remove', 'replace']"),
    ("nodegroups.yaml", ["spec", "matchLabels"], ["site"], "spec.matchLabels: ['site'] is not of type 'object'"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "path", "value", "message"), BAD_EXAMPLE_EDITS)
def test_broken_examples_are_rejected_naming_the_field(
    file: str, path: list[Any], value: Any, message: str
) -> None:
    doc = copy.deepcopy(next(iter(yaml.safe_load_all((EXAMPLES / file).read_text()))))
    node = doc
    for part in path[:-1]:
        node = node[part]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    errors = validation_errors(doc)
    assert len(errors) == 1 and message in errors[0], errors
