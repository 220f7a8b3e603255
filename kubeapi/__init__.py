"""kubeapi: the one Kubernetes-compatible HTTP API layer, over a :class:`Store`.

Used by the embedded API server (cloudcore/apiserver) and, read-only, by the edge MetaServer.
Names are resolved on first use, so importing a light submodule (``kubeapi.builtins``,
``kubeapi.resources``) does not pull in aiohttp through ``kubeapi.server``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeapi.errors import APIError, Status
    from kubeapi.objects import DeleteOptions, ObjectService
    from kubeapi.resources import PrinterColumn, Registry, ResourceType
    from kubeapi.selectors import FieldSelector, LabelSelector, Selector
    from kubeapi.server import KubeAPI, RequestAttributes, User
    from kubeapi.store import ListOptions, ListPage, Store, StoredObject, Watch, WatchEvent, decoded, encode

_HOME = {
    "APIError": "errors",
    "Status": "errors",
    "DeleteOptions": "objects",
    "ObjectService": "objects",
    "PrinterColumn": "resources",
    "Registry": "resources",
    "ResourceType": "resources",
    "FieldSelector": "selectors",
    "LabelSelector": "selectors",
    "Selector": "selectors",
    "KubeAPI": "server",
    "RequestAttributes": "server",
    "User": "server",
    "ListOptions": "store",
    "ListPage": "store",
    "Store": "store",
    "StoredObject": "store",
    "Watch": "store",
    "WatchEvent": "store",
    "decoded": "store",
    "encode": "store",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'kubeapi' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kubeapi.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "APIError",
    "DeleteOptions",
    "FieldSelector",
    "KubeAPI",
    "LabelSelector",
    "ListOptions",
    "ListPage",
    "ObjectService",
    "PrinterColumn",
    "Registry",
    "RequestAttributes",
    "ResourceType",
    "Selector",
    "Status",
    "Store",
    "StoredObject",
    "User",
    "Watch",
    "WatchEvent",
    "decoded",
    "encode",
]
