"""In-memory twin state and the rules that change it.

The store keeps this state authoritative in memory and writes it behind to SQLite. Every side of
a twin (desired, reported) carries a monotonic version and the timestamp of its value at the
source, so an update that is older than what is stored never overwrites it: reports from a mapper
that arrive out of order, a retried MQTT message or a late cloud message are ignored for that
side.
"""

from __future__ import annotations

import json
import re
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from edgecore._sharedmaps import EMPTY, SharedMaps

VALID_STATES = frozenset({"online", "offline", "ok", "unknown", "unhealthy", "disconnected"})
ONLINE_STATES = frozenset({"online", "ok"})
UNREACHABLE_STATES = frozenset({"offline", "disconnected", "unhealthy"})
_NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.,:/@#]{1,128}$")
MAX_VALUE_LEN = 4096
#: twins a device may have (its model's properties and optional ones): one update of 1,000 junk
#: twins would otherwise make every DeviceStatus write too large for the API server
MAX_TWINS = 256
#: metadata entries of one twin side, and the length of each key and value
MAX_META_ENTRIES = 16
MAX_META_LEN = 256
#: how far a source timestamp may be ahead of this node's clock (ms): a value stamped later would
#: hide every newer value until that time comes (a far-future one froze the twin for good)
MAX_FUTURE_SKEW_MS = 5000

# DeviceModel property types -> twin value types (KubeEdge's metadata.type vocabulary).
MODEL_TYPE_TO_TWIN = {
    "INT": "int",
    "FLOAT": "float",
    "DOUBLE": "float",
    "BOOLEAN": "boolean",
    "STRING": "string",
    "BYTES": "string",
    "STREAM": "string",
}


class TwinError(Exception):
    """A rejected request: ``code`` follows KubeEdge's result codes (400, 404, 409, 500)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def now_ms() -> int:
    return int(time.time() * 1000)


def rfc3339_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_NUMERIC_TYPES = frozenset({"int", "integer", "float", "double", "int64", "float64"})

# Reported-value metadata is the same few small maps for thousands of twins ({"type": "int"}).
_METAS = SharedMaps()
shared_meta = _METAS.share


def _no_meta() -> dict[str, str]:
    return EMPTY


@dataclass(slots=True)
class Twin:
    name: str
    attr_type: str = "string"
    optional: bool = True
    expected: str | None = None
    expected_ts: int = 0
    expected_version: int = 0
    expected_from_edge: bool = False  # set at the edge and not yet in the Device spec
    spec_desired: str | None = None  # the desired value last seen in the Device spec
    cloud_version: int = 0  # resourceVersion of the Device that spec_desired came from
    actual: str | None = None
    actual_ts: int = 0
    actual_version: int = 0
    actual_meta: dict[str, str] = field(default_factory=_no_meta)  # shared: replace, never mutate
    observed: str | None = None
    observed_ts: int = 0
    synced_expected: int = 0
    synced_actual: int = 0

    def in_sync(self) -> bool:
        """Whether the reported value equals the desired one, numerically for numeric twins.

        Mappers report what the device returns ("19.0" for a FLOAT property whose desired value
        is "19"); comparing text would publish a delta for ever.
        """
        if self.expected == self.actual:
            return True
        if self.expected is None or self.actual is None:
            return False
        if self.attr_type in _NUMERIC_TYPES:
            try:
                return float(self.expected) == float(self.actual)
            except ValueError:
                return False
        if self.attr_type in ("boolean", "bool"):
            return self.expected.strip().lower() == self.actual.strip().lower()
        return False

    def render(self) -> dict[str, Any]:
        """The twin in KubeEdge's MsgTwin JSON shape (without versions)."""
        out: dict[str, Any] = {}
        if self.expected is not None:
            out["expected"] = {"value": self.expected, "metadata": {"timestamp": self.expected_ts}}
        if self.actual is not None:
            out["actual"] = {"value": self.actual, "metadata": {"timestamp": self.actual_ts}}
        out["optional"] = self.optional
        out["metadata"] = {"type": self.attr_type}
        return out

    @property
    def unsynced(self) -> bool:
        return self.actual_version > self.synced_actual or self.expected_version > self.synced_expected


