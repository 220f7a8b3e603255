"""Defaulting of built-in kinds, as kube-apiserver v1.36 does to every object it decodes (create,
update, patch, /status): the fields a client left out come back filled in, so a kubelet (KubeEdge's
edged refuses a Pod without ``enableServiceLinks``) or a controller reads what it would read from a
real cluster.

Where each default comes from:

- Kubernetes' OpenAPI (``kubeapi/_generated_defaults.py``, generated from the committed spec): every
  property with a ``default``. These are the ``+default`` markers (a container port's or a Service
  port's ``protocol: TCP``) and the Go zero values kube-apiserver writes for non-pointer fields
  (a container's ``resources: {}``, a Deployment's ``status: {}``, a Node's ``nodeInfo`` strings).
  Applied where the field is absent or null, also inside the defaults themselves.
- Kubernetes' ``SetDefaults_*`` functions, written out below, each named after the one it follows:
  ``pkg/apis/core/v1/defaults.go`` (Pod, PodSpec, Container, Probe, HTTPGetAction, Volume and its
  sources, ObjectFieldSelector, Service, Secret, Namespace, NodeStatus, Endpoints),
  ``pkg/apis/apps/v1/defaults.go`` (Deployment, ReplicaSet), ``pkg/apis/discovery/v1/defaults.go``
  (EndpointPort), ``pkg/apis/rbac/v1/defaults.go`` (RoleBinding, ClusterRoleBinding, Subject),
  ``apiextensions/v1/defaults.go`` (the CRD conversion strategy). Pod templates of Deployments and
  ReplicaSets get the PodSpec, Container and Volume defaults but not the Pod's own
  (``enableServiceLinks``), as in Kubernetes.
- Not defaulting, but what kube-apiserver's storage adds the same way and a client reads the same way:
  a Service's ``ipFamilies``/``ipFamilyPolicy`` (single-stack IPv4, as a single-stack cluster
  answers) and ``clusterIPs`` from ``clusterIP``; an Event's ``eventTime``/``firstTimestamp``/
  ``lastTimestamp`` as ``null`` (Go writes its non-pointer times so).

Pure functions over decoded JSON, changing the object in place; values of the wrong type are left as
they are (defaulting never fails a request). What kube-apiserver's admission plugins add (a Pod's
service account token volume, tolerations, priority) is not here: see docs/apiserver.md.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

from kubeapi import _generated_defaults as generated

Obj = dict[str, Any]

# Bumped when a default is added or changed: a store defaults what it holds again, once, on opening.
DEFAULTS_VERSION = 1


def apply_defaults(group: str, version: str, kind: str, obj: Obj) -> None:
    """Fill in what kube-apiserver defaults in ``obj``, a ``group/version`` ``kind`` (in place)."""
    hand = _BY_KIND.get((group, version, kind))
    if hand is not None:
        hand(obj)
    root = generated.KINDS.get((group, version, kind))
    if root is not None:
        _schema_defaults(root, obj)


# --------------------------------------------------------------------------------------------------
# From the OpenAPI spec


def _schema_defaults(definition: str, obj: Obj) -> None:
    for prop, has_default, default, child, shape in generated.DEFAULTS.get(definition, ()):
        value = obj.get(prop)
        if value is None and has_default:
            value = obj[prop] = copy.deepcopy(default)
        if not child or child not in generated.DEFAULTS:
            continue
        if shape == "[]":
            items = value if isinstance(value, list) else []
        elif shape == "{}":
            items = list(value.values()) if isinstance(value, dict) else []
        else:
            items = [value]
        for item in items:
            if isinstance(item, dict):
                _schema_defaults(child, item)


# --------------------------------------------------------------------------------------------------
# Kubernetes' SetDefaults functions


def _dict(obj: Any, key: str) -> Obj | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else None


def _dicts(obj: Any, key: str) -> Iterator[Obj]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _pull_policy(image: Any) -> str:
    """Always for ``:latest`` or no tag (parsers.ParseImageName), IfNotPresent otherwise."""
    name, digest, _ = (image if isinstance(image, str) else "").partition("@")
    last = name.rsplit("/", 1)[-1]
    # A reference by digest alone has no tag (ParseImageName adds "latest" only without a digest).
    tag = last.rsplit(":", 1)[1] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def _containers(spec: Obj) -> Iterator[Obj]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from _dicts(spec, key)


def set_defaults_pod(pod: Obj) -> None:
    """SetDefaults_Pod: requests from limits, ``enableServiceLinks``, host ports on the host network;
    then the PodSpec's."""
    spec = _dict(pod, "spec")
    if spec is None:
        return
    for key in ("containers", "initContainers"):
        for container in _dicts(spec, key):
            resources = _dict(container, "resources")
            limits = _dict(resources, "limits")
            if resources is None or limits is None:
                continue
            requests = resources.get("requests")
            if not isinstance(requests, dict):
                requests = resources["requests"] = {}
            for name, value in limits.items():
                requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for container in _dicts(spec, key):
                for port in _dicts(container, "ports"):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    set_defaults_pod_spec(spec)


