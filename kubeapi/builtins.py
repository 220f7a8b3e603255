"""The built-in Kubernetes resource types, with kubectl's usual table columns.

One list for every server built on kubeapi: the embedded API server serves all of it, the edge
MetaServer serves it read-only, so ``kubectl get`` prints the same columns against either. Only
dataclasses and plain functions live here (no aiohttp), so importing it stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeapi._tables import age
from kubeapi.resources import ALL_VERBS, PrinterColumn, ResourceType

_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")
_NAME = PrinterColumn("Name", "string", ".metadata.name", format="name")


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def _pod_ready(obj: Mapping[str, Any]) -> str:
    containers = _get(obj, "spec", "containers") or []
    statuses = _get(obj, "status", "containerStatuses") or []
    ready = sum(1 for s in statuses if isinstance(s, Mapping) and s.get("ready"))
    return f"{ready}/{len(containers)}"


def _pod_status(obj: Mapping[str, Any]) -> str:
    if _get(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for s in _get(obj, "status", "containerStatuses") or []:
        waiting = _get(s, "state", "waiting", "reason")
        if waiting:
            return str(waiting)
    return str(_get(obj, "status", "reason") or _get(obj, "status", "phase") or "Pending")


def _pod_restarts(obj: Mapping[str, Any]) -> int:
    return sum(
        int(s.get("restartCount") or 0)
        for s in _get(obj, "status", "containerStatuses") or []
        if isinstance(s, Mapping)
    )


def _node_status(obj: Mapping[str, Any]) -> str:
    status = "Unknown"
    for c in _get(obj, "status", "conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            status = "Ready" if c.get("status") == "True" else "NotReady"
    if _get(obj, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: Mapping[str, Any]) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in (_get(obj, "metadata", "labels") or {}) if k.startswith(prefix))
    return ",".join(r for r in roles if r) or "<none>"


def _count(*path: str) -> Any:
    def compute(obj: Mapping[str, Any]) -> int:
        total = 0
        for p in path:
            value = _get(obj, *p.split("."))
            total += len(value) if isinstance(value, (Mapping, list)) else 0
        return total

    return compute


def _service_ports(obj: Mapping[str, Any]) -> str:
    out = []
    for p in _get(obj, "spec", "ports") or []:
        if not isinstance(p, Mapping):
            continue
        text = str(p.get("port", ""))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ips(obj: Mapping[str, Any]) -> str:
    ips = list(_get(obj, "spec", "externalIPs") or [])
    for ing in _get(obj, "status", "loadBalancer", "ingress") or []:
        if isinstance(ing, Mapping):
            ips.append(ing.get("ip") or ing.get("hostname") or "")
    return ",".join(ips) or "<none>"


def _endpoints(obj: Mapping[str, Any]) -> str:
    out = []
    for subset in _get(obj, "subsets") or []:
        ports = [p.get("port") for p in subset.get("ports") or []] or [None]
        for addr in subset.get("addresses") or []:
            for port in ports:
                out.append(f"{addr.get('ip')}:{port}" if port else str(addr.get("ip")))
    if len(out) > 3:
        return ",".join(out[:3]) + f" + {len(out) - 3} more..."
    return ",".join(out) or "<none>"


def _slice_ports(obj: Mapping[str, Any]) -> str:
    ports = [str(p.get("port")) for p in obj.get("ports") or [] if isinstance(p, Mapping)]
    return ",".join(ports) or "<unset>"


def _slice_endpoints(obj: Mapping[str, Any]) -> str:
    addrs = [
        a for e in obj.get("endpoints") or [] if isinstance(e, Mapping) for a in e.get("addresses") or []
    ]
    if len(addrs) > 3:
        return ",".join(addrs[:3]) + f" + {len(addrs) - 3} more..."
    return ",".join(addrs) or "<unset>"


def _deploy_ready(obj: Mapping[str, Any]) -> str:
    return f"{_get(obj, 'status', 'readyReplicas') or 0}/{_get(obj, 'spec', 'replicas') or 0}"


def _event_object(obj: Mapping[str, Any]) -> str:
    kind = str(_get(obj, "involvedObject", "kind") or "").lower()
    return f"{kind}/{_get(obj, 'involvedObject', 'name') or ''}"


def _event_last_seen(obj: Mapping[str, Any]) -> str:
    stamp = obj.get("lastTimestamp") or obj.get("eventTime") or _get(obj, "metadata", "creationTimestamp")
    return age(stamp)


def _crd_created(obj: Mapping[str, Any]) -> Any:
    return _get(obj, "metadata", "creationTimestamp")


def _c(name: str, compute: Any, type_: str = "string", priority: int = 0) -> PrinterColumn:
    return PrinterColumn(name, type_, compute=compute, priority=priority)


def _p(name: str, path: str, type_: str = "string", priority: int = 0) -> PrinterColumn:
    return PrinterColumn(name, type_, json_path=path, priority=priority)


def builtin_types() -> list[ResourceType]:
    """A fresh list of the built-in types (callers may ``dataclasses.replace`` entries freely)."""
    core = "v1"
    return [
        ResourceType(
            "",
            core,
            "Namespace",
            "namespaces",
            "namespace",
            False,
            ("ns",),
            # No deletecollection: kube-apiserver refuses deleting every namespace at once.
            verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"),
            subresources=("status",),
            dns_label_names=True,
            printer_columns=(_NAME, _p("Status", ".status.phase"), _AGE),
        ),
        ResourceType(
            "",
            core,
            "Node",
            "nodes",
            "node",
            False,
            ("no",),
            subresources=("status",),
            printer_columns=(
                _NAME,
                _c("Status", _node_status),
                _c("Roles", _node_roles),
                _AGE,
                _p("Version", ".status.nodeInfo.kubeletVersion"),
                _p("Internal-IP", '.status.addresses[?(@.type=="InternalIP")].address', priority=1),
                _p("OS-Image", ".status.nodeInfo.osImage", priority=1),
            ),
        ),
        ResourceType(
            "",
            core,
            "Pod",
            "pods",
            "pod",
            True,
            ("po",),
            ("all",),
            subresources=("status", "binding"),
            # kube-apiserver 1.35+ counts a Pod's spec changes (PodObservedGenerationTracking).
            tracks_generation=True,
            selectable_fields=(
                "spec.nodeName",
                "status.phase",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.podIP",
                "status.nominatedNodeName",
            ),
            printer_columns=(
                _NAME,
                _c("Ready", _pod_ready),
                _c("Status", _pod_status),
                _c("Restarts", _pod_restarts, "integer"),
                _AGE,
                _p("IP", ".status.podIP", priority=1),
                _p("Node", ".spec.nodeName", priority=1),
            ),
        ),
        ResourceType(
            "",
            core,
            "ConfigMap",
            "configmaps",
            "configmap",
            True,
            ("cm",),
            printer_columns=(_NAME, _c("Data", _count("data", "binaryData"), "integer"), _AGE),
        ),
        ResourceType(
            "",
            core,
            "Secret",
            "secrets",
            "secret",
            True,
            selectable_fields=("type",),
            printer_columns=(_NAME, _p("Type", ".type"), _c("Data", _count("data"), "integer"), _AGE),
        ),
        ResourceType(
            "",
            core,
            "Service",
            "services",
            "service",
            True,
            ("svc",),
            ("all",),
            subresources=("status",),
            dns_label_names=True,
            printer_columns=(
                _NAME,
                _p("Type", ".spec.type"),
                _p("Cluster-IP", ".spec.clusterIP"),
                _c("External-IP", _external_ips),
                _c("Port(s)", _service_ports),
                _AGE,
                _p("Selector", ".spec.selector", priority=1),
            ),
        ),
        ResourceType(
            "",
            core,
            "Endpoints",
            "endpoints",
            "endpoints",
            True,
            ("ep",),
            printer_columns=(_NAME, _c("Endpoints", _endpoints), _AGE),
        ),
        ResourceType(
            "",
            core,
            "Event",
            "events",
            "event",
            True,
            ("ev",),
            selectable_fields=(
                "involvedObject.kind",
                "involvedObject.name",
                "involvedObject.namespace",
                "involvedObject.uid",
                "reason",
                "type",
                "source",
            ),
            printer_columns=(
                _c("Last Seen", _event_last_seen),
                _p("Type", ".type"),
                _p("Reason", ".reason"),
                _c("Object", _event_object),
                _p("Message", ".message"),
            ),
        ),
        ResourceType(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            "endpointslice",
            True,
            tracks_generation=True,
            printer_columns=(
                _NAME,
                _p("AddressType", ".addressType"),
                _c("Ports", _slice_ports),
                _c("Endpoints", _slice_endpoints),
                _AGE,
            ),
        ),
        ResourceType(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "deployment",
            True,
            ("deploy",),
            ("all",),
            subresources=("status", "scale"),
            tracks_generation=True,
            printer_columns=(
                _NAME,
                _c("Ready", _deploy_ready),
                _p("Up-to-date", ".status.updatedReplicas", "integer"),
                _p("Available", ".status.availableReplicas", "integer"),
                _AGE,
            ),
        ),
        ResourceType(
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            "replicaset",
            True,
            ("rs",),
            ("all",),
            subresources=("status", "scale"),
            tracks_generation=True,
            printer_columns=(
                _NAME,
                _p("Desired", ".spec.replicas", "integer"),
                _p("Current", ".status.replicas", "integer"),
                _p("Ready", ".status.readyReplicas", "integer"),
                _AGE,
            ),
        ),
        ResourceType(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            "lease",
            True,
            printer_columns=(_NAME, _p("Holder", ".spec.holderIdentity"), _AGE),
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            "customresourcedefinition",
            False,
            ("crd", "crds"),
            ("api-extensions",),
            subresources=("status",),
            tracks_generation=True,
            printer_columns=(_NAME, _c("Created At", _crd_created)),
        ),
        # Stored and served so that manifests for a real cluster (deploy/) apply; kubeapi does not
        # enforce RBAC or mint service-account tokens.
        ResourceType("", core, "ServiceAccount", "serviceaccounts", "serviceaccount", True, ("sa",)),
        *(
            ResourceType(
                "rbac.authorization.k8s.io",
                "v1",
                kind,
                kind.lower() + "s",
                kind.lower(),
                namespaced,
                printer_columns=(_NAME, _AGE),
            )
            for kind, namespaced in (
                ("Role", True),
                ("RoleBinding", True),
                ("ClusterRole", False),
                ("ClusterRoleBinding", False),
            )
        ),
    ]