# Metadata the edge keeps no copy of in devicetwin: kubectl's last-applied-configuration repeats the
# whole object, managedFields are the API server's bookkeeping. (The edge store and MetaServer keep
# the object as the cloud sent it.)
_DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _trimmed(obj: dict[str, Any]) -> dict[str, Any]:
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return obj
    md = {k: v for k, v in md.items() if k != "managedFields"}
    annotations = md.get("annotations")
    if isinstance(annotations, dict) and any(a in annotations for a in _DROPPED_ANNOTATIONS):
        md["annotations"] = {k: v for k, v in annotations.items() if k not in _DROPPED_ANNOTATIONS}
    return {**obj, "metadata": md}


class Device:
    """A device on this node and its twins.

    The Device object is kept as compressed compact JSON (``raw`` gives the text), not as parsed
    dicts: a parsed Device is 3-4 times its JSON size, its JSON 3 times its zlib form (1,250 bytes
    against 390 for a 5-property Device), and only conversions for a mapper need it (``body`` parses
    a fresh copy, ~5 us). What the hot paths need (model, protocol) is kept apart.
    """

    __slots__ = (
        "_packed",
        "conditions",
        "description",
        "id",
        "last_online",
        "model_id",
        "name",
        "namespace",
        "online_refreshed",
        "protocol",
        "refused",
        "resource_version",
        "state",
        "state_synced",
        "state_version",
        "twins",
    )

    def __init__(
        self,
        id: str,
        namespace: str,
        name: str,
        body: dict[str, Any],
        resource_version: int = 0,
        description: str = "",
        state: str = "",
        last_online: str = "",
        state_version: int = 0,
        state_synced: int = 0,
        twins: dict[str, Twin] | None = None,
    ) -> None:
        self.id = id
        self.namespace = namespace
        self.name = name
        self._packed = b""
        self.model_id = ""
        self.protocol = ""
        self.body = body
        self.resource_version = resource_version
        self.description = description
        self.state = state
        self.last_online = last_online
        self.state_version = state_version
        self.state_synced = state_synced
        self.twins: dict[str, Twin] = {} if twins is None else twins
        # type -> (status, reason, message): what the edge sees of the device's mapper (not persisted:
        # the registry and the mapper's next report establish them again after a restart)
        self.conditions: dict[str, tuple[str, str, str]] = {}
        self.online_refreshed = 0.0  # monotonic time last_online last went to the cloud
        self.refused: dict[str, str] = {}  # property -> why the mapper did not apply its desired value

    @property
    def raw(self) -> str:
        """The Device object as compact JSON ("" before a body is set)."""
        return zlib.decompress(self._packed).decode() if self._packed else ""

    @property
    def body(self) -> dict[str, Any]:
        """The Device object (a fresh copy: changing it changes nothing here)."""
        obj: dict[str, Any] = json.loads(zlib.decompress(self._packed))
        return obj

    @body.setter
    def body(self, obj: dict[str, Any]) -> None:
        self._packed = zlib.compress(json.dumps(_trimmed(obj), separators=(",", ":")).encode())
        spec = obj.get("spec") or {}
        ref = spec.get("deviceModelRef") or {}
        self.model_id = f"{self.namespace}/{ref.get('name', '')}"
        self.protocol = str((spec.get("protocol") or {}).get("protocolName") or "")

    def spec(self) -> Any:
        return self.body.get("spec")

    def __repr__(self) -> str:
        return f"Device({self.id!r}, rv={self.resource_version}, twins={sorted(self.twins)})"


def validate_value(name: str, value: str, attr_type: str) -> None:
    if len(value) > MAX_VALUE_LEN:
        raise TwinError(400, f"twin {name!r}: value longer than {MAX_VALUE_LEN} characters")
    try:
        if attr_type in ("int", "integer"):
            int(value)
        elif attr_type in ("float", "double"):
            float(value)
        elif attr_type == "boolean" and value not in ("true", "false"):
            raise ValueError
    except ValueError:
        raise TwinError(400, f"twin {name!r}: value {value!r} is not of type {attr_type}") from None


