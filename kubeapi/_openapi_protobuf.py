"""The swagger 2.0 document of :mod:`kubeapi.openapi` as gnostic's ``openapi.v2.Document`` protobuf, the
only form client-go asks ``/openapi/v2`` for.

The conversion follows gnostic's reading of a swagger document (``openapiv2/OpenAPIv2.go``), which is
what kube-apiserver serves and kubectl parses:

- a JSON key maps to the field of the same name in snake case (``operationId`` -> ``operation_id``),
  ``$ref`` to ``_ref``;
- a JSON map becomes the message's repeated ``Named*`` pairs (``additional_properties``; ``path`` of
  ``Paths``, ``response_code`` of ``Responses``), in the document's order;
- vendor extensions (``x-*``) become ``vendor_extension`` pairs whose value is the YAML text of the JSON
  value (kubectl reads ``x-kubernetes-group-version-kind`` from it), as do ``default``, ``example`` and
  ``enum`` values;
- one-of wrappers choose by content: ``type`` and ``items`` accept a single value or a list,
  ``additionalProperties`` a boolean or a schema, a parameter is a ``$ref``, a body parameter or a
  header/formData/query/path one by ``in``, a response a ``$ref`` or a response, a security definition
  goes by ``type`` (and ``flow`` for oauth2).

A message field present in JSON is set even when empty: kubectl tells an object with ``properties: {}``
(a kind with no fields) from one without (a map) by the field's presence. Keys swagger 2.0 has no field
for (``patternProperties`` of a CRD schema, say) have nowhere to go and are left out, as gnostic rejects
them, and so is a value of the wrong JSON type for its field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from kubeapi import _openapiv2_pb2 as pb

__all__ = ["encode_document"]

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def encode_document(doc: Mapping[str, Any]) -> bytes:
    """Serialized ``openapi.v2.Document`` of the swagger 2.0 JSON document ``doc``."""
    message = pb.Document()
    _fill(message, doc)
    return message.SerializeToString(deterministic=True)


def _yaml(value: Any) -> str:
    text: str = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1 << 20)
    # A bare scalar ends with the document-end marker; gnostic writes none and YAML does not need it.
    return text.removesuffix("...\n")


def _field_name(key: str) -> str:
    return "_ref" if key == "$ref" else _CAMEL.sub(r"_\1", key).lower()


def _fill(message: Message, value: Any) -> None:
    special = _SPECIAL.get(message.DESCRIPTOR.name)
    if special is not None:
        special(message, value)
        return
    if not isinstance(value, Mapping):
        return
    fields = message.DESCRIPTOR.fields_by_name
    for key, item in value.items():
        if key.startswith("x-") and "vendor_extension" in fields:
            _named_any(message, "vendor_extension", key, item)
            continue
        field = fields.get(_field_name(key))
        if field is not None:
            _set(message, field, item)


# A field's descriptor: typeshed's FieldDescriptor, or upb's own class at run time.
_Field = Any


def _set(message: Message, field: _Field, value: Any) -> None:
    repeated = field.is_repeated
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        target = getattr(message, field.name)
        if repeated:
            for item in value if isinstance(value, list) else [value]:
                _fill(target.add(), item)
        else:
            target.SetInParent()
            _fill(target, value)
        return
    convert = _SCALARS.get(field.type, str)
    values = value if isinstance(value, list) else [value]
    try:
        if repeated:
            getattr(message, field.name).extend(convert(v) for v in values)
        elif value is not None:
            setattr(message, field.name, convert(value))
    except (TypeError, ValueError):
        # A value of no form in the field (``maximum: "ten"``, a length past int64) is left out: one
        # odd schema must not take the document away from every client.
        return


_SCALARS: dict[int, Callable[[Any], Any]] = {
    FieldDescriptor.TYPE_BOOL: bool,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_INT64: int,
}


def _named_any(message: Message, field: str, name: str, value: Any) -> None:
    pair = getattr(message, field).add()
    pair.name = name
    pair.value.yaml = _yaml(value)


def _pairs(field: str) -> Callable[[Message, Any], None]:
    """A JSON map as repeated ``Named*`` pairs in ``field`` (``x-`` keys go to ``vendor_extension``
    where the message has one)."""

    def fill(message: Message, value: Any) -> None:
        if not isinstance(value, Mapping):
            return
        pairs = getattr(message, field)
        has_extensions = "vendor_extension" in message.DESCRIPTOR.fields_by_name
        pair_type: Any = message.DESCRIPTOR.fields_by_name[field].message_type
        value_field: _Field = pair_type.fields_by_name["value"]
        for key, item in value.items():
            if has_extensions and key.startswith("x-"):
                _named_any(message, "vendor_extension", key, item)
                continue
            pair = pairs.add()
            pair.name = key
            _set(pair, value_field, item)

    return fill


def _list_of(field: str) -> Callable[[Message, Any], None]:
    """A message wrapping a repeated ``field`` that JSON writes as one value or a list."""

    def fill(message: Message, value: Any) -> None:
        _set(message, message.DESCRIPTOR.fields_by_name[field], value)

    return fill


def _one_of(choose: Callable[[Any], str]) -> Callable[[Message, Any], None]:
    """A one-of wrapper: ``choose`` names the field the JSON value goes to."""

    def fill(message: Message, value: Any) -> None:
        _set(message, message.DESCRIPTOR.fields_by_name[choose(value)], value)

    return fill


def _fill_any(message: Message, value: Any) -> None:
    message.yaml = _yaml(value)  # type: ignore[attr-defined]


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


_IN = {
    "header": "header_parameter_sub_schema",
    "formData": "form_data_parameter_sub_schema",
    "query": "query_parameter_sub_schema",
    "path": "path_parameter_sub_schema",
}
_OAUTH2 = {
    "implicit": "oauth2_implicit_security",
    "password": "oauth2_password_security",
    "application": "oauth2_application_security",
    "accessCode": "oauth2_access_code_security",
}


def _security(value: Any) -> str:
    kind = _get(value, "type")
    if kind == "basic":
        return "basic_authentication_security"
    if kind == "oauth2":
        return _OAUTH2.get(_get(value, "flow"), "oauth2_implicit_security")
    return "api_key_security"


_SPECIAL: dict[str, Callable[[Message, Any], None]] = {
    "Any": _fill_any,
    "TypeItem": _list_of("value"),
    "ItemsItem": _list_of("schema"),
    "StringArray": _list_of("value"),
    "AdditionalPropertiesItem": _one_of(lambda v: "boolean" if isinstance(v, bool) else "schema"),
    "ParametersItem": _one_of(lambda v: "json_reference" if _get(v, "$ref") else "parameter"),
    "Parameter": _one_of(lambda v: "body_parameter" if _get(v, "in") == "body" else "non_body_parameter"),
    "NonBodyParameter": _one_of(lambda v: _IN.get(_get(v, "in"), "query_parameter_sub_schema")),
    "ResponseValue": _one_of(lambda v: "json_reference" if _get(v, "$ref") else "response"),
    "SchemaItem": _one_of(lambda v: "file_schema" if _get(v, "type") == "file" else "schema"),
    "SecurityDefinitionsItem": _one_of(_security),
    "Paths": _pairs("path"),
    "Responses": _pairs("response_code"),
    **{
        name: _pairs("additional_properties")
        for name in (
            "Default",
            "Definitions",
            "Examples",
            "Headers",
            "Oauth2Scopes",
            "ParameterDefinitions",
            "Properties",
            "ResponseDefinitions",
            "SecurityDefinitions",
            "SecurityRequirement",
            "VendorExtension",
        )
    },
}