def set_defaults_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec, and below it what SetObjectDefaults_Pod/PodTemplate default: volumes,
    containers, probes, handlers, field selectors."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for volume in _dicts(spec, "volumes"):
        set_defaults_volume(volume)
    for container in _containers(spec):
        set_defaults_container(container)


def set_defaults_container(container: Obj) -> None:
    """SetDefaults_Container (and EphemeralContainer), with its probes, lifecycle handlers and
    environment field references."""
    if not container.get("imagePullPolicy"):
        container["imagePullPolicy"] = _pull_policy(container.get("image"))
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = _dict(container, key)
        if probe is not None:
            set_defaults_probe(probe)
    lifecycle = _dict(container, "lifecycle")
    for key in ("postStart", "preStop"):
        handler = _dict(_dict(lifecycle, key), "httpGet")
        if handler is not None:
            set_defaults_http_get_action(handler)
    for env in _dicts(container, "env"):
        field_ref = _dict(_dict(env, "valueFrom"), "fieldRef")
        if field_ref is not None:
            set_defaults_object_field_selector(field_ref)


def set_defaults_probe(probe: Obj) -> None:
    """SetDefaults_Probe."""
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):  # fmt: skip
        if not probe.get(key):
            probe[key] = value
    handler = _dict(probe, "httpGet")
    if handler is not None:
        set_defaults_http_get_action(handler)


def set_defaults_http_get_action(action: Obj) -> None:
    """SetDefaults_HTTPGetAction."""
    if not action.get("path"):
        action["path"] = "/"
    if not action.get("scheme"):
        action["scheme"] = "HTTP"


def set_defaults_object_field_selector(selector: Obj) -> None:
    """SetDefaults_ObjectFieldSelector."""
    if not selector.get("apiVersion"):
        selector["apiVersion"] = "v1"


# A volume's sources (VolumeSource's pointer fields): a volume with none of them is an emptyDir.
_VOLUME_SOURCES = frozenset(
    {
        "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
        "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
        "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
        "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
        "image",
    }
)  # fmt: skip
_FILE_MODE = 0o644  # SecretVolumeSourceDefaultMode and its siblings


