"""CRD structural schemas (apiextensions.k8s.io/v1 ``openAPIV3Schema``) applied as kube-apiserver does.

Pure functions over decoded JSON values; a schema is the ``openAPIV3Schema`` dict of a CRD version.

For a custom resource on create/update the server runs, in this order (as kube-apiserver does)::

    obj = prune(schema, obj, unknown)        # drop fields the schema does not declare
    obj = apply_defaults(schema, obj)        # fill ``default``s, drop non-nullable nulls
    errors = validate(schema, obj)           # list[FieldError]
    if errors:
        return json_response(invalid_status(kind, group, name, errors), status=422)

or :func:`admit`, which does the three. ``unknown`` collects the pruned paths
(``spec.foo``, ``spec.items[0].bar``): with ``?fieldValidation=Strict`` (what ``kubectl
--validate=strict``, the default, sends) a non-empty list is a 400 built by
:func:`strict_decoding_status`; with ``Warn`` each path becomes a ``Warning: unknown field "..."``
header (:func:`unknown_field_warnings`); with ``Ignore`` it is dropped silently.

On CRD create/update the server calls :func:`check_structural` on every version's schema and
refuses the CRD with :func:`invalid_status` (kind ``CustomResourceDefinition``, group
``apiextensions.k8s.io``) when it reports errors.

Messages are worded like kube-apiserver's (k8s.io/apimachinery field errors around kube-openapi
validation errors), e.g.::

    Device.devices.kubeedge.io "bad" is invalid: spec.properties[0].collectCycle: Invalid value:
    "string": spec.properties[0].collectCycle in body must be of type integer: "string"

Validation covers: ``type`` (integer must be whole; ``1.0`` is an integer as in Go), ``nullable``,
``required``, ``enum``, ``pattern``, ``minimum``/``maximum`` (+ exclusive), ``multipleOf``,
``minLength``/``maxLength``, ``minItems``/``maxItems``, ``minProperties``/``maxProperties``,
``format`` of strings (date-time, date, byte, uuid, ipv4, ipv6, cidr, mac, hostname, ...),
``x-kubernetes-int-or-string``, ``additionalProperties`` (maps), ``x-kubernetes-list-type``
set/map duplicates, ``x-kubernetes-embedded-resource`` (apiVersion/kind required),
``allOf``/``anyOf``/``oneOf``/``not``. Like kube-apiserver, ``format: int32`` does not range-check
numbers. CEL rules (``x-kubernetes-validations``) are not evaluated.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import json
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from kubeapi._jsonvalues import copy_json, json_equal

__all__ = [
    "CAUSE_DUPLICATE",
    "CAUSE_FORBIDDEN",
    "CAUSE_INVALID",
    "CAUSE_NOT_SUPPORTED",
    "CAUSE_REQUIRED",
    "CAUSE_TOO_LONG",
    "CAUSE_TOO_MANY",
    "CAUSE_TYPE_INVALID",
    "Admission",
    "FieldError",
    "admit",
    "apply_defaults",
    "check_structural",
    "invalid_status",
    "prune",
    "strict_decoding_status",
    "unknown_field_warnings",
    "validate",
]

# metav1.CauseType values (the ``reason`` of a Status cause).
CAUSE_NOT_FOUND = "FieldValueNotFound"
CAUSE_REQUIRED = "FieldValueRequired"
CAUSE_DUPLICATE = "FieldValueDuplicate"
CAUSE_INVALID = "FieldValueInvalid"
CAUSE_NOT_SUPPORTED = "FieldValueNotSupported"
CAUSE_FORBIDDEN = "FieldValueForbidden"
CAUSE_TOO_LONG = "FieldValueTooLong"
CAUSE_TOO_MANY = "FieldValueTooMany"
CAUSE_INTERNAL = "InternalError"
CAUSE_TYPE_INVALID = "FieldValueTypeInvalid"

_TYPE_TEXT = {
    CAUSE_NOT_FOUND: "Not found",
    CAUSE_REQUIRED: "Required value",
    CAUSE_DUPLICATE: "Duplicate value",
    CAUSE_INVALID: "Invalid value",
    CAUSE_NOT_SUPPORTED: "Unsupported value",
    CAUSE_FORBIDDEN: "Forbidden",
    CAUSE_TOO_LONG: "Too long",
    CAUSE_TOO_MANY: "Too many",
    CAUSE_INTERNAL: "Internal error",
    CAUSE_TYPE_INVALID: "Invalid value",
}
# Error types whose message never shows the bad value.
_VALUE_HIDDEN = {CAUSE_REQUIRED, CAUSE_FORBIDDEN, CAUSE_TOO_LONG, CAUSE_INTERNAL}


class _Omitted:
    def __repr__(self) -> str:
        return "<omitted>"


OMITTED: Any = _Omitted()


@dataclass(frozen=True)
class FieldError:
    """One field-level validation error (k8s.io/apimachinery ``field.Error``).

    ``type`` is the Status cause reason (``FieldValueInvalid`` ...), ``field`` the path
    (``spec.properties[0].collectCycle``), ``bad_value`` the offending value (``OMITTED`` when the
    message does not show one), ``detail`` the explanation.
    """

    type: str
    field: str
    bad_value: Any = OMITTED
    detail: str = ""

    def body(self) -> str:
        """The message without the field path (a Status cause's ``message``)."""
        text = _TYPE_TEXT.get(self.type, self.type)
        if self.type not in _VALUE_HIDDEN and self.bad_value is not OMITTED:
            text = f"{text}: {go_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def message(self) -> str:
        return f"{self.field}: {self.body()}"

    def __str__(self) -> str:
        return self.message()

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.body(), "field": self.field}

    @classmethod
    def required(cls, path: str, detail: str = "") -> FieldError:
        return cls(CAUSE_REQUIRED, path, "", detail)

    @classmethod
    def invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls(CAUSE_INVALID, path, value, detail)

    @classmethod
    def type_invalid(cls, path: str, value: Any, detail: str) -> FieldError:
        return cls(CAUSE_TYPE_INVALID, path, value, detail)

    @classmethod
    def not_supported(cls, path: str, value: Any, supported: Sequence[str]) -> FieldError:
        detail = "supported values: " + ", ".join(_go_quote(v) for v in supported) if supported else ""
        return cls(CAUSE_NOT_SUPPORTED, path, value, detail)

    @classmethod
    def forbidden(cls, path: str, detail: str) -> FieldError:
        return cls(CAUSE_FORBIDDEN, path, "", detail)

    @classmethod
    def duplicate(cls, path: str, value: Any) -> FieldError:
        return cls(CAUSE_DUPLICATE, path, value)

    @classmethod
    def too_long(cls, path: str, max_length: int) -> FieldError:
        unit = "byte" if max_length == 1 else "bytes"
        return cls(CAUSE_TOO_LONG, path, OMITTED, f"may not be more than {max_length} {unit}")

    @classmethod
    def too_many(cls, path: str, actual: int, max_items: int) -> FieldError:
        return cls(CAUSE_TOO_MANY, path, actual, f"must have at most {max_items} items")


