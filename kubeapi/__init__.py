"""kubeapi: the one Kubernetes-compatible HTTP API layer, over a :class:`Store`.

Used by the embedded API server (cloudcore/apiserver) and, read-only, by the edge MetaServer.
"""

from kubeapi.errors import APIError, Status
from kubeapi.objects import DeleteOptions, ObjectService
from kubeapi.resources import PrinterColumn, Registry, ResourceType
from kubeapi.selectors import FieldSelector, LabelSelector, Selector
from kubeapi.server import KubeAPI, RequestAttributes, User
from kubeapi.store import ListOptions, ListPage, Store, StoredObject, Watch, WatchEvent, decoded, encode

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
