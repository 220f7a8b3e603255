"""The live terminal view of `kubeshore up`: nodes, node groups, devices, states and twin values.

It watches the API through kubeclient (list + watch into caches, one connection per resource), so a
refresh costs no request and no process; it shows what `kubectl get` shows. Values that changed since
the previous refresh are highlighted; a silent device shows the reason of its Reporting condition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

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
    notes: list[str] = field(default_factory=list)


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
        reporting = next(
            (
                c
                for c in status.get("conditions") or []
                if isinstance(c, Mapping) and c.get("type") == "Reporting"
            ),
            None,
        )
        if reporting is not None and reporting.get("status") != "True" and reporting.get("reason"):
            state = f"{state} ({reporting['reason']})"
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


class ClusterWatch:
    """Caches of the resources the view shows, kept by kubeclient informers (imported lazily: the
    kubernetes client is only loaded when the view runs)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self._kube: Any = None
        self._informers: dict[str, Any] = {}

    async def start(self) -> None:
        from kubeclient import NODES, Informer, Kube, Resource

        async def ignore(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
            return None

        self._kube = Kube.from_kubeconfig(str(self.kubeconfig), workers=1)
        resources = {
            "nodes": NODES,
            "groups": Resource("apps.kubeedge.io", "v1alpha1", "nodegroups", "NodeGroup", False),
            "apps": Resource("apps.kubeedge.io", "v1alpha1", "edgeapplications", "EdgeApplication", True),
            "devices": Resource("devices.kubeedge.io", "v1beta1", "devices", "Device", True),
            "statuses": Resource("devices.kubeedge.io", "v1beta1", "devicestatuses", "DeviceStatus", True),
        }
        for key, res in resources.items():
            informer = Informer(self._kube, res, ignore)
            await informer.start()
            self._informers[key] = informer

    async def stop(self) -> None:
        for informer in self._informers.values():
            await informer.stop()
        if self._kube is not None:
            self._kube.close()  # ends the watches: their threads return at once

    def items(self, key: str) -> list[dict[str, Any]]:
        informer = self._informers.get(key)
        return list(informer.cache.values()) if informer is not None else []

    def snapshot(self) -> Snapshot:
        snap = build_snapshot(
            self.items("nodes"), self.items("groups"), self.items("devices"), self.items("statuses")
        )
        unsynced = [k for k, i in self._informers.items() if not i.synced.is_set()]
        if unsynced:
            snap.errors.append(f"waiting for the API server ({', '.join(unsynced)})")
        for app in sorted(self.items("apps"), key=lambda o: o["metadata"]["name"]):
            note = (app["metadata"].get("annotations") or {}).get(NOTE_ANNOTATION)
            if note:
                snap.notes.append(f"EdgeApplication {app['metadata']['name']}: {note}")
        return snap


NOTE_ANNOTATION = "kubeshore.io/note"


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
    for note in snap.notes:
        parts.append(Text(note, style="yellow"))
    for err in snap.errors:
        parts.append(Text(err, style="dim red"))
    return Group(*parts)


async def live_view(
    kubeconfig: Path,
    header: Callable[[], str],
    console: Console | None = None,
    interval: float = 1.0,
) -> None:
    """Refresh the view until cancelled (Ctrl-C in `kubeshore up`)."""
    console = console or Console()
    previous: Snapshot | None = None
    watch = ClusterWatch(kubeconfig)
    try:
        with Live(Text("reading the cluster…"), console=console, refresh_per_second=4, screen=False) as live:
            await watch.start()
            while True:
                snap = watch.snapshot()
                live.update(render(snap, previous, header()))
                previous = snap
                await asyncio.sleep(interval)
    finally:
        await watch.stop()
