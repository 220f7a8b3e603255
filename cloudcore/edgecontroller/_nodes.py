"""Node lifecycle: the Node object of each edge node, its Ready condition and reported status.

On connect the Node is created or updated (edge role label, hostname, arch, OS). What the edge
reports (addresses, capacity, node info) is written to the Node's status. While a node is connected
its Ready condition is True and ``lastHeartbeatTime`` is refreshed every
``status_update_period``; a node silent for ``grace_period`` becomes Ready=Unknown.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from cloudcore._kube import NODES, Kube, KubeError, Obj
from cloudcore.cloudhub import CloudHub
from kubeshore.message import (
    NULL_NAMESPACE,
    RT_NODE,
    RT_NODESTATUS,
    Message,
    MessageError,
    parse_edge_resource,
)

log = logging.getLogger(__name__)

EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
_REPORTED_FIELDS = ("addresses", "capacity", "allocatable", "nodeInfo", "daemonEndpoints")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_node_message(node: str, msg: Message) -> str | None:
    """Refuse messages that name a node other than the sender (cloudhub validator)."""
    resource = msg.route.resource
    if resource.startswith("node/"):
        parts = resource.split("/")
        if len(parts) > 1 and parts[1] and parts[1] != node:
            return f"names node {parts[1]!r}"
        return None
    if resource == RT_NODE:
        return None
    try:
        r = parse_edge_resource(resource, msg.route.operation)
    except MessageError as exc:
        return str(exc)
    if r.resource_type in (RT_NODE, RT_NODESTATUS, "nodepatch", "lease") and r.name and r.name != node:
        return f"{r.resource_type} {r.name!r} is not the sending node"
    return None


class NodeLifecycle:
    def __init__(
        self, kube: Kube, hub: CloudHub, *, grace_period: float, status_update_period: float
    ) -> None:
        self.kube = kube
        self.hub = hub
        self.grace_period = grace_period
        self.status_update_period = status_update_period
        self.last_seen: dict[str, float] = {}
        self.ready: dict[str, str] = {}
        self.last_written: dict[str, float] = {}
        self.reported: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._transition: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        hub.on_connect(self._connected)
        hub.on_disconnect(self._disconnected)
        hub.add_validator(validate_node_message)

    async def start(self) -> None:
        items, _ = await self.kube.run(self.kube.list, NODES, label_selector=EDGE_ROLE_LABEL)
        now = time.monotonic()
        for node in items:
            name = node["metadata"]["name"]
            self.last_seen.setdefault(name, now)
            self.ready[name] = _ready_status(node)
        self._task = asyncio.create_task(self._monitor(), name="node-lifecycle")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _lock(self, node: str) -> asyncio.Lock:
        return self._locks.setdefault(node, asyncio.Lock())

    async def handle_upstream(self, node: str, msg: Message) -> bool:
        """Node status reports (``null/nodestatus/<node>``); returns False for other messages."""
        try:
            r = parse_edge_resource(msg.route.resource, msg.route.operation)
        except MessageError:
            return False
        if r.resource_type != RT_NODESTATUS or r.namespace != NULL_NAMESPACE:
            return False
        data = msg.content_data()
        status = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status, dict):
            log.warning("node %s: nodestatus without a status object ignored", node)
            return True
        self.reported[node] = {k: status[k] for k in _REPORTED_FIELDS if k in status}
        async with self._lock(node):
            await self.kube.run(self._write, node, "True", True)
        return True

    async def _connected(self, node: str) -> None:
        self.last_seen[node] = time.monotonic()
        async with self._lock(node):
            try:
                await self.kube.run(self._write, node, "True", True)
            except Exception:
                log.exception("node %s: could not write Node object", node)

    async def _disconnected(self, node: str) -> None:
        self.last_seen[node] = time.monotonic()

    def _node_labels(self, node: str) -> dict[str, str]:
        labels = {EDGE_ROLE_LABEL: "", "node-role.kubernetes.io/agent": "", "kubernetes.io/hostname": node}
        info = self.reported.get(node, {}).get("nodeInfo") or {}
        if info.get("architecture"):
            labels["kubernetes.io/arch"] = info["architecture"]
        if info.get("operatingSystem"):
            labels["kubernetes.io/os"] = info["operatingSystem"]
        for addr in self.reported.get(node, {}).get("addresses") or []:
            if addr.get("type") == "Hostname" and addr.get("address"):
                labels["kubernetes.io/hostname"] = addr["address"]
        return labels

    def _write(self, node: str, ready: str, ensure: bool) -> None:
        """Create/label the Node (when ``ensure``) and write its Ready condition and reported status."""
        now = _now()
        if ensure:
            existing = self.kube.get(NODES, node)
            labels = self._node_labels(node)
            if existing is None:
                try:
                    self.kube.create(
                        NODES,
                        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}},
                    )
                except KubeError as exc:
                    if exc.status != 409:
                        raise
            elif any((existing["metadata"].get("labels") or {}).get(k) != v for k, v in labels.items()):
                self.kube.patch(NODES, node, {"metadata": {"labels": labels}})
        previous = self.ready.get(node)
        reason, message = (
            ("EdgeReady", "edge node is connected to cloudcore")
            if ready == "True"
            else ("NodeStatusUnknown", f"edge node has been silent for more than {self.grace_period:g}s")
        )
        condition = {
            "type": "Ready",
            "status": ready,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
        }
        if previous != ready or node not in self.last_written:
            condition["lastTransitionTime"] = now
        else:
            condition["lastTransitionTime"] = self._transition.get(node, now)
        self._transition[node] = condition["lastTransitionTime"]
        status: dict[str, Any] = {"conditions": [condition], **self.reported.get(node, {})}
        try:
            self.kube.patch(NODES, node, {"status": status}, sub="status")
        except KubeError as exc:
            if exc.status != 404:
                raise
            log.warning("node %s: Node object is gone; recreating on next connect", node)
            return
        self.ready[node] = ready
        self.last_written[node] = time.monotonic()

    async def _monitor(self) -> None:
        tick = max(0.2, min(1.0, self.grace_period / 5))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for node in list(self.last_seen):
                session = self.hub.sessions.get(node)
                seen = session.last_seen if session is not None else self.last_seen[node]
                if session is not None:
                    self.last_seen[node] = seen
                silent = now - seen
                try:
                    if silent > self.grace_period:
                        if self.ready.get(node) != "Unknown":
                            log.warning("node %s silent for %.0fs: Ready=Unknown", node, silent)
                            async with self._lock(node):
                                await self.kube.run(self._write, node, "Unknown", False)
                    elif session is not None and (
                        self.ready.get(node) != "True"
                        or now - self.last_written.get(node, 0) > self.status_update_period
                    ):
                        async with self._lock(node):
                            await self.kube.run(self._write, node, "True", False)
                except Exception as exc:
                    log.warning("node %s: status write failed: %s", node, exc)


def _ready_status(node: Obj) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"
