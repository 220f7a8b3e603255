"""Kubernetes' protobuf (``application/vnd.kubernetes.protobuf``) <-> the JSON objects kubeapi holds.

Go clients (client-go with ``ContentType: protobuf``: KubeEdge's cloudcore, kubectl's generators) send
built-in kinds as the 4-byte magic ``k8s\\0`` and a ``runtime.Unknown`` envelope (``typeMeta``, ``raw``)
whose ``raw`` is the typed message of Kubernetes' ``generated.proto``. The messages come from code
generated from those protos (``k8sproto.api``, ``python -m k8sproto.generate``); the conversion here is
generic, driven by the message descriptors, and renders what Kubernetes' JSON renders for the few types
whose Go JSON form is not their protobuf form: Time and MicroTime (RFC 3339 strings), Duration (Go's
``1h2m3s``), Quantity (its string), IntOrString (a number or a string), RawExtension and FieldsV1
(embedded JSON), embedded Go structs (``json:",inline"``: their fields sit in the parent object) and
named slices (a message with only ``items`` is a JSON array).

Zero values: gogo-protobuf writes every non-pointer Go field, so presence on the wire does not say
whether a client set a field. Empty strings and empty bytes are dropped (Go's ``omitempty``, and what
Kubernetes' defaulting treats as unset); zero numbers and ``false`` are kept, because for pointer fields
(``replicas: 0``, ``allowPrivilegeEscalation: false``, ``gracePeriodSeconds: 0``) they mean something.
A Time that was the Go zero time arrives as an empty message and is dropped (Kubernetes renders null).

Nothing here loads the generated modules until the first protobuf body or Accept arrives, so a server
that never sees protobuf (the edge MetaServer, usually) never pays for them.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime as dt
import functools
import importlib
import json
import logging
import re
import struct
from typing import Any

# Embedded Go structs (``json:",inline"``), generated from the OpenAPI spec and the messages.
from kubeapi._generated_inline_fields import INLINE_FIELDS
from kubeapi.errors import APIError, bad_request

log = logging.getLogger(__name__)

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
WATCH_PROTOBUF = PROTOBUF + ";stream=watch"

_META = "k8s.io.apimachinery.pkg.apis.meta.v1."
_TIME = _META + "Time"
_MICRO_TIME = _META + "MicroTime"
_DURATION = _META + "Duration"
_FIELDS_V1 = _META + "FieldsV1"
_OBJECT_META = _META + "ObjectMeta"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_WATCH_EVENT = _META + "WatchEvent"
# Go named slices (``type Verbs []string``): a message of one repeated ``items`` field, a JSON array.
_NAMED_SLICES = frozenset({_META + "Verbs"})
# Non-pointer numbers Kubernetes omits when zero and our object logic reads as "set".
_ZERO_IS_UNSET = frozenset({(_OBJECT_META, "generation")})
_GENERATED = (
    "core_v1",
    "apps_v1",
    "autoscaling_v1",
    "coordination_v1",
    "discovery_v1",
    "rbac_v1",
    "meta_v1",
)
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_OMIT = object()


class ConversionError(ValueError):
    """A value that has no form in the other encoding (a bad time, a wrong JSON type)."""


@functools.cache
def _pool() -> Any:
    from google.protobuf import descriptor_pool

    for module in _GENERATED:
        importlib.import_module(f"k8sproto.api.{module}_pb2")
    return descriptor_pool.Default()


@functools.cache
def _class(full_name: str) -> Any:
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


@functools.lru_cache(maxsize=256)  # bounded: the names come from request bodies
def message_name(api_version: str, kind: str) -> str | None:
    """The protobuf message of a built-in kind (``apps/v1``, ``Deployment``), or None for other kinds.

    The package is the group's first label (``rbac.authorization.k8s.io`` -> ``k8s.io.api.rbac``); only
    Kubernetes' own groups (no dot, or under ``.k8s.io``) are looked up, so a CRD is never mistaken for
    a built-in kind. The ``meta.k8s.io`` kinds every group version carries (DeleteOptions, Status,
    WatchEvent) come from apimachinery's package.
    """
    group, _, version = api_version.rpartition("/")
    if not version or not kind or (group and "." in group and not group.endswith(".k8s.io")):
        return None
    package = group.split(".")[0] if group else "core"
    pool = _pool()
    for full_name in (f"k8s.io.api.{package}.{version}.{kind}", f"{_META}{kind}"):
        try:
            pool.FindMessageTypeByName(full_name)
        except KeyError:
            continue
        if full_name.startswith(_META) and version != "v1":
            return None
        return full_name
    return None


@functools.cache
def _inline_fields(message: str) -> tuple[Any, ...]:
    descriptor = _pool().FindMessageTypeByName(message)
    return tuple(f for f in descriptor.fields if (message, f.name) in INLINE_FIELDS)


@functools.cache
def _map_value(field_name: str) -> Any:
    """The value field of a map field's entry, or None when the field is no map."""
    field = _pool().FindFieldByName(field_name)
    if field.message_type is None or not field.message_type.GetOptions().map_entry:
        return None
    return field.message_type.fields_by_name["value"]


