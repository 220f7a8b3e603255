"""The live view's model: what it shows from the objects kubectl returns."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from up._view import build_snapshot, render


def _node(name: str, ready: str, group: str | None = None) -> dict[str, Any]:
    labels = {"apps.kubeedge.io/belonging-to": group} if group else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def _device(name: str, node: str, desired: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "properties": [{"name": "setpoint", "desired": {"value": desired}}]},
    }


def _status(name: str, temp: str, stamp: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "status": {
            "state": "online",
            "twins": [
                {
                    "propertyName": "temperature",
                    "reported": {"value": temp, "metadata": {"timestamp": str(stamp)}},
                },
                {
                    "propertyName": "setpoint",
                    "reported": {"value": "20", "metadata": {"timestamp": str(stamp)}},
                },
            ],
        },
    }


def test_snapshot_joins_devices_and_statuses() -> None:
    snap = build_snapshot(
        [_node("edge-2", "Unknown", "group-b"), _node("edge-1", "True", "group-a")],
        [{"metadata": {"name": "group-a"}, "spec": {"nodes": ["edge-1"]}, "status": {}}],
        [_device("thermo", "edge-1", "21")],
        [_status("thermo", "20.5", 1_000_000)],
        now_ms=1_005_000,
    )
    assert [(n.name, n.ready, n.group) for n in snap.nodes] == [
        ("edge-1", "Ready", "group-a"),
        ("edge-2", "Unknown", "group-b"),
    ]
    assert snap.groups[0].members == "edge-1" and snap.groups[0].ready == "0/1"
    rows = {t.prop: t for t in snap.twins}
    assert rows["temperature"].reported == "20.5" and rows["temperature"].updated == "5s"
    assert rows["setpoint"].desired == "21" and rows["setpoint"].reported == "20"
    assert rows["setpoint"].state == "online" and rows["setpoint"].node == "edge-1"


def test_device_without_status_still_listed() -> None:
    snap = build_snapshot([], [], [{"metadata": {"name": "d", "namespace": "ns"}, "spec": {}}], [])
    assert snap.twins[0].device == "ns/d" and snap.twins[0].state == "-"


def test_render_highlights_changes() -> None:
    group = {
        "metadata": {"name": "site-a"},
        "status": {"nodeStatuses": [{"nodeName": "edge-1", "readyStatus": "Ready"}]},
    }
    before = build_snapshot([], [group], [_device("t", "edge-1", "21")], [_status("t", "20.5", 0)], now_ms=0)
    after = build_snapshot([], [], [_device("t", "edge-1", "21")], [_status("t", "22.0", 0)], now_ms=0)
    console = Console(record=True, width=140, color_system="truecolor", force_terminal=True)
    console.print(render(after, before, header="hello"))
    text = console.export_text()
    assert "22.0" in text and "hello" in text and "devices and twins" in text
    assert "node groups: none" in text
    console.print(render(before))
    assert "site-a (edge-1; 1/1 ready)" in console.export_text()
    changed = [seg for seg in console.render(render(after, before)) if seg.text.strip() == "22.0"]
    assert changed and changed[0].style is not None and changed[0].style.bold
