"""The live terminal view of `kubeshore up`: nodes, node groups, devices, states and twin values.

It reads the cluster the way a user does (the real kubectl with the platform's kubeconfig), so what
it shows is what `kubectl get` shows. Values that changed since the previous refresh are highlighted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kubeshore.up._kubectl import Kubectl, KubectlError

GROUP_LABEL = "apps.kubeedge.io/belonging-to"


@dataclass(frozen=True)
class NodeRow:
    name: str
    ready: str
    group: str


@dataclass(frozen=True)
class GroupRow:
    name: str
    members: str
    ready: str


@dataclass(frozen=True)
class TwinRow:
    device: str  # namespace/name
    node: str
    state: str
    prop: str
    reported: str
    desired: str
    updated: str


@dataclass
class Snapshot:
    nodes: list[NodeRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    twins: list[TwinRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _ready(node: Mapping[str, Any]) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return {"True": "Ready", "False": "NotReady"}.get(str(cond.get("status")), "Unknown")
    return "Unknown"


def _value(field_: Any) -> tuple[str, str]:
    """(value, timestamp) of a twin's reported or observedDesired field."""
    if not isinstance(field_, Mapping):
        return "", ""
    meta = field_.get("metadata") or {}
    stamp = str(meta.get("timestamp", "")) if isinstance(meta, Mapping) else ""
    return str(field_.get("value", "")), stamp


def _age(stamp: str, now_ms: float) -> str:
    """KubeEdge writes twin timestamps as milliseconds since the epoch."""
    try:
        seconds = max(0.0, (now_ms - float(stamp)) / 1000)
    except ValueError:
        return stamp
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def build_snapshot(
    nodes: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    now_ms: float | None = None,
) -> Snapshot:
    now_ms = time.time() * 1000 if now_ms is None else now_ms
    snap = Snapshot()
    for n in sorted(nodes, key=lambda o: o["metadata"]["name"]):
        labels = n["metadata"].get("labels") or {}
        snap.nodes.append(NodeRow(n["metadata"]["name"], _ready(n), labels.get(GROUP_LABEL, "")))
    for g in sorted(groups, key=lambda o: o["metadata"]["name"]):
        member_status = (g.get("status") or {}).get("nodeStatuses") or []
        members = [s.get("nodeName", "") for s in member_status] or list(
            (g.get("spec") or {}).get("nodes") or []
        )
        ready = sum(1 for s in member_status if s.get("readyStatus") == "Ready")
        snap.groups.append(GroupRow(g["metadata"]["name"], ", ".join(members), f"{ready}/{len(members)}"))
    by_key = {(s["metadata"].get("namespace", ""), s["metadata"]["name"]): s for s in statuses}
    for d in sorted(devices, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        ns, name = d["metadata"].get("namespace", ""), d["metadata"]["name"]
        spec = d.get("spec") or {}
        status = (by_key.get((ns, name)) or {}).get("status") or {}
        desired = {
            p.get("name", ""): str((p.get("desired") or {}).get("value", ""))
            for p in spec.get("properties") or []
            if isinstance(p, Mapping)
        }
        twins = {t.get("propertyName", ""): t for t in status.get("twins") or [] if isinstance(t, Mapping)}
        state = str(status.get("state") or "-")
        for prop in sorted(set(desired) | set(twins)):
            reported, stamp = _value((twins.get(prop) or {}).get("reported"))
            snap.twins.append(
                TwinRow(
                    f"{ns}/{name}",
                    str(spec.get("nodeName", "")),
                    state,
                    prop,
                    reported,
                    desired.get(prop, ""),
                    _age(stamp, now_ms) if stamp else "",
                )
            )
        if not desired and not twins:
            snap.twins.append(TwinRow(f"{ns}/{name}", str(spec.get("nodeName", "")), state, "", "", "", ""))
    return snap


async def fetch(kubectl: Kubectl) -> Snapshot:
    results: dict[str, list[dict[str, Any]]] = {}
    errors = []
    for key, args in {
        "nodes": ("nodes",),
        "groups": ("nodegroups.apps.kubeedge.io",),
        "devices": ("devices.devices.kubeedge.io", "-A"),
        "statuses": ("devicestatuses.devices.kubeedge.io", "-A"),
    }.items():
        try:
            results[key] = await kubectl.get_items(*args)
        except (KubectlError, ValueError, TimeoutError) as exc:
            results[key] = []
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    snap = build_snapshot(results["nodes"], results["groups"], results["devices"], results["statuses"])
    snap.errors = errors
    return snap


_READY_STYLE = {"Ready": "green", "NotReady": "red", "Unknown": "yellow"}
_STATE_STYLE = {"online": "green", "ok": "green", "offline": "red", "unhealthy": "yellow"}


def _changed(text: str, was: str | None) -> Text:
    return Text(text, style="bold cyan") if was is not None and was != text else Text(text)


def render(snap: Snapshot, previous: Snapshot | None = None, header: str = "") -> RenderableType:
    before_twins = {(t.device, t.prop): t for t in previous.twins} if previous else {}
    nodes = Table(title="nodes", title_justify="left")
    for col in ("name", "status", "node group"):
        nodes.add_column(col)
    for n in snap.nodes:
        nodes.add_row(n.name, Text(n.ready, style=_READY_STYLE.get(n.ready, "")), n.group or "-")
    # Node groups take one line: the nodes table already names each node's group.
    groups = Text("node groups: ", style="bold")
    groups.append(
        ", ".join(f"{g.name} ({g.members or 'no members'}; {g.ready} ready)" for g in snap.groups) or "none"
    )
    twins = Table(title="devices and twins", title_justify="left")
    for col in ("device", "node", "state", "property", "reported", "desired", "age"):
        values = col in ("reported", "desired")
        twins.add_column(col, no_wrap=not values, overflow="fold", min_width=8 if values else None)
    shown = ""
    for t in snap.twins:
        was = before_twins.get((t.device, t.prop))
        first = t.device != shown
        shown = t.device
        # The namespace is left out when it is "default", and a device's columns only on its first row.
        name = t.device.removeprefix("default/")
        twins.add_row(
            name if first else "",
            t.node if first else "",
            Text(t.state, style=_STATE_STYLE.get(t.state.lower(), "")) if first else "",
            t.prop,
            _changed(t.reported, was.reported if was else None),
            _changed(t.desired, was.desired if was else None),
            t.updated,
        )
    parts: list[RenderableType] = []
    if header:
        parts.append(Text.from_markup(header))
    parts += [nodes, groups, twins]
    for err in snap.errors:
        parts.append(Text(err, style="dim red"))
    return Group(*parts)


async def live_view(
    kubectl: Kubectl,
    header: Callable[[], str],
    console: Console | None = None,
    interval: float = 1.0,
) -> None:
    """Refresh the view until cancelled (Ctrl-C in `kubeshore up`)."""
    console = console or Console()
    previous: Snapshot | None = None
    with Live(Text("reading the cluster…"), console=console, refresh_per_second=4, screen=False) as live:
        while True:
            started = time.monotonic()
            with contextlib.suppress(Exception):
                snap = await fetch(kubectl)
                live.update(render(snap, previous, header()))
                previous = snap
            await asyncio.sleep(max(0.1, interval - (time.monotonic() - started)))
