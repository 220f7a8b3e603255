"""The embedded API server's store: every object in memory (as JSON bytes) and in SQLite.

Reads are served from memory. Writes change memory at once (so concurrency checks are exact) and
are acknowledged only after a group commit: concurrent writes share one SQLite transaction, and
their watch events are published, in resourceVersion order, once it has committed.

Commits run on the event loop thread on purpose: a commit in WAL mode with ``synchronous=NORMAL``
only appends to the WAL (tens of microseconds), while handing it to a worker thread costs far more
in GIL hand-offs (the loop stalls up to the 5 ms switch interval per batch). A committed write
survives a crash or ``kill -9`` of the process; the WAL is checkpointed (and fsynced) from a
worker thread every second, which bounds what a power loss can take.
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, delete, event, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import insert

from cloudcore.apiserver._models import Base, CounterRow, ObjectRow
from kubeapi.defaults import DEFAULTS_VERSION, apply_defaults
from kubeapi.errors import APIError, already_exists, conflict, gone, not_found
from kubeapi.resources import Registry, ResourceType
from kubeapi.selectors import Selector
from kubeapi.store import ListOptions, ListPage, StoredObject, WatchEvent, decoded, encode

log = logging.getLogger(__name__)

_upsert = insert(ObjectRow).values(
    resource=bindparam("resource"),
    namespace=bindparam("namespace"),
    name=bindparam("name"),
    resource_version=bindparam("resource_version"),
    data=bindparam("data"),
)
_UPSERT = _upsert.on_conflict_do_update(
    index_elements=[ObjectRow.resource, ObjectRow.namespace, ObjectRow.name],
    set_={"resource_version": _upsert.excluded.resource_version, "data": _upsert.excluded.data},
)
_DELETE = delete(ObjectRow).where(
    ObjectRow.resource == bindparam("resource"),
    ObjectRow.namespace == bindparam("namespace"),
    ObjectRow.name == bindparam("name"),
)
_counter = insert(CounterRow).values(name=bindparam("name"), value=bindparam("value"))
_COUNTER = _counter.on_conflict_do_update(
    index_elements=[CounterRow.name], set_={"value": _counter.excluded.value}
)


def _compile(stmt: Any, order: tuple[str, ...]) -> str:
    """SQLite text of a Core statement whose positional parameters come in ``order``."""
    compiled = stmt.compile(dialect=sqlite.dialect())
    if tuple(compiled.positiontup or ()) != order:
        raise AssertionError(f"unexpected parameter order {compiled.positiontup}")
    return str(compiled)


_RV_COUNTER = "resourceVersion"
# The kubeapi.defaults version the stored built-in objects are defaulted to.
_DEFAULTS_COUNTER = "defaults"
# A watcher this far behind is cut off; its client re-lists (as client-go does after a closed watch).
_MAX_PENDING = 50_000


@dataclass(slots=True)
class _Op:
    resource: str
    namespace: str
    name: str
    stored: StoredObject | None  # None: delete
    event: WatchEvent
    future: asyncio.Future[None]
    prior: StoredObject | None = None  # the state before, restored if the commit fails


class _Watcher:
    __slots__ = ("_closed", "_ready", "_store", "events", "group_resource", "namespace", "since")

    def __init__(self, store: SQLiteStore, group_resource: str, namespace: str | None, since: int) -> None:
        self._store = store
        self.group_resource = group_resource
        self.namespace = namespace
        self.since = since
        self.events: list[WatchEvent] = []
        self._ready = asyncio.Event()
        self._closed = False

    def push(self, event: WatchEvent) -> None:
        if event.object.resource_version <= self.since:
            return
        if self.namespace is not None and event.object.namespace != self.namespace:
            return
        self.events.append(event)
        if len(self.events) > _MAX_PENDING:
            self.end()
        self._ready.set()

    def end(self) -> None:
        self._closed = True
        self._ready.set()

    async def next_batch(self, max_wait: float | None) -> list[WatchEvent] | None:
        if not self.events and not self._closed:
            try:
                await asyncio.wait_for(self._ready.wait(), max_wait)
            except TimeoutError:
                return []
        if self._closed:
            return None
        self._ready.clear()
        batch, self.events = self.events, []
        return batch

    def close(self) -> None:
        self._closed = True
        self._store._unsubscribe(self)


@dataclass
class _Namespace:
    objects: dict[str, StoredObject] = field(default_factory=dict)
    sorted_names: list[str] | None = None

    def names(self) -> list[str]:
        if self.sorted_names is None:
            self.sorted_names = sorted(self.objects)
        return self.sorted_names


@dataclass
class _Resource:
    namespaces: dict[str, _Namespace] = field(default_factory=dict)
    count: int = 0


class SQLiteStore:
    """Implements :class:`kubeapi.store.Store` over ``path`` (a SQLite file, WAL mode)."""

    def __init__(self, path: Path, registry: Registry, *, event_log_size: int = 50_000) -> None:
        self.path = path
        self.registry = registry
        self._engine: Engine | None = None
        self._resources: dict[str, _Resource] = {}
        self._rv = 0
        self._log: deque[tuple[str, WatchEvent]] = deque()
        self._log_size = event_log_size
        self._oldest = 0  # events with resourceVersion > _oldest are in the log
        self._watchers: dict[str, set[_Watcher]] = {}
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._dirty = False
        self._raw: Any = None
        self._sql_upsert = self._sql_delete = self._sql_counter = ""
        self._defaults_version = 0
        self._closing = False
        self._listeners: list[Callable[[str, WatchEvent], None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{self.path}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        self._engine = engine
        rows = await asyncio.to_thread(self._load)
        # One DBAPI connection for writes, with statements compiled once from the models: the
        # per-statement overhead of executing Core constructs would exceed the commit itself.
        self._raw = engine.raw_connection()
        self._sql_upsert = _compile(_UPSERT, ("resource", "namespace", "name", "resource_version", "data"))
        self._sql_delete = _compile(_DELETE, ("resource", "namespace", "name"))
        self._sql_counter = _compile(_COUNTER, ("name", "value"))
        # kube-apiserver defaults what it reads from etcd. Every write here is defaulted, so only objects
        # an older kubeshore wrote (before DEFAULTS_VERSION) need it: once, rewritten at the same
        # resourceVersion, so that later starts decode nothing twice.
        redefault = self._defaults_version != DEFAULTS_VERSION
        rewritten = []
        for resource, namespace, name, rv, data in rows:
            type_ = self._type_for(resource)
            obj = json.loads(data)
            if redefault and type_.kind and not type_.custom:
                apply_defaults(type_.group, type_.version, type_.kind, obj)
                again = json.dumps(obj, separators=(",", ":")).encode()
                if again != data:
                    data = again
                    rewritten.append((resource, namespace, name, rv, data))
            stored = decoded(type_, obj, data, rv)
            self._put(resource, namespace, name, stored)
        if redefault:
            self._write_rows(rewritten, [], (_DEFAULTS_COUNTER, DEFAULTS_VERSION))
            log.info(
                "defaulted %d objects stored before defaults version %d", len(rewritten), DEFAULTS_VERSION
            )
        self._oldest = self._rv
        self._writer = asyncio.create_task(self._write_loop())
        self._checkpointer = asyncio.create_task(self._checkpoint_loop())

    def _load(self) -> list[tuple[str, str, str, int, bytes]]:
        assert self._engine is not None
        Base.metadata.create_all(self._engine)
        with self._engine.connect() as conn:
            counter = conn.execute(select(CounterRow.value).where(CounterRow.name == _RV_COUNTER)).scalar()
            defaults = conn.execute(
                select(CounterRow.value).where(CounterRow.name == _DEFAULTS_COUNTER)
            ).scalar()
            self._defaults_version = int(defaults or 0)
            rows = conn.execute(
                select(
                    ObjectRow.resource,
                    ObjectRow.namespace,
                    ObjectRow.name,
                    ObjectRow.resource_version,
                    ObjectRow.data,
                )
            ).all()
        out = [(r[0], r[1], r[2], int(r[3]), bytes(r[4])) for r in rows]
        self._rv = max([int(counter or 0), *(r[3] for r in out)])
        return out

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
            await asyncio.to_thread(self._checkpoint)
        for watchers in self._watchers.values():
            for w in list(watchers):
                w.end()
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _type_for(self, group_resource: str) -> ResourceType:
        plural, _, group = group_resource.partition(".")
        found = self.registry.preferred(group, plural)
        if found is not None:
            return found
        return ResourceType(group=group, version="", kind="", plural=plural, singular="", namespaced=True)

    # -- memory ----------------------------------------------------------------------------

    def _put(self, resource: str, namespace: str, name: str, stored: StoredObject) -> StoredObject | None:
        res = self._resources.get(resource)
        if res is None:
            res = self._resources[resource] = _Resource()
        ns = res.namespaces.get(namespace)
        if ns is None:
            ns = res.namespaces[namespace] = _Namespace()
        previous = ns.objects.get(name)
        ns.objects[name] = stored
        if previous is None:
            res.count += 1
            if ns.sorted_names is not None:
                bisect.insort(ns.sorted_names, name)
        return previous

    def _remove(self, resource: str, namespace: str, name: str) -> None:
        res = self._resources[resource]
        ns = res.namespaces[namespace]
        del ns.objects[name]
        res.count -= 1
        if ns.sorted_names is not None:
            i = bisect.bisect_left(ns.sorted_names, name)
            del ns.sorted_names[i]
        if not ns.objects:
            del res.namespaces[namespace]

    def _current(self, resource: str, namespace: str, name: str) -> StoredObject | None:
        res = self._resources.get(resource)
        if res is None:
            return None
        ns = res.namespaces.get(namespace)
        return None if ns is None else ns.objects.get(name)

    def objects(self, group_resource: str) -> list[StoredObject]:
        """Every stored object of a group/resource (for in-process controllers)."""
        res = self._resources.get(group_resource)
        if res is None:
            return []
        return [o for ns in res.namespaces.values() for o in ns.objects.values()]

    def objects_in(self, group_resource: str, namespace: str) -> list[StoredObject]:
        res = self._resources.get(group_resource)
        ns = None if res is None else res.namespaces.get(namespace)
        return [] if ns is None else list(ns.objects.values())

    def group_resources(self) -> list[str]:
        return [name for name, res in self._resources.items() if res.count]

    # -- Store protocol: reads -------------------------------------------------------------

    def resource_version(self) -> int:
        return self._rv

    async def get(self, resource: ResourceType, namespace: str, name: str) -> StoredObject | None:
        return self._current(resource.group_resource, namespace, name)

    async def list(self, resource: ResourceType, options: ListOptions) -> ListPage:
        res = self._resources.get(resource.group_resource)
        rv = self._rv
        if res is None:
            return ListPage([], rv)
        if options.namespace is not None:
            namespaces = [options.namespace] if options.namespace in res.namespaces else []
        else:
            namespaces = sorted(res.namespaces)
        selector = options.selector
        match_all = selector.empty()
        after = options.continue_after
        limit = options.limit
        items: list[StoredObject] = []
        more_after: tuple[str, str] | None = None
        for ns_name in namespaces:
            if after is not None and ns_name < after[0]:
                continue
            ns = res.namespaces[ns_name]
            names = ns.names()
            start = bisect.bisect_right(names, after[1]) if after is not None and ns_name == after[0] else 0
            objects = ns.objects
            for i in range(start, len(names)):
                obj = objects[names[i]]
                if not match_all and not selector.matches(obj.labels, obj.fields):
                    continue
                if limit and len(items) == limit:
                    last = items[-1]
                    more_after = (last.namespace, last.name)
                    break
                items.append(obj)
            if more_after is not None:
                break
        remaining = None
        if more_after is not None and match_all:
            remaining = max(0, self._count_after(res, more_after))
        return ListPage(items, rv, more_after, remaining)

    def _count_after(self, res: _Resource, after: tuple[str, str]) -> int:
        total = 0
        for ns_name, ns in res.namespaces.items():
            if ns_name > after[0]:
                total += len(ns.objects)
            elif ns_name == after[0]:
                names = ns.names()
                total += len(names) - bisect.bisect_right(names, after[1])
        return total

    def watch(
        self, resource: ResourceType, namespace: str | None, selector: Selector, since: int
    ) -> _Watcher:
        if since < self._oldest:
            raise gone(since, self._oldest)
        gr = resource.group_resource
        watcher = _Watcher(self, gr, namespace, since)
        for event_gr, ev in self._log:
            if event_gr == gr and ev.object.resource_version > since:
                watcher.push(ev)
        self._watchers.setdefault(gr, set()).add(watcher)
        if self._closing:
            watcher.end()
        return watcher

    def _unsubscribe(self, watcher: _Watcher) -> None:
        watchers = self._watchers.get(watcher.group_resource)
        if watchers is not None:
            watchers.discard(watcher)

    # -- Store protocol: writes ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._writer is None:
            raise APIError(503, "ServiceUnavailable", "the server is shutting down")

    async def _commit(self, op: _Op) -> None:
        self._pending.append(op)
        self._wake.set()
        await op.future

    async def create(
        self, resource: ResourceType, obj: dict[str, Any], *, dry_run: bool = False
    ) -> StoredObject:
        self._check_open()
        gr = resource.group_resource
        meta = obj["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        if self._current(gr, namespace, name) is not None:
            raise already_exists(resource.plural, resource.group, name)
        if dry_run:
            return encode(resource, obj, self._rv)
        self._rv += 1
        stored = encode(resource, obj, self._rv)
        self._put(gr, namespace, name, stored)
        loop = asyncio.get_running_loop()
        await self._commit(
            _Op(gr, namespace, name, stored, WatchEvent("ADDED", stored), loop.create_future(), None)
        )
        return stored

    async def update(
        self, resource: ResourceType, obj: dict[str, Any], expected_version: int, *, dry_run: bool = False
    ) -> StoredObject:
        self._check_open()
        gr = resource.group_resource
        meta = obj["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        current = self._current(gr, namespace, name)
        if current is None:
            raise not_found(resource.plural, resource.group, name)
        if current.resource_version != expected_version:
            raise conflict(resource.plural, resource.group, name)
        if dry_run:
            return encode(resource, obj, current.resource_version)
        self._rv += 1
        stored = encode(resource, obj, self._rv)
        self._put(gr, namespace, name, stored)
        loop = asyncio.get_running_loop()
        # The event log keeps what selectors need of the previous state, not its bytes.
        previous = StoredObject(
            current.namespace, current.name, current.resource_version, b"", current.labels, current.fields
        )
        ev = WatchEvent("MODIFIED", stored, previous)
        await self._commit(_Op(gr, namespace, name, stored, ev, loop.create_future(), current))
        return stored

    async def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        expected_version: int,
        *,
        dry_run: bool = False,
    ) -> StoredObject:
        self._check_open()
        gr = resource.group_resource
        current = self._current(gr, namespace, name)
        if current is None:
            raise not_found(resource.plural, resource.group, name)
        if current.resource_version != expected_version:
            raise conflict(resource.plural, resource.group, name)
        if dry_run:
            return current
        self._rv += 1
        final = encode(resource, current.object(), self._rv)
        self._remove(gr, namespace, name)
        loop = asyncio.get_running_loop()
        await self._commit(
            _Op(gr, namespace, name, None, WatchEvent("DELETED", final), loop.create_future(), current)
        )
        return final

    async def drop_resource(self, resource: ResourceType) -> None:
        for stored in self.objects(resource.group_resource):
            try:
                await self.delete(resource, stored.namespace, stored.name, stored.resource_version)
            except APIError as exc:
                if exc.code not in (404, 409):
                    raise

    # -- group commit ----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                if self._closing:
                    return
                continue
            try:
                self._write_batch(batch, self._rv)
                self._dirty = True
            except Exception as exc:
                log.exception("cannot write %d objects to %s", len(batch), self.path)
                self._undo(batch)
                err = APIError(500, "InternalError", f"storage error: {exc}")
                for op in batch:
                    if not op.future.done():
                        op.future.set_exception(err)
                continue
            for op in batch:
                self._publish(op.resource, op.event)
                if not op.future.done():
                    op.future.set_result(None)

    def _undo(self, batch: builtins.list[_Op]) -> None:
        """Put memory back as it was before a batch that could not be committed, newest first."""
        for op in reversed(batch):
            if self._current(op.resource, op.namespace, op.name) is not None:
                self._remove(op.resource, op.namespace, op.name)
            if op.prior is not None:
                self._put(op.resource, op.namespace, op.name, op.prior)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._dirty:
                self._dirty = False
                try:
                    await asyncio.to_thread(self._checkpoint)
                except Exception:
                    log.exception("WAL checkpoint of %s failed", self.path)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file and fsync it (PASSIVE: never blocks the writer)."""
        if self._engine is None:
            return
        with self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _write_batch(self, batch: builtins.list[_Op], rv: int) -> None:
        assert self._engine is not None
        last: dict[tuple[str, str, str], _Op] = {}
        for op in batch:
            last[(op.resource, op.namespace, op.name)] = op
        upserts = [
            (op.resource, op.namespace, op.name, op.stored.resource_version, op.stored.raw)
            for op in last.values()
            if op.stored is not None
        ]
        deletes = [(op.resource, op.namespace, op.name) for op in last.values() if op.stored is None]
        self._write_rows(upserts, deletes, (_RV_COUNTER, rv))

    def _write_rows(
        self,
        upserts: builtins.list[tuple[str, str, str, int, bytes]],
        deletes: builtins.list[tuple[str, str, str]],
        counter: tuple[str, int],
    ) -> None:
        """Upsert and delete rows and set one counter, in one transaction."""
        raw = self._raw
        assert raw is not None
        cursor = raw.cursor()
        try:
            if upserts:
                cursor.executemany(self._sql_upsert, upserts)
            if deletes:
                cursor.executemany(self._sql_delete, deletes)
            cursor.execute(self._sql_counter, counter)
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()

    def _publish(self, group_resource: str, ev: WatchEvent) -> None:
        self._log.append((group_resource, ev))
        if len(self._log) > self._log_size:
            _, dropped = self._log.popleft()
            self._oldest = dropped.object.resource_version
        for watcher in tuple(self._watchers.get(group_resource, ())):
            watcher.push(ev)
        for listener in self._listeners:
            listener(group_resource, ev)

    def on_event(self, listener: Callable[[str, WatchEvent], None]) -> None:
        """Call ``listener(group_resource, event)`` for every committed change (in-process controllers)."""
        self._listeners = [*self._listeners, listener]


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})