def supports(api_version: str, kind: str) -> bool:
    return message_name(api_version, kind) is not None


# -- protobuf -> JSON ------------------------------------------------------------------------------


def _rfc3339(seconds: int, nanos: int | None) -> str:
    try:
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise ConversionError(f"time {seconds}s is out of range") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.year < 1000:
        text = f"{moment.year:04d}" + text[text.index("-") :]
    if nanos is not None:
        text += f".{nanos // 1000:06d}"
    return text + "Z"


def _frac(value: int, size: int) -> str:
    whole, rest = divmod(value, size)
    if not rest:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def format_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: ``1h0m0s``, ``1m30s``, ``1.5s``, ``300ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u < 1_000_000_000:
        for unit, size in (("ns", 1), ("µs", 1_000), ("ms", 1_000_000)):
            if u < size * 1000:
                return sign + _frac(u, size) + unit
    seconds = u // 1_000_000_000
    text = _frac(u % 60_000_000_000, 1_000_000_000) + "s"
    if seconds >= 60:
        minutes = seconds // 60
        text = f"{minutes % 60}m" + text
        if minutes >= 60:
            text = f"{minutes // 60}h" + text
    return sign + text


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds."""
    body = text.lstrip("+-")
    if body == "0":
        return 0
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise ConversionError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ConversionError(f"invalid duration {text!r}")
    return -round(total) if text.startswith("-") else round(total)


def _embedded_json(raw: bytes) -> Any:
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConversionError(f"embedded object is neither JSON nor protobuf: {exc}") from None


def _text(value: str | bytes, where: str) -> str:
    if isinstance(value, bytes):  # a proto2 string that is not UTF-8 comes back as bytes
        raise ConversionError(f"{where} is not UTF-8")
    return value


def _special_to_json(name: str, msg: Any) -> Any:
    if name in (_TIME, _MICRO_TIME):
        if not msg.HasField("seconds"):
            return _OMIT
        return _rfc3339(msg.seconds, msg.nanos if name == _MICRO_TIME else None)
    if name == _DURATION:
        return format_duration(msg.duration)
    if name == _QUANTITY:
        return _text(msg.string, name) or "0"
    if name == _INT_OR_STRING:
        return _text(msg.strVal, name) if msg.type == 1 else msg.intVal
    if name == _RAW_EXTENSION:
        return _embedded_json(msg.raw) if msg.raw else _OMIT
    if name == _FIELDS_V1:
        return _embedded_json(msg.Raw) if msg.Raw else _OMIT
    if name in _NAMED_SLICES:
        return list(msg.items)
    return to_json(msg)


def _value_to_json(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return _special_to_json(field.message_type.full_name, value)
    if field.type == field.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if field.type == field.TYPE_STRING:
        return _text(value, field.full_name)
    return value


def to_json(msg: Any) -> dict[str, Any]:
    """The JSON object of a generated message, field names as Kubernetes' JSON names them."""
    owner = msg.DESCRIPTOR.full_name
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        name = field.name
        value_field = _map_value(field.full_name) if field.is_repeated else None
        if value_field is not None:
            out[name] = {
                _text(key, f"a key of {field.full_name}"): _value_to_json(value_field, item)
                for key, item in value.items()
            }
            continue
        if field.is_repeated:
            items = [_value_to_json(field, item) for item in value]
            out[name] = [item for item in items if item is not _OMIT]
            continue
        converted = _value_to_json(field, value)
        if converted is _OMIT or converted in ("", b""):
            continue
        if converted == 0 and not isinstance(converted, bool) and (owner, name) in _ZERO_IS_UNSET:
            continue
        if (owner, name) in INLINE_FIELDS:
            out.update(converted)
            continue
        out[name] = converted
    return out