# --------------------------------------------------------------------------------------------------
# Go formatting, so messages read exactly like kube-apiserver's.


def _go_quote(text: str) -> str:
    """Go's ``%q`` / strconv.Quote for the strings that occur in practice."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest digits, exponent form below 1e-4 and from 1e6 on."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    exp10 = len(text) + exponent - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exp10 < 0:
        return f"{prefix}0.{'0' * (-exp10 - 1)}{text}"
    if len(text) <= exp10 + 1:
        return prefix + text + "0" * (exp10 + 1 - len(text))
    return f"{prefix}{text[: exp10 + 1]}.{text[exp10 + 1 :]}"


def _go_syntax(value: Any) -> str:
    """Go's ``%#v`` of an unstructured value (maps and slices in error messages)."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{_go_quote(k)}:{_go_syntax(v)}" for k, v in sorted(value.items()))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(_go_syntax(v) for v in value) + "}"
    return repr(value)


def go_value(value: Any) -> str:
    """How ``field.Error`` prints a bad value: strings quoted, numbers and booleans bare, ``null``
    as the string ``"null"``, maps and slices in Go syntax."""
    return '"null"' if value is None else _go_syntax(value)


def _go_number(value: float | int) -> str:
    # Schema limits are float64 in Go and print with %v.
    return go_float(float(value))