def validate_ts(name: str, ts: int | None, now: int) -> None:
    if ts is not None and ts > now + MAX_FUTURE_SKEW_MS:
        raise TwinError(
            400,
            f"twin {name!r}: timestamp {ts} is {(ts - now) / 1000:.1f} s in the future "
            f"(at most {MAX_FUTURE_SKEW_MS / 1000:g} s of clock skew is accepted)",
        )
    if ts is not None and ts < 0:
        raise TwinError(400, f"twin {name!r}: timestamp {ts} is negative")


def _known(ts: int, now: int) -> int:
    """A stored timestamp, as newer values must beat it: one from the future (stored before the
    skew check existed) counts as now, so it cannot hide the values that follow."""
    return min(ts, now + MAX_FUTURE_SKEW_MS)


def validate_count(device: Device, names: list[str]) -> None:
    new = sum(1 for n in names if n not in device.twins)
    if new and len(device.twins) + new > MAX_TWINS:
        raise TwinError(
            400,
            f"device {device.id} would have {len(device.twins) + new} twins; at most {MAX_TWINS} are allowed",
        )


def validate_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise TwinError(400, f"twin name {name!r} is not allowed (1-128 of [a-zA-Z0-9-_.,:/@#])")


def model_types(model: dict[str, Any] | None) -> dict[str, str]:
    if not model:
        return {}
    props = (model.get("spec") or {}).get("properties") or []
    return {
        str(p.get("name")): MODEL_TYPE_TO_TWIN.get(str(p.get("type", "")).upper(), "string")
        for p in props
        if isinstance(p, dict) and p.get("name")
    }


def apply_spec(device: Device, model: dict[str, Any] | None) -> list[str]:
    """Bring the twins in line with the Device spec; returns names whose desired value changed.

    Every property of the spec gets a twin at once (KubeEdge creates them only on the first report,
    so a property that never reported is invisible). A desired value changes only when the spec's
    value itself changed: a value set at the edge since stays until the user edits the spec.
    """
    types = model_types(model)
    changed: list[str] = []
    props = (device.spec() or {}).get("properties") or []
    in_spec: set[str] = set()
    for prop in props:
        if not isinstance(prop, dict) or not prop.get("name"):
            continue
        # Interned: thousands of devices of one model have the same property names.
        name = sys.intern(str(prop["name"]))
        in_spec.add(name)
        twin = device.twins.get(name)
        if twin is None:
            twin = device.twins[name] = Twin(name=name)
        twin.optional = False
        twin.attr_type = types.get(name, twin.attr_type)
        desired = prop.get("desired") or {}
        value = desired.get("value") if isinstance(desired, dict) else None
        # Interned: a fleet's desired values repeat (set points, modes), one string each.
        spec_value = None if value is None else sys.intern(str(value))
        if spec_value != twin.spec_desired:
            twin.spec_desired = spec_value
            twin.cloud_version = device.resource_version
            if spec_value is not None and spec_value != twin.expected:
                twin.expected = spec_value
                twin.expected_ts = max(now_ms(), twin.expected_ts)
                twin.expected_version += 1
                changed.append(name)
            twin.expected_from_edge = False
        elif twin.expected_from_edge and twin.expected == spec_value:
            twin.expected_from_edge = False
    for name, twin in device.twins.items():
        if name not in in_spec:
            twin.optional = True
    return changed


@dataclass(slots=True)
class SideUpdate:
    value: str
    ts: int | None  # explicit source timestamp, if the sender gave one
    version: int | None  # explicit version the sender based its update on
    meta: dict[str, str]