def decode(data: bytes) -> dict[str, Any]:
    """The JSON object of a ``k8s\\0``-enveloped body; 415 for a kind without a message, 400 if malformed."""
    from google.protobuf.message import DecodeError

    if not data.startswith(MAGIC):
        raise bad_request("protobuf body does not start with the k8s envelope")
    try:
        envelope = _class(_UNKNOWN).FromString(data[len(MAGIC) :])
        api_version, kind = envelope.typeMeta.apiVersion, envelope.typeMeta.kind
        api_version, kind = _text(api_version, "typeMeta.apiVersion"), _text(kind, "typeMeta.kind")
        name = message_name(api_version, kind)
        if name is None:
            raise APIError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - protobuf is accepted for Kubernetes' "
                f"built-in kinds only, not {api_version}/{kind}; send application/json",
            )
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        obj.update(to_json(_class(name).FromString(envelope.raw)))
        return obj
    except (DecodeError, ConversionError, UnicodeDecodeError, RecursionError) as exc:
        raise bad_request(f"the body of the request could not be decoded as protobuf: {exc}") from None


# -- JSON -> protobuf ------------------------------------------------------------------------------


def _seconds(text: Any) -> tuple[int, int]:
    if not isinstance(text, str):
        raise ConversionError(f"time {text!r} is not a string")
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ConversionError(f"time {text!r} is not RFC 3339") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return calendar.timegm(moment.utctimetuple()), moment.microsecond * 1000


def _check(value: Any, types: type | tuple[type, ...], field: Any) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ConversionError(f"{field.full_name}: {value!r} has the wrong JSON type")
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _scalar(field: Any, value: Any) -> Any:
    kind = field.type
    if kind == field.TYPE_STRING:
        return _check(value, str, field)
    if kind == field.TYPE_BYTES:
        try:
            return base64.b64decode(_check(value, str, field), validate=True)
        except binascii.Error:
            raise ConversionError(f"{field.full_name}: not base64") from None
    if kind == field.TYPE_BOOL:
        return _check(value, bool, field)
    if kind in (field.TYPE_DOUBLE, field.TYPE_FLOAT):
        return float(_check(value, (int, float), field))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _check(value, int, field)


def _fill(msg: Any, value: Any) -> None:
    name = msg.DESCRIPTOR.full_name
    if name in (_TIME, _MICRO_TIME):
        seconds, nanos = _seconds(value)
        msg.seconds = seconds
        if name == _MICRO_TIME:
            msg.nanos = nanos
    elif name == _DURATION:
        msg.duration = parse_duration(_check(value, str, msg.DESCRIPTOR.fields_by_name["duration"]))
    elif name == _QUANTITY:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConversionError(f"quantity {value!r} is not a string or number")
        msg.string = str(value)
    elif name == _INT_OR_STRING:
        if isinstance(value, str):
            msg.type, msg.strVal = 1, value
        elif isinstance(value, int) and not isinstance(value, bool):
            msg.type, msg.intVal = 0, value
        else:
            raise ConversionError(f"int-or-string {value!r} is neither")
    elif name == _RAW_EXTENSION:
        msg.raw = json.dumps(value, separators=(",", ":")).encode()
    elif name == _FIELDS_V1:
        msg.Raw = json.dumps(value, separators=(",", ":")).encode()
    elif name in _NAMED_SLICES:
        if not isinstance(value, list):
            raise ConversionError(f"{name}: {value!r} is not a list")
        msg.items.extend(str(v) for v in value)
    else:
        if not isinstance(value, dict):
            raise ConversionError(f"{name}: {value!r} is not an object")
        from_json(value, msg)


