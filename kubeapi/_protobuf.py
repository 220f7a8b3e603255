"""Decoding of the few protobuf request bodies kubectl sends for built-in kinds.

kubectl's imperative generators (``kubectl create namespace|configmap|secret``) post built-in
objects as ``application/vnd.kubernetes.protobuf``. This decodes the ``k8s\\x00`` envelope
(``runtime.Unknown``) and the fields of those kinds into the JSON form the rest of kubeapi handles;
other kinds are refused with 415 naming the alternative. Field numbers are those of
``k8s.io/api/core/v1/generated.proto`` and ``apimachinery/pkg/apis/meta/v1/generated.proto``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from kubeapi.errors import APIError, bad_request

MAGIC = b"k8s\x00"
_Fields = dict[int, list[int | bytes]]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> _Fields:
    out: _Fields = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos : pos + length]
            if len(value) != length:
                raise ValueError("truncated field")
            pos += length
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _str(fields: _Fields, number: int) -> str | None:
    values = fields.get(number)
    return bytes(values[-1]).decode() if values and isinstance(values[-1], bytes) else None


def _map(fields: _Fields, number: int, *, binary: bool = False) -> dict[str, str] | None:
    if number not in fields:
        return None
    out = {}
    for entry in fields[number]:
        kv = _fields(bytes(entry))
        key = _str(kv, 1) or ""
        raw = kv.get(2, [b""])[-1]
        value = bytes(raw) if isinstance(raw, bytes) else b""
        out[key] = base64.b64encode(value).decode() if binary else value.decode()
    return out


def _strings(fields: _Fields, number: int) -> list[str] | None:
    values = fields.get(number)
    return [bytes(v).decode() for v in values if isinstance(v, bytes)] if values else None


def _bool(fields: _Fields, number: int) -> bool | None:
    values = fields.get(number)
    return bool(values[-1]) if values else None


def _metadata(data: bytes) -> dict[str, Any]:
    f = _fields(data)
    meta: dict[str, Any] = {}
    for key, number in (("name", 1), ("generateName", 2), ("namespace", 3)):
        value = _str(f, number)
        if value:
            meta[key] = value
    for key, number in (("labels", 11), ("annotations", 12)):
        mapped = _map(f, number)
        if mapped:
            meta[key] = mapped
    finalizers = _strings(f, 14)
    if finalizers:
        meta["finalizers"] = finalizers
    return meta


def _namespace(f: _Fields) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    spec = f.get(2)
    if spec and isinstance(spec[-1], bytes):
        finalizers = _strings(_fields(spec[-1]), 1)
        if finalizers:
            obj["spec"] = {"finalizers": finalizers}
    return obj


def _configmap(f: _Fields) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in (
        ("data", _map(f, 2)),
        ("binaryData", _map(f, 3, binary=True)),
        ("immutable", _bool(f, 4)),
    ):
        if value is not None:
            obj[key] = value
    return obj


def _secret(f: _Fields) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in (
        ("data", _map(f, 2, binary=True)),
        ("type", _str(f, 3)),
        ("stringData", _map(f, 4)),
        ("immutable", _bool(f, 5)),
    ):
        if value is not None:
            obj[key] = value
    return obj


_KINDS: dict[tuple[str, str], Callable[[_Fields], dict[str, Any]]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
}


def decode(data: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded Namespace, ConfigMap or Secret."""
    if not data.startswith(MAGIC):
        raise bad_request("protobuf body does not start with the k8s envelope")
    try:
        envelope = _fields(data[len(MAGIC) :])
        type_meta = _fields(bytes(envelope.get(1, [b""])[-1]))
        api_version, kind = _str(type_meta, 1) or "", _str(type_meta, 2) or ""
        decoder = _KINDS.get((api_version, kind))
        if decoder is None:
            raise APIError(
                415,
                "UnsupportedMediaType",
                "protobuf bodies are accepted for Namespace, ConfigMap and Secret only, not "
                f"{api_version}/{kind}; send JSON (e.g. kubectl create -f or kubectl apply -f)",
            )
        raw = envelope.get(2, [b""])[-1]
        f = _fields(bytes(raw) if isinstance(raw, bytes) else b"")
        obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        meta = f.get(1)
        obj["metadata"] = _metadata(bytes(meta[-1])) if meta and isinstance(meta[-1], bytes) else {}
        obj.update(decoder(f))
        return obj
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body of the request could not be decoded as protobuf: {exc}") from None