def _int_or_none(v: Any) -> int | None:
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def parse_side(name: str, raw: Any, what: str) -> SideUpdate | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TwinError(400, f"twin {name!r}: {what} must be an object with a value")
    if "value" not in raw or raw["value"] is None:
        raise TwinError(400, f"twin {name!r}: {what}.value is missing")
    value = raw["value"]
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    elif not isinstance(value, str):
        raise TwinError(400, f"twin {name!r}: {what}.value must be a string")
    meta_raw = raw.get("metadata") or {}
    if not isinstance(meta_raw, dict):
        raise TwinError(400, f"twin {name!r}: {what}.metadata must be an object")
    ts = _int_or_none(meta_raw.get("timestamp"))
    meta = {str(k): str(v) for k, v in meta_raw.items() if k != "timestamp"}
    if len(meta) > MAX_META_ENTRIES or any(
        len(k) > MAX_META_LEN or len(v) > MAX_META_LEN for k, v in meta.items()
    ):
        raise TwinError(
            400,
            f"twin {name!r}: {what}.metadata has more than {MAX_META_ENTRIES} entries or an entry "
            f"longer than {MAX_META_LEN} characters",
        )
    return SideUpdate(value=value, ts=ts, version=None, meta=meta)


@dataclass(slots=True)
class Change:
    """One twin changed by an update: its MsgTwin JSON before and after (None = absent)."""

    name: str
    last: dict[str, Any] | None
    current: dict[str, Any] | None
    desired_changed: bool = False


def apply_twin_update(
    device: Device, twins: dict[str, Any], types: dict[str, str], *, from_mapper: bool = False
) -> list[Change]:
    """Apply a KubeEdge TwinUpdate ``twin`` map; raises TwinError before changing anything if invalid.

    Checked against the device's model (``types``, property name -> type, empty when the model is
    not known): a twin that is not a property of the model and not already on the device is
    refused, values must convert to the property's type, sizes are bounded (value length,
    metadata, twins per device) and timestamps may be at most ``MAX_FUTURE_SKEW_MS`` ahead."""
    now = now_ms()
    if len(twins) > MAX_TWINS:
        raise TwinError(400, f"{len(twins)} twins in one update; at most {MAX_TWINS} are allowed")
    planned: list[tuple[str, SideUpdate | None, SideUpdate | None, str | None, bool]] = []
    for name, raw in twins.items():
        validate_name(name)
        if types and name not in types and name not in device.twins and raw is not None:
            raise TwinError(
                400,
                f"twin {name!r} is not a property of device model {device.model_id} "
                f"(properties: {', '.join(sorted(types))})",
            )
        if raw is None:
            existing = device.twins.get(name)
            if existing is not None and not existing.optional:
                raise TwinError(400, f"twin {name!r} is a property of the device and cannot be deleted")
            planned.append((name, None, None, None, True))
            continue
        if not isinstance(raw, dict):
            raise TwinError(400, f"twin {name!r} must be an object")
        expected = parse_side(name, raw.get("expected"), "expected")
        actual = parse_side(name, raw.get("actual"), "actual")
        meta = raw.get("metadata") or {}
        if not isinstance(meta, dict):
            raise TwinError(400, f"twin {name!r}: metadata must be an object")
        sent_type = meta.get("type")
        existing = device.twins.get(name)
        attr_type = types.get(name) or (existing.attr_type if existing else None) or sent_type or "string"
        if not isinstance(attr_type, str):
            raise TwinError(400, f"twin {name!r}: metadata.type must be a string")
        if attr_type not in ("string", "int", "integer", "float", "double", "boolean", ""):
            raise TwinError(400, f"twin {name!r}: value type {attr_type!r} is not allowed")
        for side in (expected, actual):
            if side is not None:
                validate_value(name, side.value, attr_type or "string")
                validate_ts(name, side.ts, now)
        for key, side in (("expected_version", expected), ("actual_version", actual)):
            ver = raw.get(key)
            if side is not None and isinstance(ver, dict):
                side.version = _int_or_none(ver.get("edge"))
        if (
            expected is not None
            and expected.version is not None
            and existing is not None
            and expected.version < existing.expected_version
        ):
            raise TwinError(
                409,
                f"twin {name!r}: expected_version {expected.version} is older than "
                f"{existing.expected_version}",
            )
        if (
            actual is not None
            and actual.version is not None
            and existing is not None
            and actual.version < existing.actual_version
        ):
            raise TwinError(
                409,
                f"twin {name!r}: actual_version {actual.version} is older than {existing.actual_version}",
            )
        planned.append((name, expected, actual, attr_type or "string", False))
    validate_count(device, [p[0] for p in planned if not p[4]])

    changes: list[Change] = []
    for name, expected, actual, attr_type, delete in planned:
        existing = device.twins.get(name)
        if delete:
            if existing is not None:
                del device.twins[name]
                changes.append(Change(name, existing.render(), None))
            continue
        twin = existing or Twin(name=name, attr_type=attr_type or "string")
        last = existing.render() if existing is not None else None
        touched = desired_changed = False
        if expected is not None:
            known = _known(twin.expected_ts, now)
            ts = expected.ts if expected.ts is not None else max(now, known)
            if ts >= known:
                desired_changed = expected.value != twin.expected
                twin.expected = expected.value
                twin.expected_ts = ts
                twin.expected_version += 1
                # A mapper's "expected" is what it applied, not a new wish.
                twin.expected_from_edge = not from_mapper and (
                    twin.expected_from_edge or expected.value != twin.spec_desired
                )
                touched = True
        if actual is not None:
            known = _known(twin.actual_ts, now)
            ts = actual.ts if actual.ts is not None else max(now, known)
            if ts >= known:
                twin.actual = actual.value
                twin.actual_ts = ts
                twin.actual_version += 1
                twin.actual_meta = shared_meta(actual.meta)
                touched = True
        if touched:
            device.twins[name] = twin
            changes.append(Change(name, last, twin.render(), desired_changed))
    return changes


