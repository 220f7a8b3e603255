"""Kubernetes Event bodies (core/v1), built alike by cloudcore and by edgecore (which sends them up
the channel as KubeEdge's edged does: group ``meta``, resource ``<namespace>/event/<name>``).

An Event's name is derived from its object, type, reason and message, so the same event again is
the same Event, whose ``count`` grows, whichever process records it and across restarts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from kubeshore.message import GROUP_META, OP_INSERT, SOURCE_EDGED, Message

NORMAL = "Normal"
WARNING = "Warning"
RT_EVENT = "event"
_MAX_MESSAGE = 1024  # the API server refuses longer messages

Obj = dict[str, Any]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved(obj: Obj) -> dict[str, Any]:
    """An ObjectReference to ``obj`` (apiVersion, kind, namespace, name, uid, resourceVersion)."""
    md = obj.get("metadata") or {}
    ref = {
        "apiVersion": obj.get("apiVersion", ""),
        "kind": obj.get("kind", ""),
        "namespace": md.get("namespace", ""),
        "name": md.get("name", ""),
        "uid": md.get("uid", ""),
    }
    return {k: v for k, v in ref.items() if v}


def event_name(ref: dict[str, Any], type_: str, reason: str, message: str) -> str:
    digest = hashlib.sha256(
        "\0".join((ref.get("kind", ""), ref.get("uid", ""), type_, reason, message)).encode()
    ).hexdigest()[:16]
    return f"{ref.get('name', 'object')}.{digest}"


def new_event(
    ref: dict[str, Any], type_: str, reason: str, message: str, component: str, host: str = ""
) -> Obj:
    """A core/v1 Event about ``ref`` (the body edge and cloud send alike)."""
    now = now_rfc3339()
    source = {"component": component, **({"host": host} if host else {})}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(ref, type_, reason, message),
            "namespace": ref.get("namespace") or "default",
        },
        "involvedObject": ref,
        "type": type_,
        "reason": reason,
        "message": message[:_MAX_MESSAGE],
        "source": source,
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "reportingComponent": component,
        "reportingInstance": host or component,
    }


def event_message(event: Obj) -> Message:
    """The message an edge node sends its Event up the channel in (as KubeEdge's edged)."""
    md = event["metadata"]
    return Message.new(
        source=SOURCE_EDGED,
        group=GROUP_META,
        operation=OP_INSERT,
        resource=f"{md['namespace']}/{RT_EVENT}/{md['name']}",
        content=event,
    )


def is_event(event: Any) -> str | None:
    """Why ``event`` is not an Event body an edge node may send (None when it is)."""
    if not isinstance(event, dict):
        return "the content is not an object"
    md = event.get("metadata")
    if not isinstance(md, dict) or not isinstance(md.get("name"), str) or not md["name"]:
        return "metadata.name is missing"
    ref = event.get("involvedObject")
    if not isinstance(ref, dict) or not ref.get("name") or not ref.get("kind"):
        return "involvedObject needs a kind and a name"
    for key in ("reason", "message", "type"):
        if not isinstance(event.get(key, ""), str):
            return f"{key} is not a string"
    return None
