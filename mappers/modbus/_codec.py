"""Register words <-> values, with KubeEdge's visitor options: limit, scale, isSwap, isRegisterSwap.

``isSwap`` swaps the two bytes inside every register, ``isRegisterSwap`` reverses the order of the
registers (word swap); both are applied to the raw words before decoding (and after encoding).
``dataType`` picks the interpretation; KubeEdge's names (int, float, double, string, boolean) and
explicit widths (int16 ... uint64, float32, float64) are accepted. Without one the words are read as
an unsigned big-endian integer.
"""

from __future__ import annotations

import struct
from typing import Any

_WIDTH_FORMATS = {
    ("int", 1): ">h",
    ("int", 2): ">i",
    ("int", 4): ">q",
    ("uint", 1): ">H",
    ("uint", 2): ">I",
    ("uint", 4): ">Q",
    ("float", 2): ">f",
    ("float", 4): ">d",
}
_ALIASES = {
    "int16": ("int", 1),
    "int32": ("int", 2),
    "int64": ("int", 4),
    "uint16": ("uint", 1),
    "uint32": ("uint", 2),
    "uint64": ("uint", 4),
    "float32": ("float", 2),
    "float64": ("float", 4),
    "double": ("float", 4),
}


def _words_to_bytes(words: list[int], swap: bool, register_swap: bool) -> bytes:
    if register_swap:
        words = list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if swap:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    return raw


def _bytes_to_words(raw: bytes, swap: bool, register_swap: bool) -> list[int]:
    if swap:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return list(reversed(words)) if register_swap else words


def _format(data_type: str, limit: int) -> str | None:
    kind, width = _ALIASES.get(data_type, (data_type, limit))
    if kind in ("string", "boolean", "bool", "bytes", ""):
        return None
    fmt = _WIDTH_FORMATS.get((kind, width))
    if fmt is None:
        raise ValueError(f"dataType {data_type!r} cannot be read from {limit} register(s)")
    if width != limit:
        raise ValueError(f"dataType {data_type!r} needs limit {width}, not {limit}")
    return fmt


def decode(words: list[int], visitor: Any) -> Any:
    if len(words) == 1 and not visitor.get("dataType") and not visitor.get("isSwap"):
        # The common case (one unsigned register, maybe scaled) without building bytes.
        scale = float(visitor.get("scale", 1) or 1)
        return words[0] * scale if scale != 1 else words[0]
    data_type = str(visitor.get("dataType", "")).lower()
    raw = _words_to_bytes(words, bool(visitor.get("isSwap")), bool(visitor.get("isRegisterSwap")))
    if data_type == "string":
        return raw.rstrip(b"\x00").decode("ascii", "replace")
    if data_type == "bytes":
        return raw
    if data_type in ("boolean", "bool"):
        return any(raw)
    fmt = _format(data_type, len(words))
    value: Any = struct.unpack(fmt, raw)[0] if fmt else int.from_bytes(raw, "big")
    scale = float(visitor.get("scale", 1) or 1)
    return value * scale if scale != 1 else value


def encode(value: Any, visitor: Any, limit: int) -> list[int]:
    data_type = str(visitor.get("dataType", "")).lower()
    if data_type == "string" or isinstance(value, str | bytes):
        raw = value.encode("ascii") if isinstance(value, str) else bytes(value)
        raw = raw.ljust(limit * 2, b"\x00")[: limit * 2]
    else:
        scale = float(visitor.get("scale", 1) or 1)
        number = float(value) / scale if scale != 1 else value
        fmt = _format(data_type, limit)
        if fmt is None or fmt[-1] not in "fd":
            number = round(number)
        if fmt is None:
            if not 0 <= number < 1 << (16 * limit):
                raise ValueError(f"{value} does not fit in {limit} unsigned register(s)")
            raw = int(number).to_bytes(limit * 2, "big")
        else:
            try:
                raw = struct.pack(fmt, number)
            except struct.error as exc:
                raise ValueError(f"{value} does not fit dataType {data_type or 'uint'}: {exc}") from None
    return _bytes_to_words(raw, bool(visitor.get("isSwap")), bool(visitor.get("isRegisterSwap")))
