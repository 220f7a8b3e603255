"""The one wrapper around the official ``kubernetes`` client: requests, informers, work queue.

Cloud side only (cloudcore, nodegroup); edge code never imports it.
"""

from kubeclient._client import (
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    ENDPOINTS,
    ENDPOINTSLICES,
    EVENTS,
    JSON_PATCH,
    LEASES,
    MERGE_PATCH,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SECRETS,
    SERVICES,
    STRATEGIC_MERGE_PATCH,
    ApiError,
    Kube,
    Obj,
    Resource,
    load_api_client,
    object_key,
    split_api_version,
)
from kubeclient._events import EventRecorder
from kubeclient._informer import EventHandler, Informer, run_controller, wait_synced
from kubeclient._workqueue import WorkQueue

__all__ = [
    "CONFIGMAPS",
    "CRDS",
    "DEPLOYMENTS",
    "ENDPOINTS",
    "ENDPOINTSLICES",
    "EVENTS",
    "JSON_PATCH",
    "LEASES",
    "MERGE_PATCH",
    "NAMESPACES",
    "NODES",
    "PODS",
    "REPLICASETS",
    "SECRETS",
    "SERVICES",
    "STRATEGIC_MERGE_PATCH",
    "ApiError",
    "EventHandler",
    "EventRecorder",
    "Informer",
    "Kube",
    "Obj",
    "Resource",
    "WorkQueue",
    "load_api_client",
    "object_key",
    "run_controller",
    "split_api_version",
    "wait_synced",
]