# --------------------------------------------------------------------------------------------------
# Status bodies


def _aggregate(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def invalid_status(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> dict[str, Any]:
    """The 422 ``Status`` kube-apiserver answers for an invalid object (apierrors.NewInvalid)."""
    qualified = f"{kind}.{group}" if group else kind
    message = f'{qualified} "{name}" is invalid'
    if errors:
        message += ": " + _aggregate([e.message() for e in errors])
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": [e.cause() for e in errors]},
        "code": 422,
    }


def strict_decoding_status(kind: str, version: str, unknown: Sequence[str]) -> dict[str, Any]:
    """The 400 ``Status`` for unknown fields under ``fieldValidation=Strict``."""
    fields = ", ".join(f'unknown field "{p}"' for p in unknown)
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'{kind} in version "{version}" cannot be handled as a {kind}: '
        f"strict decoding error: {fields}",
        "reason": "BadRequest",
        "code": 400,
    }


def unknown_field_warnings(unknown: Sequence[str]) -> list[str]:
    """``Warning`` header texts for unknown fields under ``fieldValidation=Warn``."""
    return [f'unknown field "{p}"' for p in unknown]


# --------------------------------------------------------------------------------------------------
# Formats, patterns and JSON equality


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HOSTNAME = re.compile(
    r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*\.?$"
)
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_DURATION = re.compile(r"^(\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w)\s*)+$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _is_date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        datetime.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_ip(version: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False

    return check


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _is_date_time,
    "datetime": _is_date_time,
    "date": _is_date,
    "byte": _is_byte,
    "uuid": lambda s: bool(_UUID.match(s)),
    "ipv4": _is_ip(4),
    "ipv6": _is_ip(6),
    "cidr": _is_cidr,
    "mac": lambda s: bool(_MAC.match(s)),
    "hostname": lambda s: bool(_HOSTNAME.match(s)) and len(s) <= 255,
    "duration": lambda s: bool(_DURATION.match(s)),
    "email": lambda s: bool(_EMAIL.match(s)),
}


def _enum_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------------------------------
# Compiled schemas: each schema dict is read once into a tree of nodes that the three passes walk.

_ROOT_KEPT = ("apiVersion", "kind", "metadata")
_TYPE_OF = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object", list: "array"}


def _is_true(schema: Mapping[str, Any], key: str) -> bool:
    return schema.get(key) is True


def _number(schema: Mapping[str, Any], key: str) -> float | int | None:
    value = schema.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def _count(schema: Mapping[str, Any], key: str) -> int | None:
    value = schema.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _schema_types(schema: Mapping[str, Any]) -> tuple[str, ...]:
    if _is_true(schema, "x-kubernetes-int-or-string"):
        return ("integer", "string")
    declared = schema.get("type")
    if isinstance(declared, str) and declared:
        return (declared,)
    if isinstance(declared, list):
        return tuple(t for t in declared if isinstance(t, str))
    return ()


