"""In-process controllers of the embedded server: CRD establishment, garbage collection by
ownerReferences, and namespace termination. They react to committed store events and write back
through :class:`kubeapi.objects.ObjectService`, as kube-controller-manager writes through the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cloudcore.apiserver._store import SQLiteStore
from kubeapi.errors import APIError
from kubeapi.objects import FOREGROUND_FINALIZER, ORPHAN_FINALIZER, DeleteOptions, ObjectService, now_rfc3339
from kubeapi.resources import PrinterColumn, Registry, ResourceType
from kubeapi.store import StoredObject, WatchEvent

log = logging.getLogger(__name__)

CRD_RESOURCE = "customresourcedefinitions.apiextensions.k8s.io"
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_Key = tuple[str, str, str]  # group/resource, namespace, name


def crd_types(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CRD serves: one per served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    versions = [v for v in spec.get("versions") or [] if isinstance(v, Mapping)]
    storage = next(
        (v.get("name", "") for v in versions if v.get("storage")),
        versions[0].get("name", "") if versions else "",
    )
    types = []
    for v in versions:
        if not v.get("served", True):
            continue
        subs = v.get("subresources") or {}
        scale = subs.get("scale") or {}
        columns = tuple(
            PrinterColumn(
                name=c.get("name", ""),
                type=c.get("type", "string"),
                json_path=c.get("jsonPath", ""),
                description=c.get("description", ""),
                priority=int(c.get("priority") or 0),
                format=c.get("format", ""),
            )
            for c in v.get("additionalPrinterColumns") or []
            if isinstance(c, Mapping)
        )
        types.append(
            ResourceType(
                group=group,
                version=v.get("name", ""),
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                singular=names.get("singular") or str(names.get("kind", "")).lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(k for k in ("status", "scale") if k in subs),
                printer_columns=columns,
                schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                storage_version=storage,
                custom=True,
                tracks_generation=True,
                scale_spec_path=scale.get("specReplicasPath", ".spec.replicas"),
                scale_status_path=scale.get("statusReplicasPath", ".status.replicas"),
                scale_selector_path=scale.get("labelSelectorPath", ".status.selector"),
                extra={"crd": crd.get("metadata", {}).get("name", "")},
            )
        )
    return types


class Controllers:
    """Runs the controllers on one work queue, so their writes never race each other."""

    def __init__(self, store: SQLiteStore, registry: Registry, service: ObjectService) -> None:
        self.store = store
        self.registry = registry
        self.service = service
        self._queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._by_uid: dict[str, _Key] = {}
        self._dependents: dict[str, set[_Key]] = {}
        self._owners_of: dict[_Key, tuple[str, ...]] = {}
        self._terminating: set[str] = set()

    def _type(self, group_resource: str) -> ResourceType | None:
        plural, _, group = group_resource.partition(".")
        return self.registry.preferred(group, plural)

    async def start(self) -> None:
        crd_type = self._type(CRD_RESOURCE)
        for gr in self.store.group_resources():
            for stored in self.store.objects(gr):
                self._index(gr, stored)
        if crd_type is not None:
            for stored in self.store.objects(CRD_RESOURCE):
                obj = stored.object()
                if not obj["metadata"].get("deletionTimestamp"):
                    self.registry.add(*crd_types(obj))
                self._queue.put_nowait(lambda s=stored: self._reconcile_crd(s))  # type: ignore[misc]
        # Dependents whose owners went away while the server was down are collected now.
        for key, owners in list(self._owners_of.items()):
            if self._owners_absent(owners):
                self._queue.put_nowait(lambda k=key: self._maybe_collect(k))  # type: ignore[misc]
        for stored in self.store.objects("namespaces"):
            if stored.object()["metadata"].get("deletionTimestamp"):
                self._terminating.add(stored.name)
                self._queue.put_nowait(lambda n=stored.name: self._reconcile_namespace(n))  # type: ignore[misc]
        self.store.on_event(self._on_event)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await job()
            except APIError as exc:
                if exc.code not in (404, 409, 503):
                    log.warning("controller write failed: %s", exc.message)
            except Exception:
                log.exception("controller failed")

    def _index(self, gr: str, stored: StoredObject) -> None:
        key = (gr, stored.namespace, stored.name)
        if stored.uid:
            self._by_uid[stored.uid] = key
        old = self._owners_of.pop(key, ())
        for uid in old:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[uid]
        if stored.owner_uids:
            self._owners_of[key] = stored.owner_uids
            for uid in stored.owner_uids:
                self._dependents.setdefault(uid, set()).add(key)

    def _unindex(self, gr: str, stored: StoredObject) -> None:
        key = (gr, stored.namespace, stored.name)
        if self._by_uid.get(stored.uid) == key:
            del self._by_uid[stored.uid]
        for uid in self._owners_of.pop(key, ()):
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[uid]

    def _on_event(self, gr: str, event: WatchEvent) -> None:
        stored = event.object
        if event.type == "DELETED":
            self._unindex(gr, stored)
            if self._dependents.get(stored.uid):
                self._queue.put_nowait(lambda: self._collect_dependents(stored.uid))
            for owner_uid in stored.owner_uids:
                owner = self._by_uid.get(owner_uid)
                if owner is not None:
                    self._queue.put_nowait(lambda k=owner: self._reconcile_owner(k))  # type: ignore[misc]
            if stored.namespace in self._terminating:
                self._queue.put_nowait(lambda: self._reconcile_namespace(stored.namespace))
        else:
            self._index(gr, stored)
            if self._owners_absent(stored.owner_uids):
                # Created (or re-owned) after all its owners were deleted: a controller acting on a
                # stale cache made it, and no owner's deletion will ever collect it (kube's GC
                # deletes a dependent whose owners are all absent).
                key = (gr, stored.namespace, stored.name)
                self._queue.put_nowait(lambda: self._maybe_collect(key))
            if b'"deletionTimestamp"' in stored.raw:
                self._queue.put_nowait(lambda: self._reconcile_owner((gr, stored.namespace, stored.name)))
        if gr == CRD_RESOURCE:
            self._queue.put_nowait(lambda: self._reconcile_crd(stored, deleted=event.type == "DELETED"))
        elif gr == "namespaces" and event.type != "DELETED" and b'"deletionTimestamp"' in stored.raw:
            self._terminating.add(stored.name)
            self._queue.put_nowait(lambda: self._reconcile_namespace(stored.name))

    def _owners_absent(self, owner_uids: tuple[str, ...]) -> bool:
        return bool(owner_uids) and all(uid and uid not in self._by_uid for uid in owner_uids)

    def _latest(self, key: _Key) -> StoredObject | None:
        gr, namespace, name = key
        type_ = self._type(gr)
        if type_ is None:
            return None
        return self.store._current(gr, namespace, name)

    # -- CRDs ------------------------------------------------------------------------------

    async def _reconcile_crd(self, stored: StoredObject, *, deleted: bool = False) -> None:
        crd_type = self._type(CRD_RESOURCE)
        assert crd_type is not None
        obj = stored.object()
        spec = obj.get("spec") or {}
        group = spec.get("group", "")
        plural = (spec.get("names") or {}).get("plural", "")
        if deleted:
            self.registry.remove_group_resource(group, plural)
            return
        current = self.store._current(CRD_RESOURCE, "", stored.name)
        if current is None or current.resource_version != stored.resource_version:
            return  # a newer event follows
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            for t in crd_types(obj)[:1]:
                await self.store.drop_resource(self.registry.preferred(t.group, t.plural) or t)
            self.registry.remove_group_resource(group, plural)
            await self.service.remove_finalizer(crd_type, current, CRD_CLEANUP_FINALIZER)
            return
        types = crd_types(obj)
        self.registry.add(*types)
        if CRD_CLEANUP_FINALIZER not in (meta.get("finalizers") or []):
            obj["metadata"]["finalizers"] = [*(meta.get("finalizers") or []), CRD_CLEANUP_FINALIZER]
            await self.service.update(crd_type, "", stored.name, obj)
            return
        stamp = now_rfc3339()
        conditions = [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": stamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": stamp,
            },
        ]
        status = obj.get("status") or {}
        wanted_names = spec.get("names") or {}
        storage = types[0].storage_version if types else ""
        have = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if (
            have.get("Established") == "True"
            and have.get("NamesAccepted") == "True"
            and status.get("acceptedNames") == wanted_names
            and storage in (status.get("storedVersions") or [])
        ):
            return
        old_conditions = {c.get("type"): c for c in status.get("conditions") or []}
        for c in conditions:
            if old_conditions.get(c["type"], {}).get("status") == "True":
                c["lastTransitionTime"] = old_conditions[c["type"]].get("lastTransitionTime", stamp)
        stored_versions = list(status.get("storedVersions") or [])
        if storage and storage not in stored_versions:
            stored_versions.append(storage)
        obj["status"] = {
            "conditions": conditions,
            "acceptedNames": wanted_names,
            "storedVersions": stored_versions,
        }
        await self.service.update(crd_type, "", stored.name, obj, subresource="status")

    # -- garbage collection ----------------------------------------------------------------

    async def _collect_dependents(self, owner_uid: str) -> None:
        for key in list(self._dependents.get(owner_uid, ())):
            await self._maybe_collect(key)

    async def _maybe_collect(self, key: _Key) -> None:
        stored = self._latest(key)
        type_ = self._type(key[0])
        if stored is None or type_ is None:
            return
        if not self._owners_absent(stored.owner_uids):
            return
        await self.service.delete(type_, key[1], key[2], DeleteOptions(propagation_policy="Background"))

    async def _reconcile_owner(self, key: _Key) -> None:
        stored = self._latest(key)
        type_ = self._type(key[0])
        if stored is None or type_ is None:
            return
        meta = stored.object()["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        finalizers = meta.get("finalizers") or []
        deps = list(self._dependents.get(stored.uid, ()))
        if ORPHAN_FINALIZER in finalizers:
            for dep_key in deps:
                await self._orphan(dep_key, stored.uid)
            await self.service.remove_finalizer(type_, stored, ORPHAN_FINALIZER)
        elif FOREGROUND_FINALIZER in finalizers:
            if not deps:
                await self.service.remove_finalizer(type_, stored, FOREGROUND_FINALIZER)
                return
            for dep_key in deps:
                dep = self._latest(dep_key)
                dep_type = self._type(dep_key[0])
                if dep is not None and dep_type is not None and b'"deletionTimestamp"' not in dep.raw:
                    await self.service.delete(
                        dep_type, dep_key[1], dep_key[2], DeleteOptions(propagation_policy="Foreground")
                    )

    async def _orphan(self, key: _Key, owner_uid: str) -> None:
        for _ in range(5):
            dep = self._latest(key)
            type_ = self._type(key[0])
            if dep is None or type_ is None:
                return
            obj = dep.object()
            refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)
            try:
                await self.service.update(type_, key[1], key[2], obj)
                return
            except APIError as exc:
                if exc.reason != "Conflict":
                    raise

    # -- namespaces ------------------------------------------------------------------------

    async def _reconcile_namespace(self, name: str) -> None:
        ns_type = self._type("namespaces")
        assert ns_type is not None
        ns = self.store._current("namespaces", "", name)
        if ns is None:
            self._terminating.discard(name)
            return
        remaining = 0
        for gr in self.store.group_resources():
            type_ = self._type(gr)
            if type_ is None or not type_.namespaced:
                continue
            for stored in self.store.objects_in(gr, name):
                remaining += 1
                if b'"deletionTimestamp"' not in stored.raw:
                    try:
                        await self.service.delete(type_, name, stored.name)
                    except APIError as exc:
                        if exc.code != 404:
                            raise
        if remaining == 0:
            ns = self.store._current("namespaces", "", name)
            if ns is not None and not ns.object()["metadata"].get("finalizers"):
                self._terminating.discard(name)
                await self.store.delete(ns_type, "", name, ns.resource_version)
