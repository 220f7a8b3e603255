"""Node-group views of EndpointSlices and Endpoints (KubeEdge's endpoint filters, issue 7).

What each node holds is decided by ``nodegroup.endpointfilter`` and applied through
``EdgeController.add_filter``, so the first sync, every update and every resync send the filtered
view. A view can also change while the object does not: a node joins, leaves or changes group, a
Service gains or loses the ``range-nodegroup`` annotation, a node's MetaServer port changes, or a
node reconnects after any of that. Those are re-sent here with ``force=True``, because the syncer
alone would skip a version the node already acknowledged (the gap of KubeEdge issue #4660).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable

from cloudcore.cloudhub import CloudHub
from cloudcore.edgecontroller._objects import EdgeController
from cloudcore.sync import NodeSyncer
from kubeclient import ENDPOINTS, ENDPOINTSLICES, NODES, SERVICES, Informer, Kube, Obj
from nodegroup.endpointfilter import (
    BELONGING_TO_LABEL,
    filter_endpoint_slice,
    filter_endpoints,
    is_group_scoped,
    owning_service_name,
)

log = logging.getLogger(__name__)

METASERVER_PORT_ANNOTATION = "kubeshore.io/metaserver-port"
DEFAULT_METASERVER_PORT = 10550
_VIEWED_KINDS = ("EndpointSlice", "Endpoints")
FULL = ""  # fingerprint of an unfiltered view


def _fingerprint(view: Obj) -> str:
    parts = {key: view.get(key) for key in ("endpoints", "subsets", "ports")}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def _group(node: Obj | None) -> str | None:
    if node is None:
        return None
    labels = node.get("metadata", {}).get("labels") or {}
    group = labels.get(BELONGING_TO_LABEL)
    return str(group) if group else None


def _metaserver_port(node: Obj | None) -> int:
    annotations = (node or {}).get("metadata", {}).get("annotations") or {}
    try:
        port = int(annotations.get(METASERVER_PORT_ANNOTATION, DEFAULT_METASERVER_PORT))
    except (TypeError, ValueError):
        return DEFAULT_METASERVER_PORT
    return port if 0 < port < 65536 else DEFAULT_METASERVER_PORT


def _is_default_kubernetes(obj: Obj) -> bool:
    metadata = obj.get("metadata", {})
    return metadata.get("namespace") == "default" and owning_service_name(obj) == "kubernetes"


class NodeGroupViews:
    """Filters EndpointSlices/Endpoints per node and re-sends them when a node's view changes."""

    def __init__(self, kube: Kube, hub: CloudHub, syncer: NodeSyncer, edgecontroller: EdgeController) -> None:
        self.hub = hub
        self.syncer = syncer
        self.edgecontroller = edgecontroller
        self.nodes = Informer(kube, NODES, self._on_node)
        # node -> uid -> (resourceVersion, fingerprint) of the view last handed to the syncer, so a
        # view is re-sent only when it really changed. Nodes connected since this process started
        # are in ``_seen``; before that, what a node holds is unknown.
        self._held: dict[str, dict[str, tuple[str, str]]] = {}
        self._seen: set[str] = set()
        edgecontroller.add_filter(self.view)
        edgecontroller.add_listener(SERVICES.kind, self._on_service)
        hub.on_connect(self._connected)

    async def start(self) -> None:
        await self.nodes.start()
        await self.nodes.wait_synced()

    async def stop(self) -> None:
        await self.nodes.stop()

    # -- the view ---------------------------------------------------------------------------
    def group_of(self, node: str) -> str | None:
        return _group(self.nodes.cache.get(("", node)))

    def _service(self, obj: Obj) -> Obj | None:
        name = owning_service_name(obj)
        if not name:
            return None
        namespace = obj.get("metadata", {}).get("namespace") or ""
        return self.edgecontroller.informers[SERVICES.kind].cache.get((namespace, name))

    def _compute(self, node: str, obj: Obj) -> tuple[Obj, str]:
        """The view of an EndpointSlice/Endpoints for ``node`` and its fingerprint (FULL: unfiltered)."""
        port: int | None = None
        service: Obj | None = None
        if _is_default_kubernetes(obj):
            port = _metaserver_port(self.nodes.cache.get(("", node)))
        else:
            service = self._service(obj)
            if not is_group_scoped(service):
                return obj, FULL
        if obj.get("kind") == "EndpointSlice":
            out = filter_endpoint_slice(obj, service, node, self.group_of, metaserver_port=port)
        else:
            out = filter_endpoints(obj, service, node, self.group_of, metaserver_port=port)
        return out, _fingerprint(out)

    def view(self, node: str, obj: Obj) -> Obj | None:
        """``obj`` as ``node`` should hold it; the same object when the node groups change nothing."""
        if obj.get("kind") not in _VIEWED_KINDS:
            return obj
        out, fingerprint = self._compute(node, obj)
        rv = str(obj["metadata"].get("resourceVersion", ""))
        held = self._held.setdefault(node, {})
        uid = obj["metadata"].get("uid", "")
        # The first view of a version is the one edgecontroller sends; later calls for the same
        # version (resyncs) are skipped by the syncer, so they must not overwrite the record.
        if held.get(uid, ("", ""))[0] != rv:
            held[uid] = (rv, fingerprint)
        return out

    # -- re-sends when a view changes without its object --------------------------------------
    def _viewed_objects(self, service: Obj | None = None) -> list[Obj]:
        """Every EndpointSlice/Endpoints (or one Service's)."""
        out: list[Obj] = []
        for res in (ENDPOINTSLICES, ENDPOINTS):
            for obj in list(self.edgecontroller.informers[res.kind].cache.values()):
                if service is not None:
                    md, smd = obj.get("metadata", {}), service.get("metadata", {})
                    if md.get("namespace") != smd.get("namespace") or owning_service_name(obj) != smd.get(
                        "name"
                    ):
                        continue
                out.append(obj)
        return out

    def _refresh(self, nodes: Iterable[str], objects: list[Obj], *, unknown: bool = False) -> int:
        """Force-send each view that differs from the one ``nodes`` were last given.

        ``unknown``: what the node holds is not known (first connect since this process started),
        so every filtered view is sent.
        """
        sent = 0
        for node in nodes:
            if not self.hub.is_connected(node):
                continue  # its views are refreshed when it connects
            held = self._held.setdefault(node, {})
            for obj in objects:
                out, fingerprint = self._compute(node, obj)
                rv = str(obj["metadata"].get("resourceVersion", ""))
                uid = obj["metadata"].get("uid", "")
                last = held.get(uid, (rv, FULL))
                stale = fingerprint != FULL if unknown else last != (rv, fingerprint)
                if stale and self.syncer.push(node, out, force=True):
                    held[uid] = (rv, fingerprint)
                    sent += 1
        return sent

    async def _connected(self, node: str) -> None:
        # Its group, its peers' groups or its MetaServer port may have changed while it was away,
        # or while cloudcore was down; views of unchanged versions would otherwise not be re-sent.
        first = node not in self._seen
        self._seen.add(node)
        sent = self._refresh([node], self._viewed_objects(), unknown=first)
        log.debug("node %s: re-sent %d node-group views on connect", node, sent)

    async def _on_node(self, event: str, obj: Obj, old: Obj | None) -> None:
        name = obj["metadata"]["name"]
        new = None if event == "DELETED" else obj
        old_group, new_group = _group(old), _group(new)
        if new is None:
            self._held.pop(name, None)
            self._seen.discard(name)
        if old_group != new_group:
            # The node itself sees another group, and its endpoints move between the old and new
            # group's views; nodes in no group form a group of their own.
            affected = {
                peer
                for peer in self.hub.connected_nodes()
                if peer == name or self.group_of(peer) in (old_group, new_group)
            }
            sent = self._refresh(sorted(affected), self._viewed_objects())
            log.info("node %s moved from group %s to %s: re-sent %d views", name, old_group, new_group, sent)
        elif new is not None and old is not None and _metaserver_port(old) != _metaserver_port(new):
            self._refresh([name], [o for o in self._viewed_objects() if _is_default_kubernetes(o)])

    def _on_service(self, event: str, obj: Obj, old: Obj | None) -> None:
        was = is_group_scoped(old) if event != "ADDED" else False
        now = is_group_scoped(obj) if event != "DELETED" else False
        if was != now:
            sent = self._refresh(self.hub.connected_nodes(), self._viewed_objects(obj))
            md = obj.get("metadata", {})
            log.info(
                "service %s/%s group scope %s: re-sent %d views",
                md.get("namespace"),
                md.get("name"),
                now,
                sent,
            )