def _set(msg: Any, field: Any, value: Any) -> None:
    name = field.name
    value_field = _map_value(field.full_name) if field.is_repeated else None
    if value_field is not None:
        if not isinstance(value, dict):
            raise ConversionError(f"{field.full_name}: {value!r} is not an object")
        container = getattr(msg, name)
        for key, item in value.items():
            if item is None:
                continue
            if value_field.message_type is not None:
                _fill(container[key], item)
            else:
                container[key] = _scalar(value_field, item)
        return
    if field.is_repeated:
        if not isinstance(value, list):
            raise ConversionError(f"{field.full_name}: {value!r} is not a list")
        container = getattr(msg, name)
        for item in value:
            if field.message_type is not None:
                _fill(container.add(), item if item is not None else {})
            else:
                container.append(_scalar(field, item))
        return
    if field.message_type is not None:
        sub = getattr(msg, name)
        sub.SetInParent()
        _fill(sub, value)
        return
    setattr(msg, name, _scalar(field, value))


def from_json(obj: dict[str, Any], msg: Any) -> Any:
    """Fill ``msg`` from a JSON object.

    Keys the message has no field for are left out, as Go's decoder does; so is a value of the wrong
    JSON type (logged at debug level), so that one odd field does not cost a client the whole object.
    """
    descriptor = msg.DESCRIPTOR
    owner = descriptor.full_name
    inline = _inline_fields(owner)
    rest: dict[str, Any] = {}
    for key, value in obj.items():
        field = descriptor.fields_by_name.get(key)
        if value is None:
            continue
        if field is None or (owner, key) in INLINE_FIELDS:
            rest[key] = value
            continue
        try:
            _set(msg, field, value)
        except (ConversionError, ValueError, TypeError) as exc:  # out of range, lone surrogates
            # What a Go client could not decode either; the rest of the object still serves.
            msg.ClearField(key)
            log.debug("left out of a protobuf answer: %s", exc)
    for field in inline:
        own = {k: v for k, v in rest.items() if k in field.message_type.fields_by_name}
        sub = getattr(msg, field.name)
        sub.SetInParent()
        from_json(own, sub)
    return msg


def encode(obj: dict[str, Any]) -> bytes:
    """``k8s\\0`` + ``runtime.Unknown`` of a JSON object of a built-in kind (its ``apiVersion``/``kind``).

    Raises :class:`ConversionError` for a kind without a message.
    """
    api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
    name = message_name(api_version, kind)
    if name is None:
        raise ConversionError(f"no protobuf message for {api_version}/{kind}")
    body: bytes = from_json(obj, _class(name)()).SerializeToString()
    envelope = _class(_UNKNOWN)()
    envelope.typeMeta.apiVersion = api_version
    envelope.typeMeta.kind = kind
    envelope.raw = body
    wire: bytes = envelope.SerializeToString()
    return MAGIC + wire


def watch_frame(event_type: str, obj: dict[str, Any]) -> bytes:
    """One event of a protobuf watch: a 4-byte big-endian length, then a bare ``WatchEvent``.

    The event itself has no envelope (client-go's raw stream serializer); its object does.
    """
    event = _class(_WATCH_EVENT)()
    event.type = event_type
    event.object.raw = encode(obj)
    data: bytes = event.SerializeToString()
    return struct.pack(">I", len(data)) + data


def wants_protobuf(accept: str) -> bool:
    """True when the first media type the client accepts is Kubernetes' protobuf (client-go's order)."""
    for media in accept.split(","):
        kind, *params = (p.strip() for p in media.split(";"))
        if kind == PROTOBUF:
            return not any(p.replace(" ", "").startswith("as=") for p in params)
        if kind:
            return False
    return False
