"""kubeapi.schema: CRD structural schema validation, pruning, defaulting and kube-style errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeapi.schema import (
    CAUSE_INVALID,
    CAUSE_NOT_SUPPORTED,
    CAUSE_REQUIRED,
    CAUSE_TYPE_INVALID,
    FieldError,
    admit,
    apply_defaults,
    check_structural,
    go_float,
    go_value,
    invalid_status,
    prune,
    strict_decoding_status,
    unknown_field_warnings,
    validate,
)

# A trimmed Device v1beta1 schema, shaped like the KubeEdge CRD.
DEVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["deviceModelRef"],
            "properties": {
                "deviceModelRef": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "default": ""}},
                },
                "nodeName": {"type": "string"},
                "properties": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "collectCycle": {"type": "integer", "format": "int64"},
                            "reportCycle": {"type": "integer", "format": "int64"},
                            "reportToCloud": {"type": "boolean"},
                        },
                    },
                },
                "protocol": {
                    "type": "object",
                    "properties": {
                        "protocolName": {"type": "string"},
                        "configData": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                },
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def spec_schema(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "properties": props}}}


def messages(schema: dict[str, Any], obj: Any) -> list[str]:
    return [e.message() for e in validate(schema, obj)]


def test_brief_example_exact_status() -> None:
    obj = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "bad"},
        "spec": {"deviceModelRef": {"name": "m"}, "properties": [{"name": "t", "collectCycle": "string"}]},
    }
    errors = validate(DEVICE_SCHEMA, obj)
    status = invalid_status("Device", "devices.kubeedge.io", "bad", errors)
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Device.devices.kubeedge.io "bad" is invalid: '
        "spec.properties[0].collectCycle: Invalid value: "
        '"string": spec.properties[0].collectCycle in body must be of type integer: "string"',
        "reason": "Invalid",
        "details": {
            "name": "bad",
            "group": "devices.kubeedge.io",
            "kind": "Device",
            "causes": [
                {
                    "reason": "FieldValueTypeInvalid",
                    "message": 'Invalid value: "string": spec.properties[0].collectCycle in body '
                    "must be of type "
                    'integer: "string"',
                    "field": "spec.properties[0].collectCycle",
                }
            ],
        },
        "code": 422,
    }


def test_several_errors_are_bracketed_and_deduplicated() -> None:
    obj = {"metadata": {"name": "bad"}, "spec": {"properties": [{"reportToCloud": "yes"}]}}
    errors = validate(DEVICE_SCHEMA, obj)
    status = invalid_status("Device", "devices.kubeedge.io", "bad", [*errors, errors[0]])
    assert status["message"] == (
        'Device.devices.kubeedge.io "bad" is invalid: [spec.deviceModelRef: Required value, '
        'spec.properties[0].reportToCloud: Invalid value: "string": spec.properties[0].reportToCloud in body '
        'must be of type boolean: "string"]'
    )
    assert [c["reason"] for c in status["details"]["causes"]] == [
        "FieldValueRequired",
        "FieldValueTypeInvalid",
        "FieldValueRequired",
    ]


def test_core_group_status_and_no_errors() -> None:
    assert invalid_status("Pod", "", "p", [])["message"] == 'Pod "p" is invalid'


VALIDATION_CASES: list[tuple[str, dict[str, Any], Any, list[str]]] = [
    # type
    ("integer ok", {"type": "integer"}, 3, []),
    ("integer from whole float", {"type": "integer"}, 3.0, []),
    (
        "integer not fractional",
        {"type": "integer"},
        1.5,
        ['spec.x: Invalid value: "number": spec.x in body must be of type integer: "number"'],
    ),
    (
        "integer not string",
        {"type": "integer"},
        "3",
        ['spec.x: Invalid value: "string": spec.x in body must be of type integer: "string"'],
    ),
    (
        "integer not boolean",
        {"type": "integer"},
        True,
        ['spec.x: Invalid value: "boolean": spec.x in body must be of type integer: "boolean"'],
    ),
    ("number accepts integer", {"type": "number"}, 3, []),
    ("number accepts float", {"type": "number"}, 3.25, []),
    (
        "string not number",
        {"type": "string"},
        1,
        ['spec.x: Invalid value: "integer": spec.x in body must be of type string: "integer"'],
    ),
    (
        "boolean not string",
        {"type": "boolean"},
        "true",
        ['spec.x: Invalid value: "string": spec.x in body must be of type boolean: "string"'],
    ),
    (
        "object not array",
        {"type": "object"},
        [],
        ['spec.x: Invalid value: "array": spec.x in body must be of type object: "array"'],
    ),
    (
        "array not object",
        {"type": "array", "items": {"type": "string"}},
        {},
        ['spec.x: Invalid value: "object": spec.x in body must be of type array: "object"'],
    ),
    (
        "null not allowed",
        {"type": "string"},
        None,
        ['spec.x: Invalid value: "null": spec.x in body must be of type string: "null"'],
    ),
    ("nullable null", {"type": "string", "nullable": True}, None, []),
    ("nullable enum null", {"type": "string", "nullable": True, "enum": ["a"]}, None, []),
    ("untyped preserve", {"x-kubernetes-preserve-unknown-fields": True}, {"a": [1]}, []),
    ("int-or-string int", {"x-kubernetes-int-or-string": True}, 8080, []),
    ("int-or-string string", {"x-kubernetes-int-or-string": True}, "http", []),
    (
        "int-or-string not bool",
        {"x-kubernetes-int-or-string": True},
        False,
        ['spec.x: Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean"'],
    ),
    (
        "int-or-string not fraction",
        {"x-kubernetes-int-or-string": True},
        0.5,
        ['spec.x: Invalid value: "number": spec.x in body must be of type integer,string: "number"'],
    ),
    # enum
    ("enum ok", {"type": "string", "enum": ["A", "B"]}, "B", []),
    (
        "enum strings",
        {"type": "string", "enum": ["A", "B"]},
        "C",
        ['spec.x: Unsupported value: "C": supported values: "A", "B"'],
    ),
    (
        "enum numbers",
        {"type": "integer", "enum": [1, 2]},
        3,
        ['spec.x: Unsupported value: 3: supported values: "1", "2"'],
    ),
    ("enum number equality", {"type": "number", "enum": [1, 2]}, 2.0, []),
    (
        "enum true is not 1",
        {"type": "integer", "enum": [1]},
        True,
        [
            'spec.x: Invalid value: "boolean": spec.x in body must be of type integer: "boolean"',
            'spec.x: Unsupported value: true: supported values: "1"',
        ],
    ),
    # strings
    (
        "pattern",
        {"type": "string", "pattern": "^[0-9]+$"},
        "abc",
        ["spec.x: Invalid value: \"abc\": spec.x in body should match '^[0-9]+$'"],
    ),
    ("pattern unanchored search", {"type": "string", "pattern": "[0-9]"}, "a1b", []),
    (
        "minLength",
        {"type": "string", "minLength": 3},
        "ab",
        ['spec.x: Invalid value: "ab": spec.x in body should be at least 3 chars long'],
    ),
    (
        "maxLength",
        {"type": "string", "maxLength": 3},
        "abcd",
        ["spec.x: Too long: may not be more than 3 bytes"],
    ),
    (
        "maxLength 1",
        {"type": "string", "maxLength": 1},
        "ab",
        ["spec.x: Too long: may not be more than 1 byte"],
    ),
    ("maxLength counts characters", {"type": "string", "maxLength": 2}, "éé", []),
    (
        "format date-time",
        {"type": "string", "format": "date-time"},
        "yesterday",
        ['spec.x: Invalid value: "yesterday": spec.x in body must be of type date-time: "yesterday"'],
    ),
    ("format date-time ok", {"type": "string", "format": "date-time"}, "2024-05-01T10:00:00Z", []),
    ("format date-time offset", {"type": "string", "format": "date-time"}, "2024-05-01T10:00:00.5+02:00", []),
    (
        "format date-time bad day",
        {"type": "string", "format": "date-time"},
        "2024-02-30T10:00:00Z",
        [
            'spec.x: Invalid value: "2024-02-30T10:00:00Z": spec.x in body must '
            'be of type date-time: "2024-02-30T10:00:00Z"'
        ],
    ),
    ("format date", {"type": "string", "format": "date"}, "2024-05-01", []),
    ("format byte", {"type": "string", "format": "byte"}, "aGVsbG8=", []),
    (
        "format byte bad",
        {"type": "string", "format": "byte"},
        "not base64!",
        ['spec.x: Invalid value: "not base64!": spec.x in body must be of type byte: "not base64!"'],
    ),
    ("format uuid", {"type": "string", "format": "uuid"}, "123e4567-e89b-12d3-a456-426614174000", []),
    ("format ipv4", {"type": "string", "format": "ipv4"}, "10.0.0.1", []),
    (
        "format ipv4 bad",
        {"type": "string", "format": "ipv4"},
        "fd00::1",
        ['spec.x: Invalid value: "fd00::1": spec.x in body must be of type ipv4: "fd00::1"'],
    ),
    ("format ipv6", {"type": "string", "format": "ipv6"}, "fd00::1", []),
    ("format cidr", {"type": "string", "format": "cidr"}, "10.0.0.0/8", []),
    ("format hostname", {"type": "string", "format": "hostname"}, "edge-1.example.com", []),
    ("format unknown ignored", {"type": "string", "format": "frobnicate"}, "x", []),
    ("format int32 does not range-check", {"type": "integer", "format": "int32"}, 2**40, []),
    # numbers
    (
        "minimum",
        {"type": "integer", "minimum": 1},
        0,
        ["spec.x: Invalid value: 0: spec.x in body should be greater than or equal to 1"],
    ),
    ("minimum equal ok", {"type": "integer", "minimum": 1}, 1, []),
    (
        "exclusiveMinimum",
        {"type": "integer", "minimum": 1, "exclusiveMinimum": True},
        1,
        ["spec.x: Invalid value: 1: spec.x in body should be greater than 1"],
    ),
    (
        "maximum",
        {"type": "integer", "maximum": 500},
        501,
        ["spec.x: Invalid value: 501: spec.x in body should be less than or equal to 500"],
    ),
    (
        "exclusiveMaximum",
        {"type": "number", "maximum": 0.5, "exclusiveMaximum": True},
        0.5,
        ["spec.x: Invalid value: 0.5: spec.x in body should be less than 0.5"],
    ),
    (
        "large maximum printed as Go does",
        {"type": "integer", "maximum": 1000000},
        2000000,
        ["spec.x: Invalid value: 2000000: spec.x in body should be less than or equal to 1e+06"],
    ),
    (
        "multipleOf",
        {"type": "integer", "multipleOf": 5},
        7,
        ["spec.x: Invalid value: 7: spec.x in body should be a multiple of 5"],
    ),
    ("multipleOf float ok", {"type": "number", "multipleOf": 0.1}, 0.3, []),
    # arrays
    (
        "minItems",
        {"type": "array", "items": {"type": "string"}, "minItems": 2},
        ["a"],
        ["spec.x: Invalid value: 1: spec.x in body should have at least 2 items"],
    ),
    (
        "maxItems",
        {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        ["a", "b", "c"],
        ["spec.x: Too many: 3: must have at most 2 items"],
    ),
    (
        "items validated with index",
        {"type": "array", "items": {"type": "string"}},
        ["a", 2],
        ['spec.x[1]: Invalid value: "integer": spec.x[1] in body must be of type string: "integer"'],
    ),
    (
        "set duplicates",
        {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        ["a", "b", "a"],
        ['spec.x[2]: Duplicate value: "a"'],
    ),
    (
        "map list duplicates",
        {
            "type": "array",
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}},
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
        [{"name": "a", "v": 1}, {"name": "a", "v": 2}],
        ['spec.x[1]: Duplicate value: map[string]interface {}{"name":"a"}'],
    ),
    # objects
    (
        "required",
        {
            "type": "object",
            "required": ["a", "b"],
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        },
        {"a": "x"},
        ["spec.x.b: Required value"],
    ),
    (
        "map values",
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"good": 1, "bad": "no"},
        ['spec.x.bad: Invalid value: "string": spec.x.bad in body must be of type integer: "string"'],
    ),
    ("map of anything", {"type": "object", "additionalProperties": True}, {"a": {"b": 1}}, []),
    (
        "maxProperties",
        {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
        {"a": "1", "b": "2"},
        ["spec.x: Too many: 2: must have at most 1 items"],
    ),
    (
        "minProperties",
        {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 2},
        {"a": "1"},
        ["spec.x: Invalid value: 1: spec.x in body should have at least 2 properties"],
    ),
    (
        "embedded resource needs apiVersion and kind",
        {
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
        },
        {"metadata": {"name": "x"}},
        [
            "spec.x.apiVersion: Required value: must not be empty",
            "spec.x.kind: Required value: must not be empty",
        ],
    ),
    (
        "nested path",
        {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}}},
        {"a": {"b": "c"}},
        ['spec.x.a.b: Invalid value: "string": spec.x.a.b in body must be of type integer: "string"'],
    ),
    # combinators
    (
        "anyOf int-or-string pattern",
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "50%",
        [],
    ),
    (
        "anyOf fails",
        {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]},
        "c",
        [
            'spec.x: Invalid value: "c": spec.x in body must validate at least one schema (anyOf)',
            "spec.x: Invalid value: \"c\": spec.x in body should match '^a'",
        ],
    ),
    ("allOf", {"type": "string", "allOf": [{"minLength": 1}, {"maxLength": 3}]}, "abc", []),
    (
        "oneOf both match",
        {"type": "string", "oneOf": [{"minLength": 1}, {"maxLength": 3}]},
        "ab",
        ['spec.x: Invalid value: "ab": spec.x in body must validate one and only one schema (oneOf)'],
    ),
    (
        "not",
        {"type": "string", "not": {"enum": ["forbidden"]}},
        "forbidden",
        ['spec.x: Invalid value: "forbidden": spec.x in body should not validate the schema (not)'],
    ),
]


@pytest.mark.parametrize(
    ("name", "sub", "value", "want"), VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES]
)
def test_validate(name: str, sub: dict[str, Any], value: Any, want: list[str]) -> None:
    schema = spec_schema(x=sub)
    assert messages(schema, {"spec": {"x": value}}) == want


def test_field_error_reasons() -> None:
    errors = validate(
        spec_schema(
            a={"type": "integer"}, b={"type": "string", "enum": ["x"]}, c={"type": "string", "pattern": "^z"}
        ),
        {"spec": {"a": "1", "b": "y", "c": "y"}},
    )
    assert [e.type for e in errors] == [CAUSE_TYPE_INVALID, CAUSE_NOT_SUPPORTED, CAUSE_INVALID]
    required = validate({"type": "object", "required": ["spec"]}, {})
    assert required == [FieldError(CAUSE_REQUIRED, "spec", "", "")]
    assert required[0].cause() == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec",
    }


def test_root_metadata_and_type_meta_are_not_validated_by_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    assert (
        validate(schema, {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n", "labels": {"a": "b"}}})
        == []
    )


def test_valid_device() -> None:
    obj = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d"},
        "spec": {
            "deviceModelRef": {"name": "m"},
            "properties": [{"name": "t", "collectCycle": 10000, "reportToCloud": True}],
            "protocol": {"protocolName": "modbus", "configData": {"slaveID": 1, "nested": {"x": [1, 2]}}},
        },
        "status": {"anything": ["goes"]},
    }
    assert validate(DEVICE_SCHEMA, obj) == []


# ------------------------------------------------------------------------------------------------
# pruning


def test_prune_drops_undeclared_fields_and_reports_paths() -> None:
    obj = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d", "unknownMeta": 1, "labels": {"a": "b"}},
        "spec": {
            "deviceModelRef": {"name": "m", "extra": True},
            "typo": 1,
            "properties": [{"name": "a", "junk": 1}, {"name": "b"}],
            "protocol": {"configData": {"kept": {"deep": 1}}},
        },
        "status": {"free": "form"},
        "top": "level",
    }
    before = copy.deepcopy(obj)
    unknown: list[str] = []
    pruned = prune(DEVICE_SCHEMA, obj, unknown)
    assert pruned == {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "d", "unknownMeta": 1, "labels": {"a": "b"}},
        "spec": {
            "deviceModelRef": {"name": "m"},
            "properties": [{"name": "a"}, {"name": "b"}],
            "protocol": {"configData": {"kept": {"deep": 1}}},
        },
        "status": {"free": "form"},
    }
    assert unknown == ["spec.deviceModelRef.extra", "spec.typo", "spec.properties[0].junk", "top"]
    assert obj == before


PRUNE_CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    (
        "root type meta kept without properties",
        {"type": "object"},
        {"apiVersion": "a", "kind": "K", "x": 1},
        {"apiVersion": "a", "kind": "K"},
    ),
    (
        "object without properties is emptied",
        spec_schema(x={"type": "object"}),
        {"spec": {"x": {"a": 1}}},
        {"spec": {"x": {}}},
    ),
    (
        "preserve keeps unknown but prunes known",
        spec_schema(
            x={
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {"k": {"type": "object", "properties": {}}},
            }
        ),
        {"spec": {"x": {"u": {"v": 1}, "k": {"drop": 1}}}},
        {"spec": {"x": {"u": {"v": 1}, "k": {}}}},
    ),
    (
        "map values pruned by additionalProperties",
        spec_schema(
            x={
                "type": "object",
                "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}},
            }
        ),
        {"spec": {"x": {"k1": {"a": "1", "b": "2"}}}},
        {"spec": {"x": {"k1": {"a": "1"}}}},
    ),
    (
        "embedded resource keeps type meta",
        spec_schema(
            x={
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "properties": {"spec": {"type": "object"}},
            }
        ),
        {
            "spec": {
                "x": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "junk": 1}
            }
        },
        {"spec": {"x": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}},
    ),
    ("scalars untouched", spec_schema(x={"type": "string"}), {"spec": {"x": "v"}}, {"spec": {"x": "v"}}),
    (
        "array without items schema kept",
        spec_schema(x={"type": "array"}),
        {"spec": {"x": [{"a": 1}]}},
        {"spec": {"x": [{"a": 1}]}},
    ),
    (
        "wrong type left for validation",
        spec_schema(x={"type": "object", "properties": {}}),
        {"spec": {"x": "str"}},
        {"spec": {"x": "str"}},
    ),
]


@pytest.mark.parametrize(("name", "schema", "obj", "want"), PRUNE_CASES, ids=[c[0] for c in PRUNE_CASES])
def test_prune(name: str, schema: dict[str, Any], obj: Any, want: Any) -> None:
    assert prune(schema, obj) == want


# ------------------------------------------------------------------------------------------------
# defaulting

DEFAULT_CASES: list[tuple[str, dict[str, Any], Any, Any]] = [
    (
        "absent property defaulted",
        spec_schema(replicas={"type": "integer", "default": 1}),
        {"spec": {}},
        {"spec": {"replicas": 1}},
    ),
    (
        "present property kept",
        spec_schema(replicas={"type": "integer", "default": 1}),
        {"spec": {"replicas": 3}},
        {"spec": {"replicas": 3}},
    ),
    ("absent parent not created", spec_schema(replicas={"type": "integer", "default": 1}), {}, {}),
    (
        "defaults inside defaults",
        spec_schema(
            ref={"type": "object", "default": {}, "properties": {"name": {"type": "string", "default": "n"}}}
        ),
        {"spec": {}},
        {"spec": {"ref": {"name": "n"}}},
    ),
    (
        "null replaced by default",
        spec_schema(mode={"type": "string", "default": "auto"}),
        {"spec": {"mode": None}},
        {"spec": {"mode": "auto"}},
    ),
    (
        "non-nullable null without default dropped",
        spec_schema(mode={"type": "string"}),
        {"spec": {"mode": None}},
        {"spec": {}},
    ),
    (
        "nullable null kept",
        spec_schema(mode={"type": "string", "nullable": True, "default": "x"}),
        {"spec": {"mode": None}},
        {"spec": {"mode": None}},
    ),
    (
        "items defaulted",
        spec_schema(
            list={
                "type": "array",
                "items": {"type": "object", "properties": {"p": {"type": "integer", "default": 80}}},
            }
        ),
        {"spec": {"list": [{}, {"p": 1}]}},
        {"spec": {"list": [{"p": 80}, {"p": 1}]}},
    ),
    (
        "map values defaulted",
        spec_schema(
            m={
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"on": {"type": "boolean", "default": False}},
                },
            }
        ),
        {"spec": {"m": {"a": {}, "b": None}}},
        {"spec": {"m": {"a": {"on": False}}}},
    ),
    (
        "default is copied",
        spec_schema(tags={"type": "array", "items": {"type": "string"}, "default": ["a"]}),
        {"spec": {}},
        {"spec": {"tags": ["a"]}},
    ),
]


@pytest.mark.parametrize(("name", "schema", "obj", "want"), DEFAULT_CASES, ids=[c[0] for c in DEFAULT_CASES])
def test_apply_defaults(name: str, schema: dict[str, Any], obj: Any, want: Any) -> None:
    before = copy.deepcopy(obj)
    assert apply_defaults(schema, obj) == want
    assert obj == before


def test_default_values_are_not_shared() -> None:
    schema = spec_schema(tags={"type": "array", "items": {"type": "string"}, "default": ["a"]})
    first = apply_defaults(schema, {"spec": {}})
    first["spec"]["tags"].append("b")
    assert apply_defaults(schema, {"spec": {}}) == {"spec": {"tags": ["a"]}}


def test_admit_prunes_defaults_then_validates() -> None:
    obj = {
        "metadata": {"name": "d"},
        "spec": {"deviceModelRef": {}, "junk": 1, "properties": [{"collectCycle": 1.5}]},
    }
    result = admit(DEVICE_SCHEMA, obj)
    assert result.unknown_fields == ["spec.junk"]
    assert result.obj["spec"]["deviceModelRef"] == {"name": ""}
    assert [e.message() for e in result.errors] == [
        'spec.properties[0].collectCycle: Invalid value: "number": '
        "spec.properties[0].collectCycle in body must be "
        'of type integer: "number"'
    ]


def test_unknown_field_statuses() -> None:
    status = strict_decoding_status("Device", "v1beta1", ["spec.foo", "spec.bar"])
    assert status["code"] == 400 and status["reason"] == "BadRequest"
    assert status["message"] == (
        'Device in version "v1beta1" cannot be handled as a Device: strict decoding error: '
        'unknown field "spec.foo", unknown field "spec.bar"'
    )
    assert unknown_field_warnings(["spec.foo"]) == ['unknown field "spec.foo"']


# ------------------------------------------------------------------------------------------------
# structural schema check

BASE = "spec.versions[0].schema.openAPIV3Schema"
STRUCTURAL_CASES: list[tuple[str, Any, list[str]]] = [
    ("device schema is structural", DEVICE_SCHEMA, []),
    (
        "root type missing",
        {"properties": {}},
        [f"{BASE}.type: Required value: must not be empty at the root"],
    ),
    (
        "root not object",
        {"type": "string"},
        [f'{BASE}.type: Invalid value: "string": must be object at the root'],
    ),
    (
        "field type missing",
        {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}},
        [f"{BASE}.properties[spec].type: Required value: must not be empty for specified object fields"],
    ),
    (
        "items type missing",
        {"type": "object", "properties": {"l": {"type": "array", "items": {"properties": {}}}}},
        [f"{BASE}.properties[l].items.type: Required value: must not be empty for specified array items"],
    ),
    (
        "array without items",
        {"type": "object", "properties": {"l": {"type": "array"}}},
        [f"{BASE}.properties[l].items: Required value: must be specified"],
    ),
    (
        "unknown type",
        {"type": "object", "properties": {"a": {"type": "int"}}},
        [
            f'{BASE}.properties[a].type: Unsupported value: "int": supported values: "array", "boolean", '
            '"integer", "number", "object", "string"'
        ],
    ),
    (
        "preserve allows no type",
        {"type": "object", "properties": {"a": {"x-kubernetes-preserve-unknown-fields": True}}},
        [],
    ),
    (
        "int-or-string allows no type",
        {"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": True}}},
        [],
    ),
    (
        "int-or-string with type",
        {"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": True}}},
        [
            f'{BASE}.properties[a].type: Invalid value: "string": must be empty if '
            "x-kubernetes-int-or-string is true"
        ],
    ),
    (
        "preserve false",
        {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
        [f"{BASE}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"],
    ),
    (
        "metadata beyond name",
        {
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}},
        },
        [
            f"{BASE}.properties[metadata]: Forbidden: must not specify anything "
            "other than name and generateName, "
            "but metadata is implicitly specified"
        ],
    ),
    (
        "properties with additionalProperties",
        {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        },
        [f"{BASE}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"],
    ),
    (
        "$ref",
        {"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}},
        [f"{BASE}.properties[a].$ref: Forbidden: $ref is not supported"],
    ),
    (
        "uniqueItems",
        {
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
        },
        [
            f"{BASE}.properties[a].uniqueItems: Forbidden: uniqueItems cannot be "
            "set to true since the runtime "
            "complexity becomes quadratic"
        ],
    ),
    (
        "invalid default",
        {"type": "object", "properties": {"n": {"type": "integer", "default": "x"}}},
        [
            f'{BASE}.properties[n].default: Invalid value: "x": <default>: Invalid '
            'value: "string": <default> in '
            'body must be of type integer: "string"'
        ],
    ),
    (
        "default with unknown fields",
        {"type": "object", "properties": {"o": {"type": "object", "properties": {}, "default": {"z": 1}}}},
        [
            f"{BASE}.properties[o].default: Invalid value: map[string]interface "
            f'{{}}{{"z":1}}: must not have unknown fields'
        ],
    ),
    (
        "combinators need no types",
        {"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"pattern": "a"}]}}},
        [],
    ),
    ("not a dict", "nope", [f"{BASE}: Required value: schemas are required"]),
    (
        "invalid pattern",
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}},
        [
            f'{BASE}.properties[a].pattern: Invalid value: "(unclosed": must be a valid regular expression, '
            "but isn't: missing ), unterminated subpattern at position 0"
        ],
    ),
    (
        "required not a list",
        {"type": "object", "required": "spec", "properties": {"spec": {"type": "object"}}},
        [f'{BASE}.required: Invalid value: "spec": must be a list of field names'],
    ),
]


@pytest.mark.parametrize(("name", "schema", "want"), STRUCTURAL_CASES, ids=[c[0] for c in STRUCTURAL_CASES])
def test_check_structural(name: str, schema: Any, want: list[str]) -> None:
    assert [e.message() for e in check_structural(schema)] == want


def test_check_structural_status_for_crd() -> None:
    errors = check_structural(
        {"type": "object", "properties": {"spec": {}}}, "spec.versions[1].schema.openAPIV3Schema"
    )
    status = invalid_status("CustomResourceDefinition", "apiextensions.k8s.io", "foos.example.com", errors)
    assert status["message"] == (
        'CustomResourceDefinition.apiextensions.k8s.io "foos.example.com" is invalid: '
        "spec.versions[1].schema.openAPIV3Schema.properties[spec].type: "
        "Required value: must not be empty for "
        "specified object fields"
    )


# ------------------------------------------------------------------------------------------------
# Go formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (-2.5, "-2.5"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (0.0, "0"),
        (float("inf"), "+Inf"),
        (123.456, "123.456"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("a", '"a"'),
        ('say "hi"\n', '"say \\"hi\\"\\n"'),
        ("ü", '"ü"'),
        ("\x00", '"\\x00"'),
        (None, '"null"'),
        (True, "true"),
        (42, "42"),
        (2.5, "2.5"),
        ({"b": 1, "a": "x"}, 'map[string]interface {}{"a":"x", "b":1}'),
        (["a", 1], '[]interface {}{"a", 1}'),
    ],
)
def test_go_value(value: Any, text: str) -> None:
    assert go_value(value) == text


# ------------------------------------------------------------------------------------------------
# The project's own CRDs and examples

ROOT = Path(__file__).resolve().parent.parent
CRD_FILES = sorted((ROOT / "crds").glob("*.yaml"))


def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in CRD_FILES:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = version[
                "schema"
            ]["openAPIV3Schema"]
    return out


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_project_crds_are_structural(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    for i, version in enumerate(crd["spec"]["versions"]):
        base = f"spec.versions[{i}].schema.openAPIV3Schema"
        assert check_structural(version["schema"]["openAPIV3Schema"], base) == []


def test_project_examples_are_admitted_unchanged() -> None:
    schemas = _crd_schemas()
    seen = 0
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            schema = schemas[(doc["apiVersion"], doc["kind"])]
            result = admit(schema, doc)
            assert result.unknown_fields == [] and result.errors == [], (path.name, result)
            seen += 1
    assert seen >= 4


def test_project_device_schema_reports_kube_style_errors() -> None:
    schema = _crd_schemas()[("devices.kubeedge.io/v1beta1", "Device")]
    device = yaml.safe_load((ROOT / "examples" / "device-virtual-thermometer.yaml").read_text())
    device["spec"]["properties"][0]["collectCycle"] = "string"
    del device["spec"]["deviceModelRef"]
    status = invalid_status("Device", "devices.kubeedge.io", "thermometer-1", admit(schema, device).errors)
    assert (
        'spec.properties[0].collectCycle: Invalid value: "string": '
        'spec.properties[0].collectCycle in body must be of type integer: "string"'
    ) in status["message"]
    assert status["message"].startswith('Device.devices.kubeedge.io "thermometer-1" is invalid: [')
