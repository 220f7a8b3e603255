"""KubeEdge's twin JSON documents (MQTT payloads and the edge -> cloud twin sync content)."""

from __future__ import annotations

import itertools
import os
from typing import Any

import orjson

from edgecore.devicetwin._state import Change, Device, Twin, now_ms


def msg_twin(twin: Twin) -> dict[str, Any]:
    return twin.render()


# Event ids only need to be unique; a uuid4 per published document costs a getrandom() each.
_EVENT_PREFIX = os.urandom(6).hex()
_event_seq = itertools.count(1)


def new_event_id() -> str:
    return f"{_EVENT_PREFIX}-{next(_event_seq)}"


def header(event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id if event_id is not None else new_event_id(), "timestamp": now_ms()}


def dumps(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def update_result(event_id: str, changes: list[Change]) -> dict[str, Any]:
    doc = header(event_id)
    doc["twin"] = {c.name: c.current for c in changes if c.current is not None}
    return doc


def twin_document(changes: list[Change]) -> dict[str, Any]:
    doc = header()
    doc["twin"] = {c.name: {"last": c.last, "current": c.current} for c in changes}
    return doc


def twin_delta(device: Device) -> dict[str, Any] | None:
    """All twins with a desired value, plus the ones whose desired and reported differ; None if none do."""
    delta = {
        name: t.expected for name, t in device.twins.items() if t.expected is not None and not t.in_sync()
    }
    if not delta:
        return None
    doc = header()
    doc["twin"] = {name: msg_twin(t) for name, t in device.twins.items() if t.expected is not None}
    doc["delta"] = delta
    return doc


def get_result(event_id: str, device: Device) -> dict[str, Any]:
    doc = header(event_id)
    doc["twin"] = {name: msg_twin(t) for name, t in device.twins.items()}
    return doc


def error_result(event_id: str, code: int, reason: str) -> dict[str, Any]:
    doc = header(event_id)
    doc["code"] = code
    doc["reason"] = reason
    return doc


def state_result(event_id: str, device: Device) -> dict[str, Any]:
    doc = header(event_id)
    doc["device"] = {"name": device.name, "state": device.state, "lastOnlineTime": device.last_online}
    return doc


def cloud_state(device: Device) -> dict[str, Any]:
    """``state/update`` to the cloud: KubeEdge's, plus the edge's conditions (which it ignores)."""
    doc = state_result(header()["event_id"], device)
    doc["device"]["state"] = device.state or "unknown"
    doc["device"]["conditions"] = [
        {"type": t, "status": status, "reason": reason, "message": message}
        for t, (status, reason, message) in sorted(device.conditions.items())
    ]
    return doc


def membership_device(device: Device) -> dict[str, Any]:
    attributes = {
        t.name: {"value": t.actual or "", "optional": t.optional, "metadata": {"type": t.attr_type}}
        for t in device.twins.values()
    }
    return {
        "id": device.id,
        "name": device.name,
        "description": device.description,
        "state": device.state,
        "last_online": device.last_online,
        "attributes": attributes,
    }


def cloud_twin(twin: Twin) -> dict[str, Any]:
    """One twin in the ``twin/edge_updated`` content sent to the cloud.

    ``expected`` carries what the mapper reports having applied (the cloud shows it as
    status.observedDesired, as KubeEdge's cloud does with ``expected``); a desired value set at the
    edge travels in ``desired`` with the spec value it replaced, so the cloud can write it into the
    Device spec only if nobody changed the spec meanwhile.
    """
    out: dict[str, Any] = {"optional": twin.optional, "metadata": {"type": twin.attr_type}}
    observed_ts = twin.observed_ts or twin.actual_ts
    if twin.observed is not None:
        out["expected"] = {"value": twin.observed, "metadata": {"timestamp": observed_ts}}
    if twin.actual is not None:
        out["actual"] = {"value": twin.actual, "metadata": {"timestamp": twin.actual_ts}}
    if twin.expected_from_edge and twin.expected is not None:
        out["desired"] = {
            "value": twin.expected,
            "metadata": {"timestamp": twin.expected_ts},
            "base": twin.spec_desired,
        }
    out["expected_version"] = {"cloud": twin.cloud_version, "edge": twin.expected_version}
    out["actual_version"] = {"cloud": 0, "edge": twin.actual_version}
    return out
