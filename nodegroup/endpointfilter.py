"""What of an EndpointSlice or Endpoints an edge node may see (KubeEdge's ``endpointresource`` and
``defaultMaster`` filters), as pure functions for cloudcore to apply on every path that sends them.

* A Service annotated ``apps.kubeedge.io/service-topology: range-nodegroup`` keeps its traffic inside
  a node group: a node receives only endpoints on itself or on nodes of its own group. Nodes in no
  group count as one group, as in KubeEdge. Endpoints without a nodeName cannot be placed and are
  dropped from such Services.
* ``default/kubernetes`` is rewritten to the receiving node's MetaServer, so in-cluster clients on
  the edge (``KUBERNETES_SERVICE_HOST``) reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nodegroup._naming import (
    BELONGING_TO_LABEL,
    SERVICE_NAME_LABEL,
    SERVICE_TOPOLOGY_ANNOTATION,
    SERVICE_TOPOLOGY_RANGE_NODEGROUP,
)

__all__ = [
    "BELONGING_TO_LABEL",
    "SERVICE_NAME_LABEL",
    "SERVICE_TOPOLOGY_ANNOTATION",
    "SERVICE_TOPOLOGY_RANGE_NODEGROUP",
    "filter_endpoint_slice",
    "filter_endpoints",
    "is_group_scoped",
    "owning_service_name",
]

Obj = Mapping[str, Any]
# Node name -> the node's group, or None when the node is in no group (or unknown).
GroupOf = Callable[[str], str | None]


def is_group_scoped(service: Obj | None) -> bool:
    if not service:
        return False
    annotations = service.get("metadata", {}).get("annotations") or {}
    return bool(annotations.get(SERVICE_TOPOLOGY_ANNOTATION) == SERVICE_TOPOLOGY_RANGE_NODEGROUP)


def owning_service_name(obj: Obj) -> str | None:
    """The Service an EndpointSlice (label) or Endpoints (same name) belongs to."""
    metadata = obj.get("metadata", {})
    if obj.get("kind") == "Endpoints":
        name = metadata.get("name")
        return str(name) if name else None
    service = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return str(service) if service else None


def _is_default_kubernetes(obj: Obj) -> bool:
    metadata = obj.get("metadata", {})
    if metadata.get("namespace") != "default":
        return False
    if obj.get("kind") == "Endpoints":
        return bool(metadata.get("name") == "kubernetes")
    return owning_service_name(obj) == "kubernetes" or metadata.get("name") == "kubernetes"


def _same_group(node: str | None, target: str, target_group: str | None, group_of: GroupOf) -> bool:
    if not node:
        return False
    return node == target or group_of(node) == target_group


def filter_endpoint_slice(
    slice_: Obj,
    service: Obj | None,
    target_node: str,
    group_of: GroupOf,
    metaserver_port: int | None = None,
) -> dict[str, Any]:
    """``slice_`` as ``target_node`` should hold it: a new top-level dict (nested values may be shared
    with the input, which is never modified; treat the result as read-only)."""
    out: dict[str, Any] = dict(slice_)
    if metaserver_port is not None and _is_default_kubernetes(out):
        return _point_slice_at_metaserver(out, metaserver_port)
    if is_group_scoped(service):
        group = group_of(target_node)
        out["endpoints"] = [
            ep
            for ep in out.get("endpoints") or []
            if _same_group(ep.get("nodeName"), target_node, group, group_of)
        ]
    return out


def filter_endpoints(
    endpoints: Obj,
    service: Obj | None,
    target_node: str,
    group_of: GroupOf,
    metaserver_port: int | None = None,
) -> dict[str, Any]:
    """A v1 Endpoints as ``target_node`` should hold it (read-only result, as for slices)."""
    out: dict[str, Any] = dict(endpoints)
    if metaserver_port is not None and _is_default_kubernetes(out):
        return _point_endpoints_at_metaserver(out, metaserver_port)
    if not is_group_scoped(service):
        return out
    group = group_of(target_node)
    subsets = []
    for original in out.get("subsets") or []:
        subset = dict(original)
        for key in ("addresses", "notReadyAddresses"):
            kept = [
                a
                for a in subset.get(key) or []
                if _same_group(a.get("nodeName"), target_node, group, group_of)
            ]
            if kept:
                subset[key] = kept
            else:
                subset.pop(key, None)
        if subset.get("addresses") or subset.get("notReadyAddresses"):
            subsets.append(subset)
    out["subsets"] = subsets
    return out


def _loopback(address_type: str | None) -> str:
    return "::1" if address_type == "IPv6" else "127.0.0.1"


def _point_slice_at_metaserver(out: dict[str, Any], port: int) -> dict[str, Any]:
    endpoints = out.get("endpoints") or []
    first = dict(endpoints[0]) if endpoints else {"conditions": {"ready": True}}
    first["addresses"] = [_loopback(out.get("addressType"))]
    first.pop("nodeName", None)
    first.pop("targetRef", None)
    out["endpoints"] = [first]
    ports = [dict(p) for p in out.get("ports") or []] or [{"name": "https", "protocol": "TCP"}]
    for p in ports:
        if p.get("name") == "https":
            p["port"] = port
    out["ports"] = ports
    return out


def _point_endpoints_at_metaserver(out: dict[str, Any], port: int) -> dict[str, Any]:
    subsets = out.get("subsets") or [{}]
    subset = dict(subsets[0])
    subset["addresses"] = [{"ip": "127.0.0.1"}]
    subset.pop("notReadyAddresses", None)
    ports = [dict(p) for p in subset.get("ports") or []] or [{"name": "https", "protocol": "TCP"}]
    for p in ports:
        if p.get("name") == "https":
            p["port"] = port
    subset["ports"] = ports
    out["subsets"] = [subset]
    return out
