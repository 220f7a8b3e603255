"""Reliable downstream sync: send each node the objects it needs, once per version, with acks.

Controllers tell the syncer what changed (:meth:`NodeSyncer.push`, :meth:`NodeSyncer.retract`) and
register an :data:`ObjectSource` saying which objects a node needs now; on connect and
periodically the syncer compares that with what the node acknowledged (``ObjectSyncStore``) and
sends only the difference: newer versions, and deletes for objects the node has but no longer
needs or that no longer exist.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable

from cloudcore.cloudhub import CloudHub
from cloudcore.sync._store import ObjectSyncStore, SyncedObject
from kubeclient import Obj
from kubeshore.message import (
    GROUP_RESOURCE,
    OP_DELETE,
    OP_INSERT,
    OP_UPDATE,
    SOURCE_EDGECONTROLLER,
    edge_resource,
    encode_with_raw_content,
)

log = logging.getLogger(__name__)

ObjectSource = Callable[[str], Iterable[Obj]]
"""``source(node)`` yields every object (full JSON dict with apiVersion/kind) the node needs now."""

_DELETING = -1


def resource_type_of(obj: Obj | SyncedObject) -> str:
    kind = obj.kind if isinstance(obj, SyncedObject) else obj.get("kind", "")
    return kind.lower()


# Deleted objects kept whole, so that a node that was away when one was deleted still gets the whole
# object in its delete after reconnecting (KubeEdge's edgecore finds a Device's mapper through its
# spec). Bounded: beyond it such a delete carries the object's identity only.
_TOMBSTONES = 1000


class NodeSyncer:
    def __init__(self, hub: CloudHub, store: ObjectSyncStore) -> None:
        self.hub = hub
        self.store = store
        self.sources: list[tuple[str, ObjectSource]] = []
        self.inflight: dict[str, dict[str, int]] = {}
        self.tombstones: OrderedDict[str, Obj] = OrderedDict()
        hub.on_disconnect(self._disconnected)

    def add_source(self, module: str, source: ObjectSource) -> None:
        """Register what a controller (route source ``module``) wants on each node."""
        self.sources.append((module, source))

    async def _disconnected(self, node: str) -> None:
        self.inflight.pop(node, None)

    def desired(self, node: str) -> dict[str, tuple[str, Obj]]:
        out: dict[str, tuple[str, Obj]] = {}
        for module, source in self.sources:
            for obj in source(node):
                out[obj["metadata"]["uid"]] = (module, obj)
        return out

    def push(
        self,
        node: str,
        obj: Obj,
        *,
        module: str = SOURCE_EDGECONTROLLER,
        content_json: str | None = None,
        force: bool = False,
        on_ack: Callable[[], None] | None = None,
    ) -> bool:
        """Send ``obj`` to ``node`` if the node has not acknowledged this or a newer version.

        ``content_json`` is ``obj`` already encoded (a fan-out encodes once); ``force`` resends even
        an acknowledged version (e.g. when a per-node filter changed what the node should see);
        ``on_ack`` runs once the node acknowledged this message.
        """
        if not self.hub.is_connected(node):
            return False
        md = obj["metadata"]
        uid = md["uid"]
        rv = int(md.get("resourceVersion") or 0)
        acked = self.store.get(node, uid)
        inflight = self.inflight.setdefault(node, {})
        if not force:
            if acked is not None and acked.resource_version >= rv:
                return False
            pending = inflight.get(uid)
            if pending is not None and (pending == _DELETING or pending >= rv):
                return False
        op = OP_UPDATE if acked is not None else OP_INSERT
        rtype = resource_type_of(obj)
        msg_id = str(uuid.uuid4())
        frame = encode_with_raw_content(
            msg_id=msg_id,
            source=module,
            group=GROUP_RESOURCE,
            operation=op,
            resource=edge_resource(md.get("namespace"), rtype, md["name"]),
            resourceversion=str(rv),
            content_json=content_json if content_json is not None else json.dumps(obj, separators=(",", ":")),
        )
        synced = SyncedObject.of(obj)

        def acked_cb() -> None:
            self.store.record(node, synced)
            if self.inflight.get(node, {}).get(uid) == rv:
                del self.inflight[node][uid]
            if on_ack is not None:
                on_ack()

        if self.hub.send_to_node(node, frame, msg_id=msg_id, key=uid, on_ack=acked_cb):
            inflight[uid] = rv
            self.hub.count_object_sent(node, rtype, op)
            return True
        return False

    def acknowledged(self, node: str, obj: Obj) -> bool:
        """Whether ``node`` acknowledged this version of ``obj`` (or a newer one)."""
        acked = self.store.get(node, obj["metadata"]["uid"])
        return acked is not None and acked.resource_version >= int(
            obj["metadata"].get("resourceVersion") or 0
        )

    def retract(self, node: str, ref: Obj | SyncedObject, *, module: str = SOURCE_EDGECONTROLLER) -> bool:
        """Delete an object from ``node`` if the node has (or is being sent) it."""
        synced = ref if isinstance(ref, SyncedObject) else SyncedObject.of(ref)
        uid = synced.uid
        if isinstance(ref, dict):
            self._remember(ref)
        else:
            ref = self.tombstones.get(uid, ref)
        if not self.hub.is_connected(node):
            return False
        inflight = self.inflight.setdefault(node, {})
        if self.store.get(node, uid) is None and uid not in inflight:
            return False
        if inflight.get(uid) == _DELETING:
            return False
        rtype = resource_type_of(synced)
        msg_id = str(uuid.uuid4())
        content: Obj
        if isinstance(ref, dict):
            # The whole object, as KubeEdge's cloud sends it: its edge finds a deleted Device's mapper
            # through spec.protocol.
            content = {**ref, "apiVersion": synced.api_version, "kind": synced.kind}
        else:
            content = {
                "apiVersion": synced.api_version,
                "kind": synced.kind,
                "metadata": {
                    "name": synced.name,
                    "uid": uid,
                    **({"namespace": synced.namespace} if synced.namespace else {}),
                },
            }
        frame = encode_with_raw_content(
            msg_id=msg_id,
            source=module,
            group=GROUP_RESOURCE,
            operation=OP_DELETE,
            resource=edge_resource(synced.namespace, rtype, synced.name),
            resourceversion="",
            content_json=json.dumps(content, separators=(",", ":")),
        )

        def acked_cb() -> None:
            self.store.forget(node, uid)
            if self.inflight.get(node, {}).get(uid) == _DELETING:
                del self.inflight[node][uid]

        if self.hub.send_to_node(node, frame, msg_id=msg_id, key=uid, on_ack=acked_cb):
            inflight[uid] = _DELETING
            self.hub.count_object_sent(node, rtype, OP_DELETE)
            return True
        return False

    def _remember(self, obj: Obj) -> None:
        uid = obj["metadata"]["uid"]
        self.tombstones[uid] = obj
        self.tombstones.move_to_end(uid)
        while len(self.tombstones) > _TOMBSTONES:
            self.tombstones.popitem(last=False)

    def retract_everywhere(self, obj: Obj) -> int:
        """Delete an object that is gone from the cluster from every connected node that has it."""
        uid = obj["metadata"]["uid"]
        self._remember(obj)
        n = 0
        for node in self.hub.connected_nodes():
            if self.store.get(node, uid) is not None or uid in self.inflight.get(node, {}):
                n += self.retract(node, obj)
        return n

    def resync(self, node: str) -> tuple[int, int]:
        """Bring ``node`` to the desired state; returns (sent, deleted)."""
        desired = self.desired(node)
        sent = sum(self.push(node, obj, module=module) for module, obj in desired.values())
        deleted = 0
        for uid, synced in list(self.store.of_node(node).items()):
            if uid not in desired:
                deleted += self.retract(node, synced)
        return sent, deleted

    async def resync_loop(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            for node in self.hub.connected_nodes():
                try:
                    self.resync(node)
                except Exception:
                    log.exception("periodic resync of node %s failed", node)
                await asyncio.sleep(0)
