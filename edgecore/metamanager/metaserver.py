"""MetaServer: a read-only Kubernetes API of the node's own objects on 127.0.0.1 (default 10550).

Secrets are served only to callers that present the node's MetaServer token (``Authorization: Bearer``;
the token lives in a 0600 file, by default ``<dataDir>/metaserver.token``, that the operator hands to
the local workloads allowed to read Secrets). Everything else is served to any local caller, as
KubeEdge's MetaServer does; another token (a Pod's service account token) counts as none.

It is ``kubeapi`` (the same API layer as the embedded API server) over a read-only view of the edge
store, so kubectl and in-cluster clients on the edge can get, list (with label and field selectors)
and watch what the node holds, also while the cloud is away. Objects keep the cloud's content; their
``metadata.resourceVersion`` is the edge's own change counter, so watches resume correctly whatever
order the cloud delivered changes in.

Memory: the view keeps per object only what selectors and resource versions need; the JSON is read
from SQLite when served. The HTTP side (aiohttp and ``kubeapi.server``, ~15 MB) is imported when the
first client connects: the port is bound at start, so it can be advertised and nothing is lost.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hmac
import json
import logging
import secrets
import socket
import sys
from pathlib import Path
from typing import Any

from edgecore._sharedmaps import SharedMaps
from edgecore.metamanager._store import Change, EdgeStore, gvr_of
from kubeapi.builtins import builtin_types
from kubeapi.errors import gone, method_not_allowed
from kubeapi.resources import READ_VERBS, Registry, ResourceType
from kubeapi.selectors import Selector
from kubeapi.store import ListOptions, ListPage, StoredObject, WatchEvent, decoded
from kubeshore import filemodes

log = logging.getLogger(__name__)

# Watch history (light entries). A watch from an older resourceVersion gets 410 Gone and re-lists,
# as with kube-apiserver's watch cache (whose default is 100 events per resource).
_EVENT_LOG = 2_000

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
        self.events: collections.deque[WatchEvent] = collections.deque()
        # Events from before the watch started: their JSON is read from the store on first delivery.
        self.backlog = backlog
        self.wake = asyncio.Event()
        self.closed = False

    def offer(self, key: str, event: WatchEvent) -> None:
        if key == self.key and (self.namespace is None or event.object.namespace == self.namespace):
            self.events.append(event)
            self.wake.set()

    async def next_batch(self, max_wait: float | None) -> list[WatchEvent] | None:
        if self.closed:
            return None
        if self.backlog:
            backlog, self.backlog = self.backlog, []
            replayed = await self.owner.replay(self.key, backlog)
            if replayed:
                return replayed
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


def _at(obj: dict[str, Any]) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return (md.get("namespace") or "", md.get("name") or "")


class EdgeView:
    """kubeapi ``Store`` over the edge store's contents: read-only, kept current by store changes.

    In memory: per object its edge resourceVersion, labels and selectable fields (a ``StoredObject``
    whose ``raw`` is empty); the object's JSON stays in SQLite until a client reads it. The event log
    keeps the same light entries, plus the last state of deleted objects (no longer in SQLite).
    """

    def __init__(self, registry: Registry, store: EdgeStore) -> None:
        self.registry = registry
        self.store = store
        self.rv = 0
        self.objects: dict[str, dict[tuple[str, str], StoredObject]] = {}
        self.gvrs: dict[str, str] = {}  # group_resource -> the edge store's gvr
        self.log: collections.deque[tuple[int, str, WatchEvent]] = collections.deque(maxlen=_EVENT_LOG)
        self.oldest = 0
        self.watches: set[_Watch] = set()
        # A fleet's objects share a few label sets: one copy of each.
        self._labels = SharedMaps()

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

    def _stamped(self, obj: dict[str, Any], rv: int) -> dict[str, Any]:
        shown = dict(obj)
        shown["metadata"] = dict(obj.get("metadata") or {}, resourceVersion=str(rv))
        return shown

    def apply(self, change: Change) -> None:
        obj = change.obj
        rt = self._type_for(obj)
        # Interned: the key is kept with every logged event (2,000 of them).
        key = sys.intern(rt.group_resource)
        self.gvrs[key] = change.gvr
        at = _at(obj)
        self.rv += 1
        shown = self._stamped(obj, self.rv)
        light = decoded(rt, shown, b"", self.rv)
        light.labels = self._labels.share(dict(light.labels))
        bucket = self.objects.setdefault(key, {})
        previous = bucket.get(at)
        listening = [w for w in self.watches if w.key == key]
        full = light
        if change.type == "DELETED" or listening:
            full = dataclasses.replace(light, raw=json.dumps(shown, separators=(",", ":")).encode())
        if change.type == "DELETED":
            bucket.pop(at, None)
            logged = WatchEvent("DELETED", full)
        else:
            bucket[at] = light
            logged = WatchEvent("ADDED" if previous is None else "MODIFIED", light, previous)
        if len(self.log) == self.log.maxlen:
            self.oldest = self.log[0][0]
        self.log.append((self.rv, key, logged))
        if listening:
            live = WatchEvent(logged.type, full, logged.previous)
            for w in listening:
                w.offer(key, live)

    async def _raw(self, key: str, objects: list[StoredObject]) -> list[StoredObject]:
        """``objects`` with their JSON read from the store; those no longer there are left out."""
        gvr = self.gvrs.get(key)
        if gvr is None or not objects:
            return []
        values = await self.store.values(gvr, [(o.namespace or None, o.name) for o in objects])
        out = []
        for o in objects:
            value = values.get((o.namespace or None, o.name))
            if value is not None:
                shown = self._stamped(json.loads(value), o.resource_version)
                out.append(dataclasses.replace(o, raw=json.dumps(shown, separators=(",", ":")).encode()))
        return out

    async def replay(self, key: str, backlog: list[WatchEvent]) -> list[WatchEvent]:
        """Backlog events with their objects. A change superseded since is left out (its JSON is gone)
        and folded into the next event of that object, as if the two had been one change."""
        bucket = self.objects.get(key, {})
        folded: dict[tuple[str, str], WatchEvent] = {}
        wanted: list[WatchEvent] = []
        for e in backlog:
            at = (e.object.namespace, e.object.name)
            first = folded.pop(at, None)
            if first is not None:
                kind = "ADDED" if first.type == "ADDED" and e.type != "DELETED" else e.type
                e = WatchEvent(kind, e.object, first.previous if kind == "MODIFIED" else None)
            current = bucket.get(at)
            if e.type != "DELETED" and (
                current is None or current.resource_version != e.object.resource_version
            ):
                folded[at] = e
                continue
            wanted.append(e)
        hydrated = {
            (o.namespace, o.name, o.resource_version): o
            for o in await self._raw(key, [e.object for e in wanted if e.type != "DELETED"])
        }
        out = []
        for e in wanted:
            if e.type == "DELETED":
                out.append(e)
                continue
            o = hydrated.get((e.object.namespace, e.object.name, e.object.resource_version))
            if o is not None:
                out.append(WatchEvent(e.type, o, e.previous))
        return out

    # kubeapi Store protocol (read side) -------------------------------------------------
    def resource_version(self) -> int:
        return self.rv

    async def get(self, resource: ResourceType, namespace: str, name: str) -> StoredObject | None:
        key = resource.group_resource
        light = self.objects.get(key, {}).get((namespace, name))
        if light is None:
            return None
        found = await self._raw(key, [light])
        return found[0] if found else None

    async def list(self, resource: ResourceType, options: ListOptions) -> ListPage:
        key = resource.group_resource
        items = sorted(self.objects.get(key, {}).items())
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
        rv = self.rv
        return ListPage(await self._raw(key, out), rv, more)

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
    def __init__(self, store: EdgeStore, address: str, port: int, *, token_file: Path | None = None) -> None:
        self.store = store
        self.address = address
        self.port = port
        self.token_file = token_file
        self._token = b""
        self.registry = Registry()
        self.registry.add(*_served_types())
        self.view = EdgeView(self.registry, store)
        self._sock: socket.socket | None = None
        self._runner: Any = None  # aiohttp.web.AppRunner, once a client came
        self._activation: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.token_file is not None:
            self._token = _load_or_create_token(self.token_file)
        async for batch in self.store.batches():
            for obj in batch:
                self.view.apply(Change("ADDED", gvr_of(obj), obj))
        self.store.add_watcher(self.view.apply)
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        self._sock = socket.create_server((self.address, self.port), family=family, backlog=128)
        self._sock.setblocking(False)
        self.port = self._sock.getsockname()[1]
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._first_client)
        log.info("MetaServer serving the node's objects on http://%s:%d", self.address, self.port)

    def _first_client(self) -> None:
        assert self._sock is not None
        asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._activation = asyncio.create_task(self._serve(), name="metaserver-activation")

    async def _serve(self) -> None:
        """Load the HTTP side and hand it the listening socket; the waiting client is accepted then."""
        assert self._sock is not None
        try:
            # In a thread: the imports take a few hundred milliseconds the event loop should not wait.
            web, server = await asyncio.to_thread(_http_side)
            api = server.KubeAPI(
                self.view,
                self.registry,
                read_only=True,
                authenticate=self._authenticate,
                authorize=_authorize,
            )
            runner = web.AppRunner(api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            self._runner = runner
            await web.SockSite(runner, self._sock).start()
        except Exception:
            log.exception("MetaServer could not start serving; closing its port")
            self._sock.close()

    async def stop(self) -> None:
        if self._activation is not None and not self._activation.done():
            await asyncio.wait([self._activation])
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            if self._activation is None and self._sock.fileno() >= 0:
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _authenticate(self, request: Any) -> Any:
        from kubeapi.server import ANONYMOUS, User

        header: str = request.headers.get("Authorization", "")
        # Another bearer token (a Pod's service account token, sent by every in-cluster client) is
        # not refused: it proves nothing here, so its holder is served as anyone else is.
        if (
            self._token
            and header[:7].lower() == "bearer "
            and hmac.compare_digest(header[7:].strip().encode(), self._token)
        ):
            return User("metaserver-token", ("system:authenticated",))
        return ANONYMOUS


def _authorize(attrs: Any) -> bool:
    return attrs.resource != "secrets" or "system:authenticated" in attrs.user.groups


def _load_or_create_token(path: Path) -> bytes:
    if not path.exists():
        filemodes.write_private(path, secrets.token_urlsafe(32).encode())
    filemodes.secure_tree(path)
    return path.read_bytes().strip()


def _http_side() -> tuple[Any, Any]:
    from aiohttp import web

    from kubeapi import server

    return web, server