class _Node:
    """One schema, read once: what every pass needs, without dict lookups on the hot path."""

    __slots__ = (
        "additional",
        "additional_any",
        "additional_false",
        "all_of",
        "any_of",
        "default",
        "defaults",
        "embedded",
        "enum",
        "enum_texts",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "format_check",
        "has_combinators",
        "has_default",
        "items",
        "list_keys",
        "list_type",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "number_checks",
        "one_of",
        "pattern",
        "preserve",
        "properties",
        "regex",
        "required",
        "string_checks",
        "type_text",
        "types",
    )

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.types = _schema_types(schema)
        self.type_text = ",".join(self.types)
        self.nullable = _is_true(schema, "nullable")
        enum = schema.get("enum")
        self.enum: list[Any] | None = enum if isinstance(enum, list) and enum else None
        self.enum_texts = [_enum_text(v) for v in self.enum] if self.enum else []
        self.max_length = _count(schema, "maxLength")
        self.min_length = _count(schema, "minLength")
        pattern = schema.get("pattern")
        self.pattern = pattern if isinstance(pattern, str) else ""
        self.regex = _compile(pattern) if isinstance(pattern, str) else None
        fmt = schema.get("format")
        self.format = fmt if isinstance(fmt, str) else ""
        self.format_check = _FORMATS.get(self.format) if "string" in self.types else None
        self.string_checks = (
            self.max_length is not None
            or self.min_length is not None
            or self.regex is not None
            or self.format_check is not None
        )
        self.maximum = _number(schema, "maximum")
        self.minimum = _number(schema, "minimum")
        self.exclusive_maximum = _is_true(schema, "exclusiveMaximum")
        self.exclusive_minimum = _is_true(schema, "exclusiveMinimum")
        factor = _number(schema, "multipleOf")
        self.multiple_of = factor if factor is not None and factor > 0 else None
        self.number_checks = (
            self.maximum is not None or self.minimum is not None or self.multiple_of is not None
        )
        self.max_items = _count(schema, "maxItems")
        self.min_items = _count(schema, "minItems")
        items = schema.get("items")
        self.items = _Node(items) if isinstance(items, dict) else None
        list_type = schema.get("x-kubernetes-list-type")
        self.list_type = list_type if isinstance(list_type, str) else ""
        self.list_keys = [k for k in schema.get("x-kubernetes-list-map-keys") or [] if isinstance(k, str)]
        self.max_properties = _count(schema, "maxProperties")
        self.min_properties = _count(schema, "minProperties")
        self.embedded = _is_true(schema, "x-kubernetes-embedded-resource")
        self.preserve = _is_true(schema, "x-kubernetes-preserve-unknown-fields")
        required = schema.get("required")
        self.required = tuple(k for k in required if isinstance(k, str)) if isinstance(required, list) else ()
        properties = schema.get("properties")
        self.properties = (
            {k: _Node(v) for k, v in properties.items() if isinstance(v, dict)}
            if isinstance(properties, dict)
            else {}
        )
        additional = schema.get("additionalProperties")
        self.additional = _Node(additional) if isinstance(additional, dict) else None
        self.additional_any = additional is True
        self.additional_false = additional is False
        self.all_of = tuple(_Node(s) for s in schema.get("allOf") or [] if isinstance(s, dict))
        self.any_of = tuple(_Node(s) for s in schema.get("anyOf") or [] if isinstance(s, dict))
        self.one_of = tuple(_Node(s) for s in schema.get("oneOf") or [] if isinstance(s, dict))
        not_schema = schema.get("not")
        self.not_ = _Node(not_schema) if isinstance(not_schema, dict) else None
        self.has_combinators = bool(self.all_of or self.any_of or self.one_of or self.not_)
        self.has_default = "default" in schema
        self.default = schema.get("default")
        self.defaults = tuple((k, p) for k, p in self.properties.items() if p.has_default)


_COMPILED: dict[int, tuple[Mapping[str, Any], _Node]] = {}
_COMPILED_LOCK = threading.Lock()
_COMPILED_MAX = 256


def _compiled(schema: Mapping[str, Any]) -> _Node:
    """The node tree of ``schema``, cached by identity: schemas are treated as immutable."""
    key = id(schema)
    hit = _COMPILED.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    node = _Node(schema)
    with _COMPILED_LOCK:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        # Holding the schema keeps its id from being reused while it is cached.
        _COMPILED[key] = (schema, node)
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --------------------------------------------------------------------------------------------------
# Pruning


def prune(schema: Mapping[str, Any], obj: Any, unknown: list[str] | None = None) -> Any:
    """A copy of ``obj`` without the fields ``schema`` does not declare.

    ``apiVersion``, ``kind`` and ``metadata`` are kept at the root (and in
    ``x-kubernetes-embedded-resource`` objects); ``metadata`` is never pruned. Under
    ``x-kubernetes-preserve-unknown-fields: true`` unknown fields stay (declared ones are still
    pruned inside). Each dropped path is appended to ``unknown`` when given.
    """
    return _prune(_compiled(schema), obj, "", True, unknown)


