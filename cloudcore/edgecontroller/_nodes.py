"""Node lifecycle: the Node object of each edge node, its Ready condition and reported status.

On connect the Node is created or updated (edge role label, hostname, arch, OS). What the edge
reports (addresses, capacity, node info) is written to the Node's status. While a node is connected
its Ready condition is True and ``lastHeartbeatTime`` is refreshed every
``status_update_period``. A node whose last traffic (any bytes: pings, keepalives, messages) is
older than ``grace_period`` becomes Ready=Unknown, whether its session is still open (a frozen
process, a black-holed network) or already closed; fresh traffic or a reconnect makes it Ready.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

from cloudcore.cloudhub import CloudHub
from kubeclient import LEASES, NODES, ApiError, Kube, Obj
from kubeshore.message import (
    GROUP_RESOURCE,
    NULL_NAMESPACE,
    OP_INSERT,
    OP_PATCH,
    OP_QUERY,
    OP_UPDATE,
    RT_NODE,
    RT_NODESTATUS,
    SOURCE_EDGECONTROLLER,
    Message,
    MessageError,
    parse_edge_resource,
)

log = logging.getLogger(__name__)

# The port of the node's MetaServer as the edge reports it (node groups point default/kubernetes at it).
METASERVER_PORT_ANNOTATION = "kubeshore.io/metaserver-port"

EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"
LEASE_NAMESPACE = "kube-node-lease"
RT_NODEPATCH = "nodepatch"
RT_LEASE = "lease"
_REPORTED_FIELDS = ("addresses", "capacity", "allocatable", "nodeInfo", "daemonEndpoints")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reply(msg: Message, obj: Any, exc: Exception | None = None) -> Message:
    """KubeEdge's answer to an edge's request about an API object (its ``ObjectResp``): from
    edgecontroller in group ``resource``, ``{"Object": obj, "Err": null}`` or, for ``exc``, no object and
    the API status (an exception that is not an API error is an InternalError)."""
    content: dict[str, Any] = {"Object": obj, "Err": None}
    if exc is not None:
        if isinstance(exc, ApiError):
            status = {"status": "Failure", "message": exc.message, "reason": exc.reason, "code": exc.status}
        else:
            status = {"status": "Failure", "message": str(exc), "reason": "InternalError", "code": 500}
        content = {"Object": None, "Err": {"ErrStatus": status}}
    reply = msg.response(content, source=SOURCE_EDGECONTROLLER)
    reply.route.group = GROUP_RESOURCE
    return reply


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
        self.metaserver_ports: dict[str, int] = {}
        #: nodes whose edge reports Ready=False: (reason, message)
        self.edge_not_ready: dict[str, tuple[str, str]] = {}
        self._transition: dict[str, str] = {}
        # Labels each Node is known to carry (from the startup list or our own writes): a reconnect
        # then costs one status patch instead of a read and two writes.
        self.labels_written: dict[str, dict[str, str]] = {}
        self.annotations_written: dict[str, dict[str, str]] = {}
        # Per-node coalescing writer: the Ready state to write next, and whether a writer runs.
        self._want: dict[str, str] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
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
            self.labels_written[name] = dict(node["metadata"].get("labels") or {})
            self.annotations_written[name] = dict(node["metadata"].get("annotations") or {})
        self._task = asyncio.create_task(self._monitor(), name="node-lifecycle")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def request_write(self, node: str, ready: str) -> None:
        """Write the Node soon; writes requested while one is running are coalesced into one.

        Connecting never waits for the API server: the node's objects flow at once and the Node
        object follows in the background.
        """
        self._want[node] = ready
        if node not in self._writers:
            self._writers[node] = asyncio.create_task(self._writer(node), name=f"node-writer-{node}")

    async def _writer(self, node: str) -> None:
        try:
            while node in self._want:
                ready = self._want.pop(node)
                try:
                    await self.kube.run(self._write, node, ready)
                except Exception as exc:
                    log.warning("node %s: writing the Node object failed: %s", node, exc)
        finally:
            del self._writers[node]

    async def flushed(self) -> None:
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)

    async def handle_upstream(self, node: str, msg: Message) -> bool:
        """What an edge says about its Node; returns False for other messages.

        ``null/nodestatus/<node>`` (update) carries the reported status. As KubeEdge's edged does, an
        edge may also register its Node (``default/node/<node>`` insert/update/query), patch its status
        (``default/nodepatch/<node>``) and keep its Lease (``kube-node-lease/lease/<node>``); those are
        answered with KubeEdge's ``{"Object": ..., "Err": ...}``. The Ready condition stays
        cloudcore's: it follows the node's traffic; only an edge's own Ready=False (the kubelet's: its
        container runtime is not up yet) keeps a connected node not Ready, with the edge's reason.
        """
        try:
            r = parse_edge_resource(msg.route.resource, msg.route.operation)
        except MessageError:
            return False
        op = msg.route.operation
        if r.resource_type == RT_NODESTATUS and r.namespace == NULL_NAMESPACE:
            data = msg.content_data()
            status = data.get("status") if isinstance(data, dict) else None
            if not isinstance(status, dict):
                log.warning("node %s: nodestatus without a status object ignored", node)
                return True
            self._take_report(node, status, data.get("metaServerPort"))
            self.request_write(node, "True")
            return True
        if r.resource_type == RT_NODE and op in (OP_INSERT, OP_UPDATE, OP_QUERY):
            data = msg.content_data()
            if isinstance(data, dict):
                annotations = (data.get("metadata") or {}).get("annotations") or {}
                port = str(annotations.get(METASERVER_PORT_ANNOTATION, ""))
                status = data.get("status")
                self._take_report(
                    node,
                    status if isinstance(status, dict) else {},
                    int(port) if port.isdigit() else None,
                )
            self._answer(node, msg, self._node_request(node, op))
            return True
        if r.resource_type == RT_NODEPATCH and op == OP_PATCH:
            data = msg.content_data()
            status = data.get("status") if isinstance(data, dict) else None
            self._take_report(node, status if isinstance(status, dict) else {}, None)
            self._answer(node, msg, self._node_request(node, OP_PATCH))
            return True
        if r.resource_type == RT_LEASE and op in (OP_INSERT, OP_UPDATE, OP_QUERY):
            if r.namespace != LEASE_NAMESPACE:
                return False
            data = msg.content_data()
            self._answer(node, msg, self._lease_request(node, op, data if isinstance(data, dict) else {}))
            return True
        return False

    def _take_report(self, node: str, status: dict[str, Any], port: Any) -> None:
        reported = {k: status[k] for k in _REPORTED_FIELDS if k in status}
        if reported:
            self.reported[node] = reported
        for c in status.get("conditions") or []:
            if isinstance(c, dict) and c.get("type") == "Ready":
                # The edge's own verdict (the kubelet's: not Ready until its runtime is up). An edge that
                # never says (KubeEdge's edgecore with edged off) is Ready while it is connected.
                self.edge_not_ready.pop(node, None)
                if c.get("status") == "False":
                    self.edge_not_ready[node] = (
                        str(c.get("reason") or "KubeletNotReady"),
                        str(c.get("message") or "the edge reports it is not ready"),
                    )
        if isinstance(port, int) and 0 < port < 65536:
            self.metaserver_ports[node] = port

    def _answer(self, node: str, msg: Message, work: Any) -> None:
        """Run ``work`` (a blocking call returning the object) off the session, then answer ``msg``."""

        async def run() -> None:
            try:
                reply = object_reply(msg, await self.kube.run(work))
            except Exception as exc:
                if not isinstance(exc, ApiError):
                    log.warning(
                        "node %s: %s %s failed: %s", node, msg.route.operation, msg.route.resource, exc
                    )
                reply = object_reply(msg, None, exc)
            self.hub.send_to_node(node, reply)

        task = asyncio.create_task(run(), name=f"node-request-{node}")
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _node_request(self, node: str, op: str) -> Any:
        def work() -> Obj | None:
            if op != OP_QUERY:
                self._write(node, "True" if self.hub.is_connected(node) else self.ready.get(node, "Unknown"))
            return self.kube.get(NODES, node)

        return work

    def _lease_request(self, node: str, op: str, lease: Obj) -> Any:
        def work() -> Obj | None:
            if op == OP_QUERY:
                found = self.kube.get(LEASES, node, LEASE_NAMESPACE)
                if found is None:
                    raise ApiError(404, f'leases.coordination.k8s.io "{node}" not found', "NotFound")
                return found
            md = dict(lease.get("metadata") or {})
            if md.get("name") != node or md.get("namespace", LEASE_NAMESPACE) != LEASE_NAMESPACE:
                raise ApiError(403, f"node {node} may only write its own Lease", "Forbidden")
            md["ownerReferences"] = [o for o in md.get("ownerReferences") or [] if o.get("uid")]
            obj = {**lease, "metadata": md}
            if op == OP_INSERT:
                return self.kube.create(LEASES, obj, LEASE_NAMESPACE)
            return self.kube.replace(LEASES, obj, LEASE_NAMESPACE)

        return work

    async def _connected(self, node: str) -> None:
        self.last_seen[node] = time.monotonic()
        self.request_write(node, "True")

    async def _disconnected(self, node: str) -> None:
        # The grace period runs from the node's last traffic, not from when its session ended: a
        # frozen node is closed only after the keepalive timeout (and the close handshake timeout).
        seen = self.hub.last_traffic(node)
        self.last_seen[node] = seen if seen is not None else time.monotonic()

    def _node_labels(self, node: str) -> dict[str, str]:
        labels = {EDGE_ROLE_LABEL: "", "node-role.kubernetes.io/agent": "", "kubernetes.io/hostname": node}
        info = self.reported.get(node, {}).get("nodeInfo") or {}
        if info.get("architecture"):
            labels["kubernetes.io/arch"] = info["architecture"]
        if info.get("operatingSystem"):
            labels["kubernetes.io/os"] = info["operatingSystem"]
        # The node name, not the machine's: KubeEdge's edged runs its kubelet with the hostname
        # override set to the node name, and the kubelet labels its Node with that.
        return labels

    def _node_annotations(self, node: str) -> dict[str, str]:
        port = self.metaserver_ports.get(node)
        return {METASERVER_PORT_ANNOTATION: str(port)} if port is not None else {}

    def _ensure_node(self, node: str) -> None:
        """Create the Node, or add the labels and annotations it lacks (only when not known to carry them)."""
        labels = self._node_labels(node)
        annotations = self._node_annotations(node)
        known = self.labels_written.get(node)
        known_annotations = self.annotations_written.get(node, {})
        if (
            known is not None
            and all(known.get(k) == v for k, v in labels.items())
            and all(known_annotations.get(k) == v for k, v in annotations.items())
        ):
            return
        if known is None:
            try:
                metadata = {"name": node, "labels": labels, "annotations": annotations}
                self.kube.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": metadata})
                self.labels_written[node] = labels
                self.annotations_written[node] = annotations
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise
        out = self.kube.patch(NODES, node, {"metadata": {"labels": labels, "annotations": annotations}})
        self.labels_written[node] = dict(out["metadata"].get("labels") or {})
        self.annotations_written[node] = dict(out["metadata"].get("annotations") or {})

    def _write(self, node: str, ready: str) -> None:
        """Write the Node's Ready condition and reported status (creating/labelling it if connected)."""
        now = _now()
        if ready == "True":
            self._ensure_node(node)
        previous = self.ready.get(node)
        reason, message = (
            ("EdgeReady", "edge node is connected to cloudcore")
            if ready == "True"
            else ("NodeStatusUnknown", f"edge node has been silent for more than {self.grace_period:g}s")
        )
        if ready == "True" and node in self.edge_not_ready:
            ready = "False"
            reason, message = self.edge_not_ready[node]
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
        except ApiError as exc:
            if exc.status != 404:
                raise
            # Deleted behind our back: recreate it while the node is connected.
            self.labels_written.pop(node, None)
            if ready != "True":
                return
            self._ensure_node(node)
            self.kube.patch(NODES, node, {"status": status}, sub="status")
        self.ready[node] = ready
        self.last_written[node] = time.monotonic()

    async def _monitor(self) -> None:
        tick = max(0.2, min(1.0, self.grace_period / 5))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for node in list(self.last_seen):
                session = self.hub.sessions.get(node)
                traffic = self.hub.last_traffic(node)
                if traffic is not None:
                    self.last_seen[node] = traffic
                seen = self.last_seen[node]
                silent = now - seen
                if node in self._writers:
                    continue
                if silent > self.grace_period:
                    if self.ready.get(node) != "Unknown":
                        log.warning("node %s silent for %.0fs: Ready=Unknown", node, silent)
                        self.request_write(node, "Unknown")
                elif session is not None and (
                    self.ready.get(node) != ("False" if node in self.edge_not_ready else "True")
                    or now - self.last_written.get(node, 0) > self.status_update_period
                ):
                    self.request_write(node, "True")


def _ready_status(node: Obj) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status", "Unknown"))
    return "Unknown"
