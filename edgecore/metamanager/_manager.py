"""metamanager: persist every object the cloud sends, then acknowledge it (after the commit)."""

from __future__ import annotations

import asyncio
import logging

from edgecore._router import ModuleRouter
from edgecore.metamanager._store import EdgeStore, Operation, Remove, Upsert, gvr_of
from kubeshore.logs import Throttled
from kubeshore.message import (
    ACK_OK,
    GROUP_RESOURCE,
    OP_DELETE,
    OP_ERROR,
    OP_INSERT,
    OP_PATCH,
    OP_RESPONSE,
    OP_UPDATE,
    SOURCE_METAMANAGER,
    Message,
    MessageError,
    parse_edge_resource,
)

log = logging.getLogger(__name__)
_throttled = Throttled(log)

_BATCH = 256

# apiVersion and kind by resource type, for objects sent without them: KubeEdge's cloud sends a deleted
# Device as its informer saw it, without apiVersion and kind.
_TYPE_META = {
    "device": ("devices.kubeedge.io/v1beta1", "Device"),
    "devicemodel": ("devices.kubeedge.io/v1beta1", "DeviceModel"),
    "pod": ("v1", "Pod"),
    "configmap": ("v1", "ConfigMap"),
    "secret": ("v1", "Secret"),
    "service": ("v1", "Service"),
    "endpoints": ("v1", "Endpoints"),
    "node": ("v1", "Node"),
    "endpointslice": ("discovery.k8s.io/v1", "EndpointSlice"),
}


class MetaManager:
    def __init__(self, store: EdgeStore, router: ModuleRouter) -> None:
        self.store = store
        self.router = router
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.applied = 0
        self.rejected = 0
        self.failed = 0  # messages not stored because the store could not write
        router.register(GROUP_RESOURCE, self.handle)

    async def handle(self, msg: Message) -> None:
        if msg.route.operation == OP_RESPONSE:
            # An answer to a request of ours that nobody waits for any more (late): nothing to store.
            log.debug("late response to %s %s ignored", msg.header.parent_msg_id, msg.route.resource)
            return
        self.queue.put_nowait(msg)

    def _operation(self, msg: Message) -> Operation:
        op = msg.route.operation
        try:
            res = parse_edge_resource(msg.route.resource, op)
        except MessageError as exc:
            raise ValueError(str(exc)) from exc
        obj = msg.content_data()
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
            raise ValueError("content is not a Kubernetes object")
        md = obj["metadata"]
        if not obj.get("kind") and res.resource_type in _TYPE_META:
            api_version, kind = _TYPE_META[res.resource_type]
            obj = {**obj, "apiVersion": obj.get("apiVersion") or api_version, "kind": kind}
        ns = md.get("namespace") or "null"
        if md.get("name") != res.name or ns != res.namespace:
            raise ValueError(
                f"resource {msg.route.resource!r} does not match the object {ns}/{md.get('name')}"
            )
        if res.resource_type != str(obj.get("kind", "")).lower():
            raise ValueError(f"resource type {res.resource_type!r} does not match kind {obj.get('kind')!r}")
        if op in (OP_INSERT, OP_UPDATE, OP_PATCH):
            rv_text = msg.header.resourceversion or md.get("resourceVersion") or "0"
            try:
                rv = int(rv_text)
            except ValueError as exc:
                raise ValueError(f"resourceversion {rv_text!r} is not a number") from exc
            return Upsert(obj, rv)
        if op == OP_DELETE:
            return Remove(gvr_of(obj), md.get("namespace"), md["name"], md.get("uid"))
        raise ValueError(f"operation {op!r} is not supported for resources")

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < _BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            # In a call of its own: the batch (up to 256 parsed objects, ~2 MB for Devices) is
            # freed when it returns instead of staying referenced until the next message arrives.
            await self._apply_batch(batch)
            del batch

    async def _apply_batch(self, batch: list[Message]) -> None:
        ops: list[Operation] = []
        accepted: list[Message] = []
        for msg in batch:
            try:
                ops.append(self._operation(msg))
                accepted.append(msg)
            except ValueError as exc:
                self.rejected += 1
                _throttled.warning(
                    f"refused/{msg.route.operation}",
                    "refused %s %.200s: %s",
                    msg.route.operation,
                    msg.route.resource,
                    exc,
                )
                reply = msg.response(f"refused: {exc}", source=SOURCE_METAMANAGER)
                reply.route.operation = OP_ERROR
                await self.router.to_cloud(reply, queue_offline=False)
        if not ops:
            return
        try:
            await self.store.apply(ops)
        except Exception as exc:
            # Nothing is acknowledged: the store stays as it was and the cloud sends them again;
            # it is told why, so it keeps the session (its messages are answered, just not stored).
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            self.failed += len(ops)
            _throttled.error("commit", "store commit failed for %d messages: %s", len(ops), reason)
            for msg in accepted:
                reply = msg.response(
                    f"unavailable: the edge store cannot write: {reason}", source=SOURCE_METAMANAGER
                )
                reply.route.operation = OP_ERROR
                await self.router.to_cloud(reply, queue_offline=False)
            return
        self.applied += len(ops)
        for msg in accepted:
            await self.router.to_cloud(msg.response(ACK_OK, source=SOURCE_METAMANAGER), queue_offline=False)
