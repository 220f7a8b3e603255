"""CRD models <-> DMI messages: round trips, KubeEdge's model override rules, and the Any wrapping."""

from __future__ import annotations

import copy
import struct
from typing import Any

import pytest
from crd_fixtures import load_fixture
from google.protobuf import any_pb2, struct_pb2, wrappers_pb2

import crds
from dmi import convert
from dmi.v1beta1 import api_pb2


def _over_the_wire(msg: api_pb2.Device) -> api_pb2.Device:
    return api_pb2.Device.FromString(msg.SerializeToString())


def test_device_round_trip_keeps_every_field_the_wire_carries() -> None:
    original = load_fixture("device_full.yaml")
    device = crds.Device.model_validate(original)

    back = convert.device_from_dmi(_over_the_wire(convert.device_to_dmi(device))).to_dict()

    expected = copy.deepcopy(original)
    # Not on the DMI wire: node binding and metadata beyond name/namespace.
    del expected["spec"]["nodeName"]
    expected["metadata"] = {"name": "full-device", "namespace": "default"}
    # DMI carries one state report: spec.stateReport wins over the legacy status, as in KubeEdge v1.23.
    del expected["status"]
    # Proto3 cannot tell false from unset (Go's omitempty writes neither).
    del expected["spec"]["properties"][1]["reportToCloud"]
    assert back == expected


def test_legacy_status_becomes_the_state_report() -> None:
    obj = load_fixture("device_full.yaml")
    del obj["spec"]["stateReport"]
    msg = convert.device_to_dmi(crds.Device.model_validate(obj))
    assert (msg.status.reportToCloud, msg.status.reportCycle) == (True, 5000)
    assert convert.device_from_dmi(msg).spec.state_report == crds.StateReport(
        report_to_cloud=True, report_cycle=5000
    )


def test_device_message_uses_kubeedge_field_names() -> None:
    msg = convert.device_to_dmi(crds.Device.model_validate(load_fixture("device_full.yaml")))
    assert msg.spec.deviceModelReference == "full-model"
    push = msg.spec.properties[0].pushMethod
    assert (push.http.hostname, push.http.requestpath, push.http.port) == (
        "http://127.0.0.1",
        "/ingest",
        8080,
    )
    assert push.dbMethod.tdengine.tdEngineClientConfig.dbname == "plant"
    assert push.otel.endpointURL == "https://localhost:4318/v1/metrics"
    assert not msg.spec.properties[1].HasField("pushMethod")
    assert msg.spec.methods[0].propertyNames == ["switch"]


def test_messages_a_go_mapper_dereferences_are_always_present() -> None:
    # KubeEdge's mapper-framework reads these without nil checks (tests/interop/test_dmi_go_mapper.py).
    spec = {"deviceModelRef": {"name": "m"}, "properties": [{"name": "p"}]}
    device = crds.Device.model_validate({"metadata": {"name": "bare"}, "spec": spec})
    msg = _over_the_wire(convert.device_to_dmi(device))
    prop = msg.spec.properties[0]
    assert prop.HasField("desired") and prop.desired.value == ""
    assert prop.HasField("visitors") and prop.visitors.HasField("configData")
    assert msg.spec.HasField("protocol") and msg.spec.protocol.HasField("configData")
    assert convert.device_from_dmi(msg) == device


def test_device_model_round_trip_keeps_every_property_field() -> None:
    original = load_fixture("devicemodel_full.yaml")
    model = crds.DeviceModel.model_validate(original)
    wire = api_pb2.DeviceModel.FromString(convert.device_model_to_dmi(model).SerializeToString())
    back = convert.device_model_from_dmi(wire).to_dict()

    expected = copy.deepcopy(original)
    # The DMI DeviceModel has no protocol, protocolConfigData or visitors: they reach the mapper merged
    # into each device (effective_device), exactly as in KubeEdge.
    del expected["spec"]["protocol"], expected["spec"]["protocolConfigData"]
    for prop in expected["spec"]["properties"]:
        prop.pop("visitors", None)
    assert back == expected


def test_twins_round_trip() -> None:
    status = crds.DeviceStatus.model_validate(load_fixture("devicestatus_full.yaml"))
    assert status.status is not None and status.status.twins
    for twin in status.status.twins:
        wire = api_pb2.Twin.FromString(convert.twin_to_dmi(twin).SerializeToString())
        assert convert.twin_from_dmi(wire) == twin


# --- model over device ----------------------------------------------------------------------------


def _model(**spec: Any) -> crds.DeviceModel:
    return crds.DeviceModel.model_validate({"metadata": {"name": "m", "namespace": "default"}, "spec": spec})


