"""The ``Store`` protocol kubeapi serves from, and the values it passes around.

A store is a versioned object map with a change stream, nothing more: it assigns resourceVersions
from one counter, checks the version a writer expects (optimistic concurrency) and streams changes
from a version on. Kubernetes semantics (metadata defaults, finalizers, status subresources,
patches) live above it in kubeapi, so any store — the embedded server's SQLite store or the edge
MetaServer's store — gets them alike. See docs/apiserver.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubeapi.resources import ResourceType
from kubeapi.selectors import Selector


@dataclass(slots=True)
class StoredObject:
    """One object as stored: its serialized JSON plus what selectors and indexes need.

    ``raw`` is the object's JSON with ``metadata.resourceVersion`` already set, so reads are served
    without re-encoding.
    """

    namespace: str
    name: str
    resource_version: int
    raw: bytes
    labels: Mapping[str, str]
    fields: Mapping[str, str]
    uid: str = ""
    owner_uids: tuple[str, ...] = ()

    def object(self) -> dict[str, Any]:
        """A fresh, mutable copy of the object."""
        obj: dict[str, Any] = json.loads(self.raw)
        return obj


@dataclass(slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: StoredObject
    # The object before the change (MODIFIED only), so selector watches can turn a change that
    # moves an object out of (into) the selection into DELETED (ADDED), as kube-apiserver does.
    # Only its labels and fields are needed; stores may leave its ``raw`` empty.
    previous: StoredObject | None = None


@dataclass(slots=True)
class ListPage:
    items: list[StoredObject]
    resource_version: int
    # Set when more items remain: the (namespace, name) to continue after.
    continue_after: tuple[str, str] | None = None
    remaining: int | None = None


@dataclass(slots=True)
class ListOptions:
    namespace: str | None = None
    selector: Selector = field(default_factory=Selector)
    limit: int = 0
    continue_after: tuple[str, str] | None = None


class Watch(Protocol):
    """A stream of events after a resourceVersion."""

    async def next_batch(self, max_wait: float | None) -> list[WatchEvent] | None:
        """Every event that arrived, waiting up to ``max_wait`` seconds for the first; ``[]`` after a
        timeout, ``None`` once the stream has ended (store closing, or the watcher fell too far
        behind and must re-list)."""
        ...

    def close(self) -> None: ...


class Store(Protocol):
    """Persistence kubeapi serves from. Errors are :class:`kubeapi.errors.APIError`.

    ``obj`` passed to create/update is a complete object (metadata filled by kubeapi); the store
    sets ``metadata.resourceVersion``, persists it and returns what it stored.
    """

    def resource_version(self) -> int:
        """The newest resourceVersion the store has handed out."""
        ...

    async def get(self, resource: ResourceType, namespace: str, name: str) -> StoredObject | None: ...

    async def list(self, resource: ResourceType, options: ListOptions) -> ListPage: ...

    def watch(self, resource: ResourceType, namespace: str | None, selector: Selector, since: int) -> Watch:
        """Events with resourceVersion > ``since``; raises 410 Gone (``APIError``) when the store no
        longer has them. Selector filtering is the caller's job (kubeapi needs the previous state)."""
        ...

    async def create(
        self, resource: ResourceType, obj: dict[str, Any], *, dry_run: bool = False
    ) -> StoredObject:
        """Store a new object; 409 AlreadyExists if its namespace/name is taken."""
        ...

    async def update(
        self, resource: ResourceType, obj: dict[str, Any], expected_version: int, *, dry_run: bool = False
    ) -> StoredObject:
        """Replace an object whose current resourceVersion is ``expected_version`` (else 409 Conflict)."""
        ...

    async def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        expected_version: int,
        *,
        dry_run: bool = False,
    ) -> StoredObject:
        """Remove an object at ``expected_version``; returns it as it was with the deletion's version."""
        ...

    async def drop_resource(self, resource: ResourceType) -> None:
        """Remove every object of a resource type at once (its CRD was deleted)."""
        ...


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def encode(resource: ResourceType, obj: dict[str, Any], resource_version: int) -> StoredObject:
    """Stamp ``resource_version`` into ``obj`` and build the stored form; every store uses this so
    that selectors see the same labels and fields whichever store serves them."""
    meta = obj.setdefault("metadata", {})
    meta["resourceVersion"] = str(resource_version)
    return decoded(resource, obj, json.dumps(obj, separators=(",", ":")).encode(), resource_version)


def decoded(
    resource: ResourceType, obj: Mapping[str, Any], raw: bytes, resource_version: int
) -> StoredObject:
    """The stored form of an already serialized object (used when loading a store from disk)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    name = meta.get("name") or ""
    fields = {"metadata.name": name, "metadata.namespace": namespace}
    for path in resource.selectable_fields:
        fields[path] = _field_value(obj, path)
    owners = tuple(o.get("uid", "") for o in meta.get("ownerReferences") or () if isinstance(o, Mapping))
    return StoredObject(
        namespace=namespace,
        name=name,
        resource_version=resource_version,
        raw=raw,
        labels=dict(meta.get("labels") or {}),
        fields=fields,
        uid=meta.get("uid") or "",
        owner_uids=owners,
    )