def _prune(node: _Node, value: Any, path: str, root: bool, unknown: list[str] | None) -> Any:
    if isinstance(value, dict):
        properties = node.properties
        additional = node.additional
        keep_any = node.additional_any or node.preserve
        keep_meta = root or node.embedded
        result: dict[str, Any] = {}
        for key, item in value.items():
            sub = properties.get(key)
            if keep_meta and key in _ROOT_KEPT and (key == "metadata" or sub is None):
                result[key] = copy_json(item)
            elif sub is not None or additional is not None:
                target = sub if sub is not None else additional
                assert target is not None
                if isinstance(item, (dict, list)):
                    result[key] = _prune(target, item, _join(path, key), False, unknown)
                else:
                    result[key] = item
            elif keep_any:
                result[key] = copy_json(item)
            elif unknown is not None:
                unknown.append(_join(path, key))
        return result
    if isinstance(value, list):
        items = node.items
        if items is None:
            return copy_json(value)
        return [
            _prune(items, v, f"{path}[{i}]", False, unknown) if isinstance(v, (dict, list)) else v
            for i, v in enumerate(value)
        ]
    return value


# --------------------------------------------------------------------------------------------------
# Defaulting


def apply_defaults(schema: Mapping[str, Any], obj: Any) -> Any:
    """A copy of ``obj`` with schema ``default``s filled in, as kube-apiserver defaults.

    A property that is absent, or ``null`` while not ``nullable``, gets a copy of its default
    (defaults inside that default apply too); a non-nullable ``null`` without a default is
    dropped. Items of arrays and values of maps (``additionalProperties``) are defaulted alike.
    """
    result = copy_json(obj)
    _default(result, _compiled(schema))
    return result


def _default(value: Any, node: _Node) -> None:
    """Default ``value`` in place."""
    if isinstance(value, dict):
        for key, prop in node.defaults:
            if key not in value or (value[key] is None and not prop.nullable):
                value[key] = copy_json(prop.default)
        properties = node.properties
        additional = node.additional
        if not properties and additional is None:
            return
        for key, item in list(value.items()):
            if item is not None and not isinstance(item, (dict, list)):
                continue
            sub = properties.get(key, additional)
            if sub is None:
                continue
            if item is None and not sub.nullable:
                if sub.has_default:
                    value[key] = item = copy_json(sub.default)
                else:
                    del value[key]
                    continue
            if isinstance(item, (dict, list)):
                _default(item, sub)
    elif isinstance(value, list):
        items = node.items
        if items is None:
            return
        for i, item in enumerate(value):
            if item is None and not items.nullable and items.has_default:
                value[i] = item = copy_json(items.default)
            if isinstance(item, (dict, list)):
                _default(item, items)


# --------------------------------------------------------------------------------------------------
# Validation


def _json_type(value: Any) -> str:
    """The schema type kube-openapi infers for a decoded value."""
    if value is None:
        return "null"
    return _TYPE_OF.get(type(value)) or _fallback_type(value)


def _fallback_type(value: Any) -> str:
    # Subclasses of the JSON types (rare: decoders return the plain ones).
    for kind, name in _TYPE_OF.items():
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return name
    return type(value).__name__


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    actual = _json_type(value)
    if actual in types:
        return True
    if actual == "number" and "integer" in types:
        return math.isfinite(value) and float(value).is_integer()
    return actual == "integer" and "number" in types


def validate(schema: Mapping[str, Any], obj: Any) -> list[FieldError]:
    """Validate ``obj`` against a structural schema; an empty list means valid.

    Paths are those of kube-apiserver (``spec.items[0].name``); the root object's ``metadata``,
    ``apiVersion`` and ``kind`` are left to the server's own checks.
    """
    errors: list[FieldError] = []
    _Validator(errors).check(_compiled(schema), obj, "", root=True)
    return errors


def validate_at(schema: Mapping[str, Any], value: Any, path: str) -> list[FieldError]:
    """Validate a value found at ``path`` (used for sub-schemas and CRD ``default`` values)."""
    errors: list[FieldError] = []
    _Validator(errors).check(_compiled(schema), value, path)
    return errors