def _device(**spec: Any) -> crds.Device:
    return crds.Device.model_validate(
        {"metadata": {"name": "d", "namespace": "default"}, "spec": {"deviceModelRef": {"name": "m"}, **spec}}
    )


def _input_register(offset: int) -> dict[str, Any]:
    return {"protocolName": "modbus", "configData": {"register": "InputRegister", "offset": offset}}


def test_model_visitors_and_protocol_config_are_defaults_the_device_overrides() -> None:
    model = _model(
        protocol="modbus",
        protocolConfigData={"port": 502, "timeout": 1000},
        properties=[
            {"name": "temp", "type": "INT", "visitors": _input_register(1)},
            {"name": "hum", "type": "INT", "visitors": _input_register(2)},
            {"name": "fan", "type": "BOOLEAN", "visitors": {"protocolName": "modbus"}},
            {"name": "note", "type": "STRING"},
        ],
    )  # fmt: skip
    device = _device(
        protocol={"protocolName": "modbus", "configData": {"ip": "10.0.0.5", "timeout": 250}},
        properties=[
            {"name": "temp", "visitors": {"configData": {"offset": 7}}},
            {"name": "hum"},
            {
                "name": "fan",
                "visitors": {"protocolName": "modbus", "configData": {"register": "CoilRegister"}},
            },
            {"name": "note", "visitors": {"protocolName": "virtual", "configData": {"k": "v"}}},
        ],
    )
    before = (device.to_dict(), model.to_dict())

    result = convert.effective_device(device, model)

    props = {p.name: p.visitors for p in result.spec.properties or []}
    assert props["temp"] == crds.VisitorConfig(
        protocol_name="modbus", config_data={"register": "InputRegister", "offset": 7}
    )
    assert props["hum"] == crds.VisitorConfig(
        protocol_name="modbus", config_data={"register": "InputRegister", "offset": 2}
    )
    # Model visitor without configData: the device's configData is used as is.
    assert props["fan"] == crds.VisitorConfig(
        protocol_name="modbus", config_data={"register": "CoilRegister"}
    )
    # No model visitor: the device's own visitor stays.
    assert props["note"] == crds.VisitorConfig(protocol_name="virtual", config_data={"k": "v"})
    assert result.spec.protocol == crds.ProtocolConfig(
        protocol_name="modbus", config_data={"port": 502, "timeout": 250, "ip": "10.0.0.5"}
    )
    assert (device.to_dict(), model.to_dict()) == before, "inputs must not change"
    # The merged result is what travels; the model defaults now reach the mapper.
    msg = convert.device_to_dmi(result)
    assert convert.unpack_values(msg.spec.properties[1].visitors.configData.data, "x") == {
        "offset": 2,
        "register": "InputRegister",
    }


def test_model_protocol_config_fills_a_device_without_protocol() -> None:
    result = convert.effective_device(_device(), _model(protocolConfigData={"port": 502}))
    assert result.spec.protocol == crds.ProtocolConfig(config_data={"port": 502})
    assert convert.effective_device(_device(), _model()).spec.protocol is None


# --- google.protobuf.Any ---------------------------------------------------------------------------


def _float32(value: float) -> float:
    narrowed: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return narrowed


WIRE_VALUES = [
    # (Python value, wrapper type, value a Go mapper's DecodeAnyValue returns)
    ("HoldingRegister", wrappers_pb2.StringValue, "HoldingRegister"),
    ("", wrappers_pb2.StringValue, ""),
    (True, wrappers_pb2.BoolValue, True),
    (False, wrappers_pb2.BoolValue, False),
    (502, wrappers_pb2.Int32Value, 502),
    (-(2**31), wrappers_pb2.Int32Value, -(2**31)),
    (2**31 - 1, wrappers_pb2.Int32Value, 2**31 - 1),
    # KubeEdge sends this as FloatValue 16777216.0; kubeshore keeps it exact.
    (16777217, wrappers_pb2.Int32Value, 16777217),
    (2**31, wrappers_pb2.Int64Value, 2**31),
    (2**63 - 1, wrappers_pb2.Int64Value, 2**63 - 1),
    (-(2**63), wrappers_pb2.Int64Value, -(2**63)),
    (0.1, wrappers_pb2.FloatValue, _float32(0.1)),
    (1.5, wrappers_pb2.FloatValue, 1.5),
    (-273.15, wrappers_pb2.FloatValue, _float32(-273.15)),
    (1e-05, wrappers_pb2.FloatValue, _float32(1e-05)),
    (3.3333333, wrappers_pb2.FloatValue, _float32(3.3333333)),
    (2.0, wrappers_pb2.FloatValue, 2.0),
]


