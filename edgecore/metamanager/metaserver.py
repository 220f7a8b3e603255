"""MetaServer: a read-only Kubernetes API of the node's own objects on 127.0.0.1 (default 10550).

It is ``kubeapi`` (the same API layer as the embedded API server) over a read-only view of the edge
store, so kubectl and in-cluster clients on the edge can get, list (with label and field selectors)
and watch what the node holds, also while the cloud is away. Objects keep the cloud's content; their
``metadata.resourceVersion`` is the edge's own change counter, so watches resume correctly whatever
order the cloud delivered changes in.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
from typing import Any

from aiohttp import web

from edgecore.metamanager._store import Change, EdgeStore, gvr_of
from kubeapi import KubeAPI, ListOptions, ListPage, Registry, ResourceType, Selector, StoredObject, WatchEvent
from kubeapi.builtins import builtin_types
from kubeapi.errors import gone, method_not_allowed
from kubeapi.resources import READ_VERBS
from kubeapi.store import decoded

log = logging.getLogger(__name__)

_EVENT_LOG = 10_000

# KubeEdge kinds an edge node receives besides the built-in ones; other kinds are added when
# first seen.
_DEVICE_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("devices.kubeedge.io", "v1beta1", "Device", "devices"),
    ("devices.kubeedge.io", "v1beta1", "DeviceModel", "devicemodels"),
)


def _served_types() -> list[ResourceType]:
    """The built-in types (with kubectl's columns, as the API server serves them) plus device kinds."""
    types = [dataclasses.replace(rt, verbs=READ_VERBS) for rt in builtin_types()]
    types += [
        _resource_type(group, version, kind, plural, True) for group, version, kind, plural in _DEVICE_KINDS
    ]
    return types


def _resource_type(group: str, version: str, kind: str, plural: str, namespaced: bool) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        verbs=READ_VERBS,
    )


class _Watch:
    def __init__(self, owner: EdgeView, key: str, namespace: str | None, backlog: list[WatchEvent]) -> None:
        self.owner = owner
        self.key = key
        self.namespace = namespace
        self.events: collections.deque[WatchEvent] = collections.deque(backlog)
        self.wake = asyncio.Event()
        self.closed = False

    def offer(self, key: str, event: WatchEvent) -> None:
        if key == self.key and (self.namespace is None or event.object.namespace == self.namespace):
            self.events.append(event)
            self.wake.set()

    async def next_batch(self, max_wait: float | None) -> list[WatchEvent] | None:
        if self.closed:
            return None
        if not self.events:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), max_wait)
            except TimeoutError:
                return []
            if self.closed:
                return None
        out = list(self.events)
        self.events.clear()
        return out

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        self.owner.watches.discard(self)


class EdgeView:
    """kubeapi ``Store`` over the edge store's contents: read-only, kept current by store changes."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], StoredObject]] = {}
        self.log: collections.deque[tuple[int, str, WatchEvent]] = collections.deque(maxlen=_EVENT_LOG)
        self.oldest = 0
        self.watches: set[_Watch] = set()

    def _type_for(self, obj: dict[str, Any]) -> ResourceType:
        api_version = obj.get("apiVersion") or "v1"
        group, _, version = api_version.rpartition("/")
        kind = obj.get("kind", "")
        rt = self.registry.by_kind(group, version, kind)
        if rt is None:
            plural = gvr_of(obj).rsplit("/", 1)[1]
            rt = _resource_type(group, version, kind, plural, bool(obj.get("metadata", {}).get("namespace")))
            self.registry.add(rt)
        return rt

    def apply(self, change: Change) -> None:
        obj = change.obj
        rt = self._type_for(obj)
        key = rt.group_resource
        md = obj.get("metadata") or {}
        at = (md.get("namespace") or "", md.get("name") or "")
        self.rv += 1
        shown = dict(obj)
        shown["metadata"] = dict(md, resourceVersion=str(self.rv))
        stored = decoded(rt, shown, json.dumps(shown, separators=(",", ":")).encode(), self.rv)
        bucket = self.objects.setdefault(key, {})
        previous = bucket.get(at)
        if change.type == "DELETED":
            bucket.pop(at, None)
            event = WatchEvent("DELETED", stored)
        else:
            bucket[at] = stored
            event = WatchEvent("ADDED" if previous is None else "MODIFIED", stored, previous)
        if len(self.log) == self.log.maxlen:
            self.oldest = self.log[0][0]
        self.log.append((self.rv, key, event))
        for w in list(self.watches):
            w.offer(key, event)

    # kubeapi Store protocol (read side) -------------------------------------------------
    def resource_version(self) -> int:
        return self.rv

    async def get(self, resource: ResourceType, namespace: str, name: str) -> StoredObject | None:
        return self.objects.get(resource.group_resource, {}).get((namespace, name))

    async def list(self, resource: ResourceType, options: ListOptions) -> ListPage:
        items = sorted(self.objects.get(resource.group_resource, {}).items())
        out: list[StoredObject] = []
        after = options.continue_after
        more: tuple[str, str] | None = None
        for at, obj in items:
            if options.namespace is not None and at[0] != options.namespace:
                continue
            if after is not None and at <= after:
                continue
            if not options.selector.empty() and not options.selector.matches(obj.labels, obj.fields):
                continue
            if options.limit and len(out) == options.limit:
                more = (out[-1].namespace, out[-1].name)
                break
            out.append(obj)
        return ListPage(out, self.rv, more)

    def watch(self, resource: ResourceType, namespace: str | None, selector: Selector, since: int) -> _Watch:
        if since and since < self.oldest:
            raise gone(since, self.oldest)
        key = resource.group_resource
        backlog = [
            e
            for rv, k, e in self.log
            if rv > since and k == key and (namespace is None or e.object.namespace == namespace)
        ]
        w = _Watch(self, key, namespace, backlog)
        self.watches.add(w)
        return w

    async def create(
        self, resource: ResourceType, obj: dict[str, Any], *, dry_run: bool = False
    ) -> StoredObject:
        raise method_not_allowed()

    async def update(
        self, resource: ResourceType, obj: dict[str, Any], expected_version: int, *, dry_run: bool = False
    ) -> StoredObject:
        raise method_not_allowed()

    async def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        expected_version: int,
        *,
        dry_run: bool = False,
    ) -> StoredObject:
        raise method_not_allowed()

    async def drop_resource(self, resource: ResourceType) -> None:
        raise method_not_allowed()


class MetaServer:
    def __init__(self, store: EdgeStore, address: str, port: int) -> None:
        self.store = store
        self.address = address
        self.port = port
        self.registry = Registry()
        self.registry.add(*_served_types())
        self.view = EdgeView(self.registry)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        for obj in await self.store.list_objects():
            self.view.apply(Change("ADDED", gvr_of(obj), obj))
        self.store.add_watcher(self.view.apply)
        api = KubeAPI(self.view, self.registry, read_only=True)
        self._runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address, self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("MetaServer serving the node's objects on http://%s:%d", self.address, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