def _validate_node(node: _Node, value: Any, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    _Validator(errors).check(node, value, path)
    return errors


@dataclass
class _Validator:
    errors: list[FieldError] = field(default_factory=list)

    def add(self, error: FieldError) -> None:
        self.errors.append(error)

    def check(self, node: _Node, value: Any, path: str, root: bool = False) -> None:
        if value is None:
            if node.types and not node.nullable:
                self.type_error(path, node.type_text, value)
            if node.enum is not None:
                self.check_enum(node, value, path)
            return
        kind = type(value)
        if node.types and _TYPE_OF.get(kind) not in node.types and not _type_ok(value, node.types):
            self.type_error(path, node.type_text, value)
            if node.enum is not None:
                self.check_enum(node, value, path)
            return
        if node.enum is not None:
            self.check_enum(node, value, path)
        if kind is dict:
            self.check_object(node, value, path, root)
        elif kind is list:
            self.check_array(node, value, path)
        elif kind is str:
            if node.string_checks:
                self.check_string(node, value, path)
        elif kind is not bool and isinstance(value, (int, float)):
            if node.number_checks:
                self.check_number(node, value, path)
        elif isinstance(value, dict):
            self.check_object(node, value, path, root)
        elif isinstance(value, list):
            self.check_array(node, value, path)
        elif isinstance(value, str) and node.string_checks:
            self.check_string(node, value, path)
        if node.has_combinators:
            self.check_combinators(node, value, path)

    def type_error(self, path: str, expected: str, value: Any) -> None:
        actual = _json_type(value)
        self.add(
            FieldError.type_invalid(
                path, actual, f"{path} in body must be of type {expected}: {_go_quote(actual)}"
            )
        )

    def check_enum(self, node: _Node, value: Any, path: str) -> None:
        if value is None and node.nullable:
            return
        assert node.enum is not None
        if any(json_equal(value, option) for option in node.enum):
            return
        self.add(FieldError.not_supported(path, value, node.enum_texts))

    def check_string(self, node: _Node, value: str, path: str) -> None:
        if node.max_length is not None and len(value) > node.max_length:
            self.add(FieldError.too_long(path, node.max_length))
        if node.min_length is not None and len(value) < node.min_length:
            self.add(
                FieldError.invalid(
                    path, value, f"{path} in body should be at least {node.min_length} chars long"
                )
            )
        if node.regex is not None and not node.regex.search(value):
            self.add(FieldError.invalid(path, value, f"{path} in body should match '{node.pattern}'"))
        if node.format_check is not None and not node.format_check(value):
            self.add(
                FieldError.type_invalid(
                    path, value, f"{path} in body must be of type {node.format}: {_go_quote(value)}"
                )
            )

    def check_number(self, node: _Node, value: float, path: str) -> None:
        maximum = node.maximum
        if maximum is not None:
            if node.exclusive_maximum and value >= maximum:
                self.add(
                    FieldError.invalid(
                        path, value, f"{path} in body should be less than {_go_number(maximum)}"
                    )
                )
            elif value > maximum:
                self.add(
                    FieldError.invalid(
                        path, value, f"{path} in body should be less than or equal to {_go_number(maximum)}"
                    )
                )
        minimum = node.minimum
        if minimum is not None:
            if node.exclusive_minimum and value <= minimum:
                self.add(
                    FieldError.invalid(
                        path, value, f"{path} in body should be greater than {_go_number(minimum)}"
                    )
                )
            elif value < minimum:
                self.add(
                    FieldError.invalid(
                        path,
                        value,
                        f"{path} in body should be greater than or equal to {_go_number(minimum)}",
                    )
                )
        factor = node.multiple_of
        if factor is not None:
            quotient = value / factor
            if not math.isclose(quotient, round(quotient), rel_tol=0, abs_tol=1e-9):
                self.add(
                    FieldError.invalid(
                        path, value, f"{path} in body should be a multiple of {_go_number(factor)}"
                    )
                )

    def check_array(self, node: _Node, value: list[Any], path: str) -> None:
        if node.max_items is not None and len(value) > node.max_items:
            self.add(FieldError.too_many(path, len(value), node.max_items))
        if node.min_items is not None and len(value) < node.min_items:
            self.add(
                FieldError.invalid(
                    path, len(value), f"{path} in body should have at least {node.min_items} items"
                )
            )
        items = node.items
        if items is not None:
            for i, item in enumerate(value):
                self.check(items, item, f"{path}[{i}]")
        if node.list_type == "set":
            for i, item in enumerate(value):
                if any(json_equal(item, earlier) for earlier in value[:i]):
                    self.add(FieldError.duplicate(f"{path}[{i}]", item))
        elif node.list_type == "map":
            seen: list[dict[str, Any]] = []
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = {k: item.get(k) for k in node.list_keys if k in item}
                if any(json_equal(key, earlier) for earlier in seen):
                    self.add(FieldError.duplicate(f"{path}[{i}]", key))
                seen.append(key)

    def check_object(self, node: _Node, value: dict[str, Any], path: str, root: bool) -> None:
        if node.max_properties is not None and len(value) > node.max_properties:
            self.add(
                FieldError(CAUSE_TOO_MANY, path, len(value), f"must have at most {node.max_properties} items")
            )
        if node.min_properties is not None and len(value) < node.min_properties:
            self.add(
                FieldError.invalid(
                    path, len(value), f"{path} in body should have at least {node.min_properties} properties"
                )
            )
        if node.embedded:
            for key in ("apiVersion", "kind"):
                if not value.get(key):
                    self.add(FieldError.required(_join(path, key), "must not be empty"))
        for key in node.required:
            if key not in value:
                self.add(FieldError.required(_join(path, key)))
        properties = node.properties
        additional = node.additional
        for key, item in value.items():
            if root and key in _ROOT_KEPT:
                continue
            sub = properties.get(key, additional)
            if sub is None:
                if node.additional_false:
                    child = _join(path, key)
                    self.add(FieldError.forbidden(child, f"{child} in body is a forbidden property"))
                continue
            self.check(sub, item, _join(path, key))

    def check_combinators(self, node: _Node, value: Any, path: str) -> None:
        for sub in node.all_of:
            self.check(sub, value, path)
        if node.any_of:
            results = [_validate_node(s, value, path) for s in node.any_of]
            if all(results):
                self.add(
                    FieldError.invalid(
                        path, value, f"{path} in body must validate at least one schema (anyOf)"
                    )
                )
                self.errors.extend(results[0])
        if node.one_of:
            passing = sum(1 for s in node.one_of if not _validate_node(s, value, path))
            if passing != 1:
                self.add(
                    FieldError.invalid(
                        path, value, f"{path} in body must validate one and only one schema (oneOf)"
                    )
                )
        if node.not_ is not None and not _validate_node(node.not_, value, path):
            self.add(FieldError.invalid(path, value, f"{path} in body should not validate the schema (not)"))


# --------------------------------------------------------------------------------------------------
# One call for the server


@dataclass(frozen=True)
class Admission:
    """What :func:`admit` made of an incoming custom resource."""

    obj: Any
    unknown_fields: list[str]
    errors: list[FieldError]


def admit(schema: Mapping[str, Any], obj: Any) -> Admission:
    """Prune, default and validate ``obj`` in kube-apiserver's order (one copy of ``obj``)."""
    node = _compiled(schema)
    unknown: list[str] = []
    result = _prune(node, obj, "", True, unknown)
    _default(result, node)
    errors: list[FieldError] = []
    _Validator(errors).check(node, result, "", root=True)
    return Admission(result, unknown, errors)


# --------------------------------------------------------------------------------------------------
# Structural schema check (on CRD create/update)

_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def check_structural(schema: Any, path: str = "spec.versions[0].schema.openAPIV3Schema") -> list[FieldError]:
    """Errors that make ``schema`` non-structural (kube-apiserver refuses such a v1 CRD).

    ``path`` is where the schema sits in the CRD, used to name each error's field, e.g.
    ``spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be
    empty for specified object fields``.
    """
    errors: list[FieldError] = []
    if not isinstance(schema, dict):
        errors.append(FieldError.required(path, "schemas are required"))
        return errors
    _check_node(schema, path, "root", errors)
    return errors


def _check_node(schema: Mapping[str, Any], path: str, level: str, errors: list[FieldError]) -> None:
    declared = schema.get("type")
    int_or_string = _is_true(schema, "x-kubernetes-int-or-string")
    embedded = _is_true(schema, "x-kubernetes-embedded-resource")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if declared in (None, ""):
        if not int_or_string and not embedded and preserve is not True and level != "combinator":
            where = {
                "root": "at the root",
                "items": "for specified array items",
                "field": "for specified object fields",
            }[level]
            errors.append(FieldError.required(f"{path}.type", f"must not be empty {where}"))
    elif declared not in _TYPES:
        errors.append(FieldError.not_supported(f"{path}.type", declared, list(_TYPES)))
    elif level == "root" and declared != "object":
        errors.append(FieldError.invalid(f"{path}.type", declared, "must be object at the root"))
    if int_or_string and declared not in (None, ""):
        errors.append(
            FieldError.invalid(
                f"{path}.type", declared, "must be empty if x-kubernetes-int-or-string is true"
            )
        )
    if embedded and declared != "object":
        errors.append(
            FieldError.invalid(
                f"{path}.type", declared or "", "must be object if x-kubernetes-embedded-resource is true"
            )
        )
    if preserve is not None and preserve is not True:
        errors.append(
            FieldError.invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields", preserve, "must be true or undefined"
            )
        )
    if declared == "array" and not isinstance(schema.get("items"), dict):
        errors.append(FieldError.required(f"{path}.items", "must be specified"))
    pattern = schema.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern if isinstance(pattern, str) else "(")
        except re.error as err:
            errors.append(
                FieldError.invalid(
                    f"{path}.pattern", pattern, f"must be a valid regular expression, but isn't: {err}"
                )
            )
    if "required" in schema and not isinstance(schema["required"], list):
        errors.append(
            FieldError.invalid(f"{path}.required", schema["required"], "must be a list of field names")
        )
    if "$ref" in schema:
        errors.append(FieldError.forbidden(f"{path}.$ref", "$ref is not supported"))
    if schema.get("uniqueItems") is True:
        errors.append(
            FieldError.forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    for key in ("additionalItems", "patternProperties", "dependencies", "definitions", "id"):
        if key in schema:
            errors.append(FieldError.forbidden(f"{path}.{key}", f"{key} is not supported"))
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    if properties and additional is not None:
        errors.append(
            FieldError.forbidden(
                f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"
            )
        )
    if additional is False:
        errors.append(FieldError.forbidden(f"{path}.additionalProperties", "must not be false"))
    if isinstance(properties, dict):
        if level == "root" and isinstance(properties.get("metadata"), dict):
            meta_props = properties["metadata"].get("properties") or {}
            if set(meta_props) - {"name", "generateName"}:
                errors.append(
                    FieldError.forbidden(
                        f"{path}.properties[metadata]",
                        "must not specify anything other than name and generateName, "
                        "but metadata is implicitly specified",
                    )
                )
        for key, sub in properties.items():
            if isinstance(sub, dict):
                _check_node(sub, f"{path}.properties[{key}]", "field", errors)
                _check_default(sub, f"{path}.properties[{key}]", errors)
    if isinstance(schema.get("items"), dict):
        _check_node(schema["items"], f"{path}.items", "items", errors)
        _check_default(schema["items"], f"{path}.items", errors)
    if isinstance(additional, dict):
        _check_node(additional, f"{path}.additionalProperties", "field", errors)
        _check_default(additional, f"{path}.additionalProperties", errors)
    for combinator in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schema.get(combinator) or []):
            if isinstance(sub, dict):
                _check_node(sub, f"{path}.{combinator}[{i}]", "combinator", errors)
    if isinstance(schema.get("not"), dict):
        _check_node(schema["not"], f"{path}.not", "combinator", errors)


def _check_default(schema: Mapping[str, Any], path: str, errors: list[FieldError]) -> None:
    if "default" not in schema:
        return
    value = schema["default"]
    node = _Node(schema)
    unknown: list[str] = []
    pruned = _prune(node, value, "", False, unknown)
    if unknown:
        errors.append(FieldError.invalid(f"{path}.default", value, "must not have unknown fields"))
        return
    _default(pruned, node)
    for error in _validate_node(node, pruned, "<default>"):
        errors.append(FieldError.invalid(f"{path}.default", value, error.message()))