@pytest.mark.parametrize(("value", "wrapper", "go_value"), WIRE_VALUES)
def test_any_values_decode_as_a_go_mapper_sees_them(value: Any, wrapper: type[Any], go_value: Any) -> None:
    packed = any_pb2.Any.FromString(convert.value_to_any(value, "configData.v").SerializeToString())
    assert packed.type_url == f"type.googleapis.com/{wrapper.DESCRIPTOR.full_name}"
    unwrapped = wrapper()
    assert packed.Unpack(unwrapped)
    assert unwrapped.value == go_value
    assert type(unwrapped.value) is type(go_value)
    # The Python side gets back the value written, with its type.
    back = convert.any_to_value(packed)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", [0.1, 1.5, 0.001, 3.3333333, 1e-05, 1234567.0, -0.25])
def test_floats_reach_the_go_driver_as_written(value: float) -> None:
    # Go's encoding/json prints a float32 as its shortest round-trip decimal; the driver parses that.
    assert convert.float32_decimal(_float32(value)) == value


BAD_VALUES = [
    ({"a": 1}, "nested objects cannot be carried by DMI"),
    ([1, 2], "nested arrays cannot be carried by DMI"),
    (None, "null cannot be carried by DMI"),
    (2**63, "outside the 64-bit range"),
    (-(2**63) - 1, "outside the 64-bit range"),
    (3.14159265358979, "would reach a Go mapper as 3.1415927"),
    (16777217.0, "would reach a Go mapper as 16777216.0"),
    (1e40, "beyond the 32-bit float range"),
    (float("nan"), "not a finite number"),
    (float("inf"), "not a finite number"),
]


@pytest.mark.parametrize(("value", "problem"), BAD_VALUES)
def test_values_the_wire_cannot_carry_raise_a_named_error(value: Any, problem: str) -> None:
    obj = load_fixture("device_full.yaml")
    obj["spec"]["properties"][0]["visitors"]["configData"]["offset"] = value
    device = crds.Device.model_validate(obj)
    with pytest.raises(convert.ConversionError) as err:
        convert.device_to_dmi(device)
    assert err.value.path == "spec.properties[0].visitors.configData.offset"
    assert problem in str(err.value)
    assert str(err.value).startswith("spec.properties[0].visitors.configData.offset: ")


def test_error_paths_for_protocol_and_anomaly_detection_and_int32_fields() -> None:
    obj = load_fixture("device_full.yaml")
    obj["spec"]["protocol"]["configData"]["options"] = {"retries": 3}
    with pytest.raises(
        convert.ConversionError, match=r"^spec\.protocol\.configData\.options: nested objects"
    ):
        convert.device_to_dmi(crds.Device.model_validate(obj))

    obj = load_fixture("device_full.yaml")
    obj["spec"]["properties"][0]["pushMethod"]["anomalyDetection"]["windows"] = [5, 10]
    with pytest.raises(convert.ConversionError) as err:
        convert.device_to_dmi(crds.Device.model_validate(obj))
    assert err.value.path == "spec.properties[0].pushMethod.anomalyDetection.windows"

    obj = load_fixture("device_full.yaml")
    obj["spec"]["properties"][0]["pushMethod"]["dbMethod"]["redis"]["redisClientConfig"]["poolsize"] = 2**31
    with pytest.raises(convert.ConversionError) as err:
        convert.device_to_dmi(crds.Device.model_validate(obj))
    assert err.value.path == "spec.properties[0].pushMethod.dbMethod.redis.redisClientConfig.poolsize"


def test_decoding_other_wrappers_and_rejecting_non_scalars() -> None:
    double = any_pb2.Any()
    double.Pack(wrappers_pb2.DoubleValue(value=3.14159265358979))
    assert convert.any_to_value(double) == 3.14159265358979
    unsigned = any_pb2.Any()
    unsigned.Pack(wrappers_pb2.UInt64Value(value=2**64 - 1))
    assert convert.any_to_value(unsigned) == 2**64 - 1
    structured = any_pb2.Any()
    structured.Pack(struct_pb2.Struct())
    with pytest.raises(convert.ConversionError, match=r"^configData\.x: unsupported Any type .*Struct"):
        convert.any_to_value(structured, "configData.x")


def test_invalid_dmi_device_model_is_a_conversion_error() -> None:
    msg = api_pb2.DeviceModel(name="m", namespace="default")
    msg.spec.properties.append(api_pb2.ModelProperty(name="t", type="LONG"))
    with pytest.raises(convert.ConversionError) as err:
        convert.device_model_from_dmi(msg)
    assert err.value.path == "spec.properties[0].type"
