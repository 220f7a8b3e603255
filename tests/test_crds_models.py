"""The pydantic CRD models: KubeEdge's exact JSON names, enums, required fields and lookups."""

from __future__ import annotations

from typing import Any

import pytest
from crd_fixtures import FIXTURES, load_fixture
from pydantic import ValidationError

import crds

FULL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*_full.yaml"))


@pytest.mark.parametrize("name", FULL_FIXTURES)
def test_fully_populated_objects_survive_parse_and_dump(name: str) -> None:
    # Unknown keys are ignored, so any misspelt alias would show up as a missing key here.
    obj = load_fixture(name)
    assert crds.parse_object(obj).to_dict() == obj


def test_snake_case_attributes_and_quirky_json_names() -> None:
    device = crds.Device.model_validate(load_fixture("device_full.yaml"))
    push = device.spec.properties[0].push_method  # type: ignore[index]
    assert push is not None and push.http is not None and push.db_method is not None
    assert push.http.host_name == "http://127.0.0.1"
    assert push.db_method.tdengine is not None and push.db_method.tdengine.tdengine_client_config is not None
    assert push.db_method.tdengine.tdengine_client_config.db_name == "plant"
    assert push.otel is not None and push.otel.endpoint_url.startswith("https://")  # type: ignore[union-attr]
    assert device.spec.state_report == crds.StateReport(report_to_cloud=True, report_cycle=10000)


def test_construct_by_attribute_name_dumps_json_names() -> None:
    device = crds.Device(
        metadata=crds.ObjectMeta(name="d", namespace="default"),
        spec=crds.DeviceSpec(
            device_model_ref=crds.LocalObjectReference(name="m"),
            node_name="edge-1",
            properties=[crds.DeviceProperty(name="t", report_to_cloud=True, collect_cycle=500)],
        ),
    )
    assert device.to_dict() == {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "m"},
            "nodeName": "edge-1",
            "properties": [{"name": "t", "reportToCloud": True, "collectCycle": 500}],
        },
    }


def test_metadata_keeps_unknown_fields_and_legacy_status_is_preserved() -> None:
    obj = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d", "selfLink": "/x", "labels": {"a": "b"}},
        "spec": {"deviceModelRef": {"name": "m"}},
        # What KubeEdge <= v1.22 wrote into Device.status.
        "status": {"state": "online", "twins": [{"propertyName": "t"}], "reportCycle": 1000},
    }
    assert crds.Device.model_validate(obj).to_dict() == obj


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        ({"spec": {"properties": [{"name": "x", "type": "LONG"}]}}, ("spec", "properties", 0, "type")),
        (
            {"spec": {"properties": [{"name": "x", "type": "INT", "accessMode": "WriteOnly"}]}},
            ("spec", "properties", 0, "accessMode"),
        ),
        ({"spec": {"properties": [{"type": "INT"}]}}, ("spec", "properties", 0, "name")),
    ],
)
def test_bad_device_models_are_rejected_naming_the_field(obj: dict[str, Any], where: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as err:
        crds.DeviceModel.model_validate(obj)
    assert [e["loc"] for e in err.value.errors()] == [where]


def test_out_of_range_int64_is_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        crds.StateReport.model_validate({"reportCycle": 2**63})
    assert err.value.errors()[0]["loc"] == ("reportCycle",)


def test_wrong_kind_is_rejected() -> None:
    with pytest.raises(ValidationError):
        crds.Device.model_validate({"kind": "DeviceModel", "spec": {"deviceModelRef": {"name": "m"}}})


def test_lookup_by_api_version_and_kind() -> None:
    assert crds.model_for("apps.kubeedge.io/v1alpha1", "NodeGroup") is crds.NodeGroup
    with pytest.raises(crds.UnknownKindError, match="Widget"):
        crds.model_for("apps.kubeedge.io/v1alpha1", "Widget")


def test_generic_list_parses_items() -> None:
    listed = crds.DeviceList.model_validate(
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceList",
            "metadata": {"resourceVersion": "7", "continue": "abc"},
            "items": [load_fixture("device_full.yaml")],
        }
    )
    assert listed.metadata.continue_ == "abc"
    assert listed.items[0].spec.node_name == "edge-1"


def test_resource_info_names() -> None:
    info = crds.DeviceStatus.info
    assert (info.crd_name, info.list_kind, info.scope) == (
        "devicestatuses.devices.kubeedge.io",
        "DeviceStatusList",
        crds.Scope.NAMESPACED,
    )
    assert crds.NodeGroup.info.scope is crds.Scope.CLUSTER
    assert crds.NodeGroup.info.short_names == ("ng",)
    assert crds.EdgeApplication.info.short_names == ("eapp",)
