"""``meta.k8s.io/v1`` Table responses for ``kubectl get``: CRD printer columns or built-in columns."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from kubeapi._jsonpath import evaluate
from kubeapi.resources import PrinterColumn, ResourceType

_NAME = PrinterColumn(
    name="Name",
    type="string",
    format="name",
    description="Name must be unique within a namespace. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    json_path=".metadata.name",
)
_AGE = PrinterColumn(
    name="Age",
    type="date",
    json_path=".metadata.creationTimestamp",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def human_duration(seconds: float) -> str:
    """kubectl's ``HumanDuration``: 45s, 5m10s, 3h, 2d5h, 400d, 3y."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rem_m = minutes % 60
        return f"{hours}h{rem_m}m" if rem_m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem_h = hours % 24
        return f"{hours // 24}d{rem_h}h" if rem_h else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24
        rem_d = days % 365
        return f"{days // 365}y{rem_d}d" if rem_d else f"{days // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: dt.datetime | None = None) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    now = now or dt.datetime.now(dt.UTC)
    return human_duration((now - then).total_seconds())


def columns_for(resource: ResourceType) -> tuple[PrinterColumn, ...]:
    if not resource.printer_columns:
        return (_NAME, _AGE)
    if resource.custom:
        return (_NAME, *resource.printer_columns)
    return resource.printer_columns


def _cell(column: PrinterColumn, obj: Mapping[str, Any], now: dt.datetime) -> Any:
    if column.compute is not None:
        return column.compute(obj)
    values = evaluate(column.json_path, obj)
    if not values:
        return None
    value = values[0] if len(values) == 1 else values
    if column.type == "date":
        return age(value, now)
    if column.type in ("string",) and not isinstance(value, str):
        if isinstance(value, list):
            return ",".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)
        return json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    if column.type == "integer" and isinstance(value, bool):
        return None
    return value


def table(
    resource: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    *,
    include_object: str,
    resource_version: str,
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    columns = columns_for(resource)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [_cell(c, obj, now) for c in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            }
            for c in columns
        ],
        "rows": rows,
    }
