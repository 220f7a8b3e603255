"""edgecontroller: which Kubernetes objects each edge node needs, and telling the syncer about changes.

A node needs its own Node (as KubeEdge's edgecontroller sends it: labels added in the cloud reach the
edge's copy, against which KubeEdge's kubelet admits Pods with a ``nodeSelector``), the pods bound to it
(``spec.nodeName``), the configmaps and secrets those pods reference, and the services, endpoints and
endpointslices (which every node gets, through the per-node filters that node groups add).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterator

from cloudcore.cloudhub import CloudHub
from cloudcore.sync import NodeSyncer
from kubeclient import (
    CONFIGMAPS,
    ENDPOINTS,
    ENDPOINTSLICES,
    NODES,
    PODS,
    SECRETS,
    SERVICES,
    Informer,
    Kube,
    Obj,
    Resource,
)
from kubeshore.message import SOURCE_EDGECONTROLLER

log = logging.getLogger(__name__)

ObjectFilter = Callable[[str, Obj], Obj | None]
"""``filter(node, obj)`` returns the object as ``node`` should see it (possibly a modified copy),
or None when the node must not have it. Filters run for every object sent by edgecontroller."""

ChangeListener = Callable[[str, Obj, Obj | None], None]
"""``listener(event, obj, old)``: ADDED/MODIFIED/DELETED of an object edgecontroller watches."""

BROADCAST = (SERVICES, ENDPOINTS, ENDPOINTSLICES)
# What a node's edge decides by: labels and taints for admission, allocatable for room (the first
# version of a Node, before its edge reported, has none). Status otherwise changes with every heartbeat.
_NODE_PARTS = (("metadata", "labels"), ("metadata", "annotations"), ("spec",), ("status", "allocatable"))
RefKey = tuple[str, str, str]  # (kind, namespace, name)


def pod_references(pod: Obj) -> set[RefKey]:
    """ConfigMaps and Secrets a pod uses (volumes, projected volumes, env, envFrom, pull secrets)."""
    ns = pod["metadata"].get("namespace") or "default"
    spec = pod.get("spec") or {}
    refs: set[RefKey] = set()

    def cm(name: str | None) -> None:
        if name:
            refs.add(("ConfigMap", ns, name))

    def secret(name: str | None) -> None:
        if name:
            refs.add(("Secret", ns, name))

    for vol in spec.get("volumes") or []:
        cm((vol.get("configMap") or {}).get("name"))
        secret((vol.get("secret") or {}).get("secretName"))
        for src in (vol.get("projected") or {}).get("sources") or []:
            cm((src.get("configMap") or {}).get("name"))
            secret((src.get("secret") or {}).get("name"))
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(group) or []:
            for env in c.get("env") or []:
                vf = env.get("valueFrom") or {}
                cm((vf.get("configMapKeyRef") or {}).get("name"))
                secret((vf.get("secretKeyRef") or {}).get("name"))
            for ef in c.get("envFrom") or []:
                cm((ef.get("configMapRef") or {}).get("name"))
                secret((ef.get("secretRef") or {}).get("name"))
    for ips in spec.get("imagePullSecrets") or []:
        secret(ips.get("name"))
    return refs


class EdgeController:
    def __init__(self, kube: Kube, hub: CloudHub, syncer: NodeSyncer) -> None:
        self.kube = kube
        self.hub = hub
        self.syncer = syncer
        self.filters: list[ObjectFilter] = []
        self.listeners: dict[str, list[ChangeListener]] = {}
        self.pods_on: dict[str, dict[tuple[str, str], Obj]] = {}
        #: the version of each Node its edge is given (see ``_on_node``)
        self.node_views: dict[str, Obj] = {}
        self.refs: dict[RefKey, dict[str, int]] = {}
        self.informers: dict[str, Informer] = {}
        for res in (NODES, PODS, CONFIGMAPS, SECRETS, *BROADCAST):
            self.informers[res.kind] = Informer(kube, res, self._handler(res))
        syncer.add_source(SOURCE_EDGECONTROLLER, self.objects_for)
        hub.on_connect(self._connected)

    def add_listener(self, kind: str, fn: ChangeListener) -> None:
        """Also tell ``fn(event, obj, old)`` of every change to ``kind``, after edgecontroller handled it
        (node groups re-send views when a Service's scope changes)."""
        self.listeners.setdefault(kind, []).append(fn)

    def add_filter(self, fn: ObjectFilter) -> None:
        """Hook a per-node view (node groups: EndpointSlice/Endpoints filtering, issue 7)."""
        self.filters.append(fn)

    async def start(self) -> None:
        for inf in self.informers.values():
            await inf.start()
        for inf in self.informers.values():
            await inf.wait_synced()

    async def stop(self) -> None:
        for inf in self.informers.values():
            await inf.stop()

    async def _connected(self, node: str) -> None:
        sent, deleted = self.syncer.resync(node)
        log.info("node %s: resync sent %d objects, %d deletions", node, sent, deleted)

    def view(self, node: str, obj: Obj) -> Obj | None:
        for f in self.filters:
            got = f(node, obj)
            if got is None:
                return None
            obj = got
        return obj

    def _cached(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.informers[kind].cache.get((namespace, name))

    def objects_for(self, node: str) -> Iterator[Obj]:
        own = self.node_views.get(node)
        if own is not None:
            yield own
        refs: set[RefKey] = set()
        for pod in self.pods_on.get(node, {}).values():
            v = self.view(node, pod)
            if v is not None:
                yield v
            refs |= pod_references(pod)
        for kind, ns, name in refs:
            obj = self._cached(kind, ns, name)
            if obj is not None:
                v = self.view(node, obj)
                if v is not None:
                    yield v
        for res in BROADCAST:
            for obj in self.informers[res.kind].cache.values():
                v = self.view(node, obj)
                if v is not None:
                    yield v

    def _handler(self, res: Resource) -> Callable[[str, Obj, Obj | None], Awaitable[None]]:
        async def handle(event: str, obj: Obj, old: Obj | None) -> None:
            if res is NODES:
                self._on_node(event, obj, old)
            elif res is PODS:
                self._on_pod(event, obj, old)
            elif res in (CONFIGMAPS, SECRETS):
                self._on_referenced(event, obj)
            else:
                self._on_broadcast(event, obj)
            for listener in self.listeners.get(res.kind, ()):
                listener(event, obj, old)

        return handle

    def _send(self, node: str, obj: Obj, content_json: str | None = None) -> None:
        v = self.view(node, obj)
        if v is None:
            self.syncer.retract(node, obj)
        else:
            self.syncer.push(node, v, content_json=content_json if v is obj else None)

    def _on_node(self, event: str, node: Obj, old: Obj | None) -> None:
        name = node["metadata"]["name"]
        if event == "DELETED":
            self.node_views.pop(name, None)
            self.syncer.retract(name, node)
            return
        # The version sent (and resynced) stays the last one that changed what the edge decides by.
        held = self.node_views.get(name)
        if held is not None and all(_node_part(node, *p) == _node_part(held, *p) for p in _NODE_PARTS):
            return
        self.node_views[name] = node
        self.syncer.push(name, node)

    def _on_pod(self, event: str, pod: Obj, old: Obj | None) -> None:
        md = pod["metadata"]
        key = (md.get("namespace") or "default", md["name"])
        new_node = "" if event == "DELETED" else (pod.get("spec") or {}).get("nodeName") or ""
        old_node = ((old or {}).get("spec") or {}).get("nodeName") or ""
        old_refs = pod_references(old) if old is not None and old_node else set()
        new_refs = pod_references(pod) if new_node else set()
        if old_node and (old_node != new_node):
            self.pods_on.get(old_node, {}).pop(key, None)
            self.syncer.retract(old_node, old or pod)
            self._unref(old_node, old_refs)
            old_refs = set()
        if not new_node:
            if event == "DELETED":
                self.syncer.retract_everywhere(pod)
            return
        self.pods_on.setdefault(new_node, {})[key] = pod
        self._ref(new_node, new_refs - old_refs)
        self._unref(new_node, old_refs - new_refs)
        self._send(new_node, pod)

    def _ref(self, node: str, refs: set[RefKey]) -> None:
        for ref in refs:
            counts = self.refs.setdefault(ref, {})
            counts[node] = counts.get(node, 0) + 1
            if counts[node] == 1:
                obj = self._cached(*ref)
                if obj is not None:
                    self._send(node, obj)

    def _unref(self, node: str, refs: set[RefKey]) -> None:
        for ref in refs:
            counts = self.refs.get(ref, {})
            if counts.get(node, 0) <= 1:
                counts.pop(node, None)
                obj = self._cached(*ref)
                still = any(ref in pod_references(p) for p in self.pods_on.get(node, {}).values())
                if obj is not None and not still:
                    self.syncer.retract(node, obj)
            else:
                counts[node] -= 1

    def _on_referenced(self, event: str, obj: Obj) -> None:
        md = obj["metadata"]
        ref = (obj.get("kind", ""), md.get("namespace") or "default", md["name"])
        if event == "DELETED":
            self.syncer.retract_everywhere(obj)
            return
        content = json.dumps(obj, separators=(",", ":"))
        for node in list(self.refs.get(ref, {})):
            self._send(node, obj, content)

    def _on_broadcast(self, event: str, obj: Obj) -> None:
        if event == "DELETED":
            self.syncer.retract_everywhere(obj)
            return
        content = json.dumps(obj, separators=(",", ":"))
        for node in self.hub.connected_nodes():
            self._send(node, obj, content)


def _node_part(node: Obj, *path: str) -> object:
    value: object = node
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value