def apply_report(
    device: Device, reports: list[tuple[str, str | None, dict[str, str], str | None]], types: dict[str, str]
) -> list[Change]:
    """Apply DMI ReportDeviceStatus twins: (name, reported, reported metadata, observedDesired)."""
    now = now_ms()
    for name, reported, meta, _observed in reports:
        validate_name(name)
        if reported is not None:
            validate_value(name, reported, types.get(name) or _twin_type(device, name))
        if "timestamp" in meta:
            validate_ts(name, _int_or_none(meta["timestamp"]), now)
    validate_count(device, [r[0] for r in reports])
    changes: list[Change] = []
    for name, reported, meta, observed in reports:
        twin = device.twins.get(name)
        last = twin.render() if twin is not None else None
        if twin is None:
            twin = device.twins[name] = Twin(name=name, attr_type=types.get(name, "string"))
        touched = False
        known = _known(twin.actual_ts, now)
        ts = _int_or_none(meta.get("timestamp")) or max(now, known)
        if reported is not None and ts >= known:
            twin.actual = reported
            twin.actual_ts = ts
            twin.actual_version += 1
            twin.actual_meta = shared_meta({k: v for k, v in meta.items() if k != "timestamp"})
            touched = True
        if observed is not None and observed != twin.observed and ts >= _known(twin.observed_ts, now):
            twin.observed = observed
            twin.observed_ts = ts
            touched = True
        if touched:
            changes.append(Change(name, last, twin.render()))
    return changes


def _twin_type(device: Device, name: str) -> str:
    twin = device.twins.get(name)
    return twin.attr_type if twin is not None else "string"


# A state reported again only refreshes lastOnlineTime in the cloud this often (a change goes at once).
ONLINE_REFRESH = 60.0


def apply_state(device: Device, state: str) -> bool:
    """Record a device state; returns False for a state KubeEdge does not know.

    ``last_online`` is the time of the last online report (KubeEdge's meaning; mappers report the
    state every ``stateReport.reportCycle``). A change of state goes to the cloud at once; the
    same state reported again only when the cloud's lastOnlineTime is ``ONLINE_REFRESH`` old.
    """
    state = state.lower()
    if state not in VALID_STATES:
        return False
    changed = state != device.state
    device.state = state
    if state in ONLINE_STATES:
        device.last_online = rfc3339_now()
    now = time.monotonic()
    if changed or now - device.online_refreshed >= ONLINE_REFRESH:
        device.online_refreshed = now
        device.state_version += 1
    return True
