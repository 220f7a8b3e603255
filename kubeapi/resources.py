"""The resource registry: what each served resource type is called, where it lives and how it prints.

Built-in kinds are registered by the server that owns them; CRDs add and remove entries at run
time, so the registry notifies listeners (discovery caches) when it changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Verbs kubectl reads from discovery to decide what it may do with a resource.
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True)
class PrinterColumn:
    """A column of the ``kubectl get`` table: CRD ``additionalPrinterColumns`` or a built-in column.

    ``json_path`` columns are read from the object; built-in kinds may instead give ``compute``,
    which derives the cell from the whole object (e.g. a pod's READY "1/2").
    """

    name: str
    type: str = "string"
    json_path: str = ""
    description: str = ""
    priority: int = 0
    format: str = ""
    compute: Callable[[Mapping[str, Any]], Any] | None = None


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Subresources beyond the object itself: "status", "scale".
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    printer_columns: tuple[PrinterColumn, ...] = ()
    # Field selectors this type supports besides metadata.name/metadata.namespace, e.g. spec.nodeName.
    selectable_fields: tuple[str, ...] = ()
    # The structural (OpenAPI v3) schema of the object, for validation, pruning and OpenAPI.
    schema: Mapping[str, Any] | None = None
    # Other versions the same stored objects are served at (CRDs without conversion).
    storage_version: str = ""
    # True for CRD-defined types: tables and patches follow CRD rules, not built-in ones.
    custom: bool = False
    # metadata.generation is set on create and bumped when anything but metadata/status changes.
    tracks_generation: bool = False
    # Names must be DNS labels (namespaces, services) rather than DNS subdomains.
    dns_label_names: bool = False
    # Scale subresource paths (CRD ``subresources.scale``), defaults match Deployments.
    scale_spec_path: str = ".spec.replicas"
    scale_status_path: str = ".status.replicas"
    scale_selector_path: str = ".status.selector"
    # Opaque extra data the owner of the type keeps with it (e.g. the CRD it came from).
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """Key shared by every version of the type: ``devices.devices.kubeedge.io`` or ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def has_status(self) -> bool:
        return "status" in self.subresources


class Registry:
    """Resource types by group/version/plural; thread-safe, changes announced to listeners."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._listeners: list[Callable[[], None]] = []
        self.generation = 0

    def add(self, *types: ResourceType) -> None:
        with self._lock:
            for t in types:
                self._by_gvr[(t.group, t.version, t.plural)] = t
            self.generation += 1
        self._changed()

    def remove_group_resource(self, group: str, plural: str) -> None:
        with self._lock:
            for key in [k for k in self._by_gvr if k[0] == group and k[2] == plural]:
                del self._by_gvr[key]
            self.generation += 1
        self._changed()

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        for t in list(self._by_gvr.values()):
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def preferred(self, group: str, plural: str) -> ResourceType | None:
        """The storage version of a group/resource, whatever version it was asked for."""
        fallback = None
        for t in list(self._by_gvr.values()):
            if t.group == group and t.plural == plural:
                if not t.storage_version or t.storage_version == t.version:
                    return t
                fallback = t
        return fallback

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._by_gvr.values())

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred (storage) version first."""
        out: dict[str, list[str]] = {}
        for t in self.all():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                if t.storage_version in ("", t.version):
                    versions.insert(0, t.version)
                else:
                    versions.append(t.version)
        return out

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()
