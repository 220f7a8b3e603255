"""Acknowledged object versions per node, kept durably as ObjectSync / ClusterObjectSync (section 3.6).

The in-memory map is authoritative while cloudcore runs; writes to the API are coalesced and flushed
in the background (``flush_interval``), so a fan-out to thousands of nodes never waits on the API
server. After a crash, versions acknowledged in the last flush interval may be sent once more; the
edge stores by resourceVersion, so a repeat is harmless.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cloudcore._resources import CLUSTEROBJECTSYNCS, OBJECTSYNCS
from crds import ClusterObjectSync, ObjectMeta, ObjectSync, ObjectSyncSpec
from kubeclient import ApiError, Kube, Obj

log = logging.getLogger(__name__)

_MAX_DEFER = 10.0


@dataclass(slots=True)
class SyncedObject:
    uid: str
    api_version: str
    kind: str
    namespace: str | None
    name: str
    resource_version: int

    @classmethod
    def of(cls, obj: Obj) -> SyncedObject:
        md = obj["metadata"]
        return cls(
            uid=md["uid"],
            api_version=obj.get("apiVersion", "v1"),
            kind=obj.get("kind", ""),
            namespace=md.get("namespace") or None,
            name=md["name"],
            resource_version=int(md.get("resourceVersion") or 0),
        )


def sync_name(node: str, uid: str) -> str:
    return f"{node}.{uid}"


class ObjectSyncStore:
    def __init__(
        self,
        kube: Kube | None,
        *,
        flush_interval: float = 0.2,
        writers: int = 8,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.kube = kube
        # While cloudhub is fanning out, writer threads would take the GIL from the event loop
        # that sends the messages: writes wait for a quiet moment (at most _MAX_DEFER seconds).
        self.busy = busy or (lambda: False)
        self.flush_interval = flush_interval
        self.writers = writers
        self.acked: dict[str, dict[str, SyncedObject]] = {}
        self._dirty: dict[tuple[str, str], tuple[SyncedObject, bool]] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        self.write_errors = 0
        self._writing = 0
        self._persisted: set[tuple[str, str]] = set()

    async def load(self) -> None:
        if self.kube is None:
            return
        for res in (OBJECTSYNCS, CLUSTEROBJECTSYNCS):
            items, _ = await self.kube.run(self.kube.list, res)
            for item in items:
                node, _, uid = item["metadata"]["name"].rpartition(".")
                spec = item.get("spec") or {}
                status = item.get("status") or {}
                try:
                    rv = int(status.get("objectResourceVersion") or 0)
                except ValueError:
                    rv = 0
                self._persisted.add((node, uid))
                self.acked.setdefault(node, {})[uid] = SyncedObject(
                    uid=uid,
                    api_version=spec.get("objectAPIVersion", ""),
                    kind=spec.get("objectKind", ""),
                    namespace=item["metadata"].get("namespace") or None,
                    name=spec.get("objectName", ""),
                    resource_version=rv,
                )
        log.info("loaded %d acknowledged objects for %d nodes", self.count(), len(self.acked))

    @property
    def pending_writes(self) -> int:
        return len(self._dirty) + self._writing

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())

    def get(self, node: str, uid: str) -> SyncedObject | None:
        return self.acked.get(node, {}).get(uid)

    def of_node(self, node: str) -> dict[str, SyncedObject]:
        return self.acked.get(node, {})

    def record(self, node: str, synced: SyncedObject) -> None:
        current = self.get(node, synced.uid)
        if current is not None and current.resource_version >= synced.resource_version:
            return
        self.acked.setdefault(node, {})[synced.uid] = synced
        self._mark(node, synced, delete=False)

    def forget(self, node: str, uid: str) -> None:
        synced = self.acked.get(node, {}).pop(uid, None)
        if synced is not None:
            self._mark(node, synced, delete=True)

    def _mark(self, node: str, synced: SyncedObject, *, delete: bool) -> None:
        if self.kube is None:
            return
        self._dirty[(node, synced.uid)] = (synced, delete)
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_loop(), name="objectsync-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def flushed(self) -> None:
        """Wait until every recorded change is in the API (tests, orderly shutdown)."""
        await self._idle.wait()

    async def _quiet(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        for _ in itertools.count():
            if not self.busy() or loop.time() >= until:
                return
            await asyncio.sleep(0.1)

    async def _flush_loop(self) -> None:
        sem = asyncio.Semaphore(self.writers)
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.flush_interval)
            batch, self._dirty = self._dirty, {}
            self._writing = len(batch)
            # A busy cloudhub delays a batch by at most _MAX_DEFER, never starves it.
            until = asyncio.get_running_loop().time() + _MAX_DEFER

            async def write(node: str, synced: SyncedObject, delete: bool, until: float) -> None:
                async with sem:
                    await self._quiet(until)
                    try:
                        assert self.kube is not None
                        await self.kube.run(self._write, node, synced, delete)
                        self.writes += 1
                    except Exception as exc:
                        self.write_errors += 1
                        log.warning(
                            "ObjectSync %s: write failed (%s); will retry", sync_name(node, synced.uid), exc
                        )
                        self._dirty.setdefault((node, synced.uid), (synced, delete))
                        self._wake.set()
                    finally:
                        self._writing -= 1

            await asyncio.gather(*(write(n, s, d, until) for (n, _), (s, d) in batch.items()))
            if not self._dirty:
                self._idle.set()
            else:
                await asyncio.sleep(1.0)

    def _write(self, node: str, synced: SyncedObject, delete: bool) -> None:
        assert self.kube is not None
        res = OBJECTSYNCS if synced.namespace else CLUSTEROBJECTSYNCS
        name = sync_name(node, synced.uid)
        key = (node, synced.uid)
        if delete:
            self.kube.delete(res, name, synced.namespace)
            self._persisted.discard(key)
            return
        status = {"status": {"objectResourceVersion": str(synced.resource_version)}}
        if key in self._persisted:
            try:
                self.kube.patch(res, name, status, synced.namespace, sub="status")
                return
            except ApiError as exc:
                if exc.status != 404:
                    raise
        spec = ObjectSyncSpec(
            object_api_version=synced.api_version, object_kind=synced.kind, object_name=synced.name
        )
        model = ObjectSync if synced.namespace else ClusterObjectSync
        body = model(metadata=ObjectMeta(name=name, namespace=synced.namespace), spec=spec).to_dict()
        try:
            self.kube.create(res, body, synced.namespace)
        except ApiError as exc:
            if exc.status != 409:
                raise
        self.kube.patch(res, name, status, synced.namespace, sub="status")
        self._persisted.add(key)

    async def forget_node(self, node: str) -> None:
        for uid in list(self.acked.get(node, {})):
            self.forget(node, uid)
        self.acked.pop(node, None)