def set_defaults_volume(volume: Obj) -> None:
    """SetDefaults_Volume, and the defaults of its sources: file modes of secret, configMap,
    downwardAPI and projected volumes, a projected token's expiry, a hostPath's type, an ephemeral
    claim's volumeMode."""
    if not any(volume.get(key) is not None for key in _VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = _dict(volume, key)
        if source is not None and source.get("defaultMode") is None:
            source["defaultMode"] = _FILE_MODE
    for item in _dicts(_dict(volume, "downwardAPI"), "items"):
        _default_downward_api_file(item)
    for projection in _dicts(_dict(volume, "projected"), "sources"):
        token = _dict(projection, "serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = 3600
        for item in _dicts(_dict(projection, "downwardAPI"), "items"):
            _default_downward_api_file(item)
    host_path = _dict(volume, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    claim = _dict(_dict(_dict(volume, "ephemeral"), "volumeClaimTemplate"), "spec")
    if claim is not None and claim.get("volumeMode") is None:
        claim["volumeMode"] = "Filesystem"


def _default_downward_api_file(item: Obj) -> None:
    field_ref = _dict(item, "fieldRef")
    if field_ref is not None:
        set_defaults_object_field_selector(field_ref)


def _pod_template(owner: Obj) -> None:
    spec = _dict(_dict(_dict(owner, "spec"), "template"), "spec")
    if spec is not None:
        set_defaults_pod_spec(spec)


def set_defaults_deployment(deployment: Obj) -> None:
    """SetDefaults_Deployment (apps/v1), and its pod template's."""
    spec = _dict(deployment, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("strategy") is None:
        spec["strategy"] = {}
    strategy = _dict(spec, "strategy")
    if strategy is not None and not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy is not None and strategy["type"] == "RollingUpdate":
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
        rolling = _dict(strategy, "rollingUpdate")
        for key in ("maxUnavailable", "maxSurge"):
            if rolling is not None and rolling.get(key) is None:
                rolling[key] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _pod_template(deployment)


def set_defaults_replica_set(replica_set: Obj) -> None:
    """SetDefaults_ReplicaSet (apps/v1), and its pod template's."""
    spec = _dict(replica_set, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _pod_template(replica_set)


_EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


def set_defaults_service(service: Obj) -> None:
    """SetDefaults_Service; then the IP families kube-apiserver's Service storage fills in on a
    single-stack IPv4 cluster (a headless Service without a selector is RequireDualStack there)."""
    spec = _dict(service, "spec")
    if spec is None:
        return
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _dict(_dict(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    kind = spec["type"]
    for port in _dicts(spec, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    externally_accessible = kind in _EXTERNAL_TYPES or (kind == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally_accessible and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and kind in ("ClusterIP", *_EXTERNAL_TYPES):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        for ingress in _dicts(_dict(_dict(service, "status"), "loadBalancer"), "ingress"):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"
    if kind == "ExternalName":
        return
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and spec.get("clusterIPs") is None:
        spec["clusterIPs"] = [cluster_ip]
    if spec.get("ipFamilyPolicy") is None:
        headless_without_selector = cluster_ip == "None" and not spec.get("selector")
        spec["ipFamilyPolicy"] = "RequireDualStack" if headless_without_selector else "SingleStack"
    if spec.get("ipFamilies") is None:
        dual = spec["ipFamilyPolicy"] == "RequireDualStack"
        spec["ipFamilies"] = ["IPv4", "IPv6"] if dual else ["IPv4"]


def set_defaults_secret(secret: Obj) -> None:
    """SetDefaults_Secret."""
    if not secret.get("type"):
        secret["type"] = "Opaque"


def set_defaults_namespace(namespace: Obj) -> None:
    """SetDefaults_Namespace (the name label, which cannot be removed) and SetDefaults_NamespaceStatus."""
    meta = _dict(namespace, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is not None and isinstance(name, str) and name:
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels["kubernetes.io/metadata.name"] = name
    status = namespace.get("status")
    if not isinstance(status, dict):
        status = namespace["status"] = {}
    if not status.get("phase"):
        status["phase"] = "Active"


def set_defaults_node(node: Obj) -> None:
    """SetDefaults_NodeStatus: allocatable is the capacity unless given."""
    status = _dict(node, "status")
    if status is not None and status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def set_defaults_endpoints(endpoints: Obj) -> None:
    """SetDefaults_Endpoints."""
    for subset in _dicts(endpoints, "subsets"):
        for port in _dicts(subset, "ports"):
            if not port.get("protocol"):
                port["protocol"] = "TCP"


def set_defaults_endpoint_slice(endpoint_slice: Obj) -> None:
    """SetDefaults_EndpointPort (discovery/v1)."""
    for port in _dicts(endpoint_slice, "ports"):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


def set_defaults_event(event: Obj) -> None:
    """Go writes an Event's non-pointer times, unset, as null."""
    for key in ("eventTime", "firstTimestamp", "lastTimestamp"):
        event.setdefault(key, None)


_RBAC = "rbac.authorization.k8s.io"


def set_defaults_role_binding(binding: Obj) -> None:
    """SetDefaults_RoleBinding / ClusterRoleBinding and SetDefaults_Subject (rbac/v1)."""
    role_ref = _dict(binding, "roleRef")
    if role_ref is not None and not role_ref.get("apiGroup"):
        role_ref["apiGroup"] = _RBAC
    for subject in _dicts(binding, "subjects"):
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = _RBAC


def set_defaults_custom_resource_definition(crd: Obj) -> None:
    """SetDefaults_CustomResourceDefinitionSpec (apiextensions/v1): the singular and list names from
    the kind; no conversion means None."""
    spec = _dict(crd, "spec")
    if spec is None:
        return
    names = _dict(spec, "names")
    kind = names.get("kind") if names is not None else None
    if names is not None and isinstance(kind, str) and kind:
        if not names.get("singular"):
            names["singular"] = kind.lower()
        if not names.get("listKind"):
            names["listKind"] = kind + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}


_BY_KIND: dict[tuple[str, str, str], Callable[[Obj], None]] = {
    ("", "v1", "Pod"): set_defaults_pod,
    ("", "v1", "Service"): set_defaults_service,
    ("", "v1", "Secret"): set_defaults_secret,
    ("", "v1", "Namespace"): set_defaults_namespace,
    ("", "v1", "Node"): set_defaults_node,
    ("", "v1", "Endpoints"): set_defaults_endpoints,
    ("", "v1", "Event"): set_defaults_event,
    ("apps", "v1", "Deployment"): set_defaults_deployment,
    ("apps", "v1", "ReplicaSet"): set_defaults_replica_set,
    ("discovery.k8s.io", "v1", "EndpointSlice"): set_defaults_endpoint_slice,
    (_RBAC, "v1", "RoleBinding"): set_defaults_role_binding,
    (_RBAC, "v1", "ClusterRoleBinding"): set_defaults_role_binding,
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"): set_defaults_custom_resource_definition,
}
