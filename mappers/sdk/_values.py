"""Conversion of property values by the DeviceModel type, and the checks every write passes.

Twin values travel as strings (DMI ``TwinProperty.value``). Drivers deal in Python values; these
functions are the only place that turns one into the other.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from mappers.sdk._types import ModelProperty, PropertyType
from mappers.sdk.driver import WriteRejected

_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no"}


def _ptype(prop: ModelProperty | None) -> PropertyType:
    return prop.type if prop is not None else PropertyType.STRING


def normalize(value: Any, prop: ModelProperty | None) -> Any:
    """Coerce what a driver returned into the Python type of the model property."""
    ptype = _ptype(prop)
    name = prop.name if prop else "?"
    if isinstance(value, str) and ptype not in (PropertyType.STRING, PropertyType.STREAM):
        return parse(value, prop)
    if ptype is PropertyType.INT:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"property {name} is INT: the device returned {value}")
            return round(value)
        raise ValueError(f"property {name} is INT: the device returned {type(value).__name__} {value!r}")
    if ptype in (PropertyType.FLOAT, PropertyType.DOUBLE):
        if isinstance(value, int | float):
            out = float(value)
            return _to_float32(out) if ptype is PropertyType.FLOAT else out
        raise ValueError(f"property {name} is {ptype}: the device returned {type(value).__name__}")
    if ptype is PropertyType.BOOLEAN:
        if isinstance(value, bool | int):
            return bool(value)
        raise ValueError(f"property {name} is BOOLEAN: the device returned {type(value).__name__}")
    if ptype is PropertyType.BYTES:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise ValueError(f"property {name} is BYTES: the device returned {type(value).__name__}")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _to_float32(value: float) -> float:
    if not math.isfinite(value):
        return value
    try:
        return float(f"{struct.unpack('f', struct.pack('f', value))[0]:.7g}")
    except OverflowError:
        return value


def to_text(value: Any, prop: ModelProperty | None) -> str:
    """The twin string of a normalized value (booleans lower-case, bytes hex: twin values allow
    only ``[a-zA-Z0-9-_.,:/@#]`` at the edge)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value.is_integer() and _ptype(prop) is not PropertyType.INT:
        return repr(value)
    return str(value)


def parse(text: str, prop: ModelProperty | None) -> Any:
    """Parse a twin/REST string into the model type, with an error naming property and type."""
    ptype = _ptype(prop)
    name = prop.name if prop else "?"
    raw = text.strip()
    if ptype is PropertyType.INT:
        try:
            return int(raw, 0) if raw.lower().startswith(("0x", "0b", "0o")) else int(raw)
        except ValueError:
            try:
                as_float = float(raw)
            except ValueError:
                raise ValueError(f"property {name} is INT: {text!r} is not an integer") from None
            if not as_float.is_integer():
                raise ValueError(f"property {name} is INT: {text!r} is not an integer") from None
            return int(as_float)
    if ptype in (PropertyType.FLOAT, PropertyType.DOUBLE):
        try:
            out = float(raw)
        except ValueError:
            raise ValueError(f"property {name} is {ptype}: {text!r} is not a number") from None
        return _to_float32(out) if ptype is PropertyType.FLOAT else out
    if ptype is PropertyType.BOOLEAN:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"property {name} is BOOLEAN: {text!r} is not true or false")
    if ptype is PropertyType.BYTES:
        try:
            return bytes.fromhex(raw)
        except ValueError:
            raise ValueError(f"property {name} is BYTES: {text!r} is not hex") from None
    return text


def _bound(prop: ModelProperty, text: str, which: str) -> float | None:
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise WriteRejected(
            f"property {prop.name}: the model's {which} {text!r} is not a number; fix the DeviceModel"
        ) from None


def check_write(prop: ModelProperty | None, text: str, *, name: str = "?") -> Any:
    """Validate a write request and return the typed value to hand to the driver.

    Raises :class:`WriteRejected` naming the property and the rule it breaks.
    """
    if prop is None:
        raise WriteRejected(f"property {name} is not defined in the device's model")
    if prop.read_only:
        raise WriteRejected(f"property {prop.name} is ReadOnly in the device model")
    try:
        value = parse(text, prop)
    except ValueError as exc:
        raise WriteRejected(str(exc)) from None
    if prop.type in (PropertyType.INT, PropertyType.FLOAT, PropertyType.DOUBLE):
        low = _bound(prop, prop.minimum, "minimum")
        high = _bound(prop, prop.maximum, "maximum")
        if low is not None and value < low:
            raise WriteRejected(f"property {prop.name}: {text} is below the minimum {prop.minimum}")
        if high is not None and value > high:
            raise WriteRejected(f"property {prop.name}: {text} is above the maximum {prop.maximum}")
    return value
