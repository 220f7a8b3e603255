"""Minimal OpenAPI v3 schemas of the built-in kinds kubeshore serves, and of the meta/v1 types.

Schemas are written once in OpenAPI v3 form with references ``#/components/schemas/<name>``;
:mod:`kubeapi.openapi` rewrites them for swagger 2.0. They document the fields people use (for
``kubectl explain``) rather than every field of k8s.io/api; objects whose contents are not spelled
out carry ``x-kubernetes-preserve-unknown-fields``. Lists that strategic merge patch merges carry
``x-kubernetes-patch-strategy``/``x-kubernetes-patch-merge-key`` agreeing with
:data:`kubeapi.patch.STRATEGIC_MERGE_LISTS` (tests/test_openapi.py checks both ways).
"""

from __future__ import annotations

from typing import Any

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
DISCOVERY = "io.k8s.api.discovery.v1."
COORDINATION = "io.k8s.api.coordination.v1."
AUTOSCALING = "io.k8s.api.autoscaling.v1."
APIEXTENSIONS = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."

Schema = dict[str, Any]


def ref(name: str, description: str = "") -> Schema:
    """A reference with a description, in the ``allOf`` form kube-apiserver's v3 documents use."""
    out: Schema = {"allOf": [{"$ref": f"#/components/schemas/{name}"}]}
    if description:
        out["description"] = description
    return out


def string(description: str = "", fmt: str = "", enum: list[str] | None = None) -> Schema:
    out: Schema = {"type": "string"}
    if fmt:
        out["format"] = fmt
    if enum:
        out["enum"] = enum
    if description:
        out["description"] = description
    return out


def integer(description: str = "", fmt: str = "int32") -> Schema:
    out: Schema = {"type": "integer", "format": fmt}
    if description:
        out["description"] = description
    return out


def boolean(description: str = "") -> Schema:
    out: Schema = {"type": "boolean"}
    if description:
        out["description"] = description
    return out


def array(items: Schema, description: str = "") -> Schema:
    out: Schema = {"type": "array", "items": items}
    if description:
        out["description"] = description
    return out


def string_map(description: str = "", fmt: str = "") -> Schema:
    out: Schema = {"type": "object", "additionalProperties": string(fmt=fmt)}
    if description:
        out["description"] = description
    return out


def free_object(description: str = "") -> Schema:
    out: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if description:
        out["description"] = description
    return out


def obj(description: str, properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    out: Schema = {"description": description, "type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def int_or_string(description: str = "") -> Schema:
    return ref(INT_OR_STRING, description)


TIME = string("Time is a timestamp in RFC 3339 form, e.g. 2024-01-02T15:04:05Z.", "date-time")
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values."
)
KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. In CamelCase."
)
METADATA_DOC = "Standard object's metadata."
LIST_METADATA_DOC = "Standard list metadata."


def meta_schemas() -> dict[str, Schema]:
    """The meta/v1 types every document references."""
    owner_reference = obj(
        "OwnerReference contains enough information to let you identify an owning object.",
        {
            "apiVersion": string("API version of the referent."),
            "kind": string("Kind of the referent."),
            "name": string("Name of the referent."),
            "uid": string("UID of the referent."),
            "controller": boolean("If true, this reference points to the managing controller."),
            "blockOwnerDeletion": boolean(
                "If true, and if the owner has the foregroundDeletion finalizer, the owner cannot be deleted "
                "from the key-value store until this reference is removed."
            ),
        },
        ["apiVersion", "kind", "name", "uid"],
    )
    owner_reference["x-kubernetes-map-type"] = "atomic"
    return {
        META + "Time": TIME,
        META + "MicroTime": string("MicroTime is a timestamp with microseconds.", "date-time"),
        QUANTITY: {
            "description": "Quantity is a fixed-point representation of a number, e.g. 100m, 1Gi, 2.",
            "type": "string",
        },
        INT_OR_STRING: {
            "description": "IntOrString is a type that can hold an int32 or a string.",
            "type": "string",
            "format": "int-or-string",
        },
        META + "OwnerReference": owner_reference,
        META + "ManagedFieldsEntry": free_object(
            "ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the "
            "fieldset applies to."
        ),
        META + "ObjectMeta": obj(
            "ObjectMeta is metadata that all persisted resources must have.",
            {
                "name": string("Name must be unique within a namespace."),
                "generateName": string(
                    "Optional prefix used by the server to generate a unique name if name is not provided."
                ),
                "namespace": string("Namespace defines the space within which each name must be unique."),
                "uid": string("UID is the unique in time and space value for this object."),
                "resourceVersion": string(
                    "An opaque value that represents the internal version of this object, used for "
                    "optimistic "
                    "concurrency, change detection, and the watch operation."
                ),
                "generation": integer(
                    "A sequence number representing a specific generation of the desired state.", "int64"
                ),
                "creationTimestamp": ref(META + "Time", "Time at which this object was created."),
                "deletionTimestamp": ref(
                    META + "Time", "Time at which this resource will be deleted; set by the server on delete."
                ),
                "deletionGracePeriodSeconds": integer(
                    "Seconds allowed for this object to gracefully terminate before it is removed.", "int64"
                ),
                "labels": string_map("Map of string keys and values used to organize and select objects."),
                "annotations": string_map("Unstructured key value map stored with a resource."),
                "finalizers": {
                    **array(
                        string(),
                        "Must be empty before the object is deleted from the registry. Each entry identifies "
                        "a controller responsible for cleanup.",
                    ),
                    "x-kubernetes-list-type": "set",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "ownerReferences": {
                    **array(
                        ref(META + "OwnerReference"),
                        "List of objects depended by this object; garbage collected when all owners "
                        "are gone.",
                    ),
                    "x-kubernetes-list-map-keys": ["uid"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge",
                },
                "managedFields": array(
                    ref(META + "ManagedFieldsEntry"), "Field ownership (server-side apply)."
                ),
            },
        ),
        META + "ListMeta": obj(
            "ListMeta describes metadata that synthetic resources must have.",
            {
                "resourceVersion": string("Identifies the server's internal version of this list."),
                "continue": string("Set if the user should request more items (limit/continue)."),
                "remainingItemCount": integer("Number of subsequent items in the list.", "int64"),
            },
        ),
        META + "LabelSelectorRequirement": obj(
            "A label selector requirement is a selector that contains values, a key, and an operator.",
            {
                "key": string("The label key that the selector applies to."),
                "operator": string("In, NotIn, Exists or DoesNotExist."),
                "values": array(string(), "An array of string values."),
            },
            ["key", "operator"],
        ),
        META + "LabelSelector": obj(
            "A label selector is a label query over a set of resources.",
            {
                "matchLabels": string_map("Labels that must all match."),
                "matchExpressions": array(
                    ref(META + "LabelSelectorRequirement"), "Label selector requirements."
                ),
            },
        ),
        META + "Condition": obj(
            "Condition contains details for one aspect of the current state of this API Resource.",
            {
                "type": string("Type of condition in CamelCase."),
                "status": string(
                    "Status of the condition, one of True, False, Unknown.", enum=["True", "False", "Unknown"]
                ),
                "observedGeneration": integer(
                    "The .metadata.generation the condition was set upon.", "int64"
                ),
                "lastTransitionTime": ref(META + "Time", "Last time the condition transitioned."),
                "reason": string("A programmatic identifier for the last transition."),
                "message": string("A human readable message about the transition."),
            },
            ["type", "status", "lastTransitionTime", "reason", "message"],
        ),
        META + "StatusCause": obj(
            "StatusCause provides more information about an api.Status failure.",
            {"reason": string(), "message": string(), "field": string()},
        ),
        META + "StatusDetails": obj(
            "StatusDetails is a set of additional properties that MAY be set by the server.",
            {
                "name": string(),
                "group": string(),
                "kind": string(),
                "uid": string(),
                "causes": array(ref(META + "StatusCause")),
                "retryAfterSeconds": integer(),
            },
        ),
        META + "Status": {
            **obj(
                "Status is a return value for calls that don't return other objects.",
                {
                    "apiVersion": string(API_VERSION_DOC),
                    "kind": string(KIND_DOC),
                    "metadata": ref(META + "ListMeta", LIST_METADATA_DOC),
                    "status": string("Status of the operation: Success or Failure."),
                    "message": string("A human-readable description of the status of this operation."),
                    "reason": string(
                        "A machine-readable description of why this operation is in the Failure status."
                    ),
                    "details": ref(META + "StatusDetails"),
                    "code": integer("Suggested HTTP return code for this status."),
                },
            ),
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}],
        },
        META + "Preconditions": obj(
            "Preconditions must be fulfilled before an operation (update, delete, etc.) is carried out.",
            {"resourceVersion": string(), "uid": string()},
        ),
        META + "DeleteOptions": obj(
            "DeleteOptions may be provided when deleting an API object.",
            {
                "apiVersion": string(API_VERSION_DOC),
                "kind": string(KIND_DOC),
                "dryRun": array(string()),
                "gracePeriodSeconds": integer(fmt="int64"),
                "preconditions": ref(META + "Preconditions"),
                "propagationPolicy": string("Orphan, Background or Foreground."),
            },
        ),
        META + "Patch": {
            "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH "
            "request body.",
            "type": "object",
        },
        META + "WatchEvent": obj(
            "Event represents a single event to a watched resource.",
            {
                "type": string("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."),
                "object": free_object(
                    "The object: the new state, or the state before deletion, or a Status."
                ),
            },
            ["type", "object"],
        ),
    }


def _merge_list(schema: Schema, merge_key: str | None, retain_keys: bool = False) -> Schema:
    strategy = "merge,retainKeys" if retain_keys else "merge"
    out = {**schema, "x-kubernetes-patch-strategy": strategy}
    if merge_key:
        out["x-kubernetes-patch-merge-key"] = merge_key
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = [merge_key]
    return out


def _conditions(item: str) -> Schema:
    return _merge_list(array(ref(item), "Latest available observations of the object's state."), "type")


def core_schemas() -> dict[str, Schema]:
    """core/v1 types used by the kinds kubeshore serves."""
    object_reference = obj(
        "ObjectReference contains enough information to let you inspect or modify the referred object.",
        {
            "apiVersion": string("API version of the referent."),
            "kind": string("Kind of the referent."),
            "name": string("Name of the referent."),
            "namespace": string("Namespace of the referent."),
            "uid": string("UID of the referent."),
            "resourceVersion": string("Specific resourceVersion to which this reference is made."),
            "fieldPath": string("A field within the object, e.g. spec.containers{name}."),
        },
    )
    object_reference["x-kubernetes-map-type"] = "atomic"
    container = obj(
        "A single application container that you want to run within a pod.",
        {
            "name": string("Name of the container specified as a DNS_LABEL; unique in the pod."),
            "image": string("Container image name."),
            "imagePullPolicy": string(
                "Always, Never or IfNotPresent.", enum=["Always", "IfNotPresent", "Never"]
            ),
            "command": array(string(), "Entrypoint array; not executed within a shell."),
            "args": array(string(), "Arguments to the entrypoint."),
            "workingDir": string("Container's working directory."),
            "env": _merge_list(
                array(ref(CORE + "EnvVar"), "Environment variables to set in the container."), "name"
            ),
            "envFrom": array(free_object(), "Sources to populate environment variables in the container."),
            "ports": _merge_list(
                array(ref(CORE + "ContainerPort"), "Ports to expose from the container."), "containerPort"
            ),
            "resources": ref(CORE + "ResourceRequirements", "Compute resources required by this container."),
            "volumeMounts": _merge_list(
                array(ref(CORE + "VolumeMount"), "Pod volumes to mount into the container's filesystem."),
                "mountPath",
            ),
            "livenessProbe": free_object("Periodic probe of container liveness."),
            "readinessProbe": free_object("Periodic probe of container service readiness."),
            "startupProbe": free_object("StartupProbe indicates that the Pod has successfully initialized."),
            "securityContext": free_object("Security options the container should be run with."),
            "stdin": boolean("Whether this container should allocate a buffer for stdin."),
            "tty": boolean("Whether this container should allocate a TTY for itself."),
        },
        ["name"],
    )
    pod_spec = obj(
        "PodSpec is a description of a pod.",
        {
            "containers": _merge_list(
                array(ref(CORE + "Container"), "List of containers belonging to the pod."), "name"
            ),
            "initContainers": _merge_list(
                array(ref(CORE + "Container"), "List of initialization containers belonging to the pod."),
                "name",
            ),
            "volumes": _merge_list(
                array(ref(CORE + "Volume"), "List of volumes that can be mounted by containers."),
                "name",
                True,
            ),
            "nodeName": string("Request to schedule this pod onto a specific node."),
            "nodeSelector": string_map("Labels a node must have for the pod to fit on it."),
            "restartPolicy": string("Always, OnFailure or Never.", enum=["Always", "Never", "OnFailure"]),
            "serviceAccountName": string("Name of the ServiceAccount to use to run this pod."),
            "hostNetwork": boolean("Host networking requested for this pod."),
            "dnsPolicy": string("DNS policy for the pod."),
            "terminationGracePeriodSeconds": integer(
                "Seconds the pod needs to terminate gracefully.", "int64"
            ),
            "tolerations": array(ref(CORE + "Toleration"), "The pod's tolerations."),
            "affinity": free_object("The pod's scheduling constraints."),
            "imagePullSecrets": _merge_list(
                array(ref(CORE + "LocalObjectReference"), "Secrets used to pull the images."), "name"
            ),
            "hostAliases": _merge_list(array(free_object(), "Entries added to the pod's hosts file."), "ip"),
            "priorityClassName": string("The pod's priority class."),
            "securityContext": free_object("Pod-level security attributes."),
        },
        ["containers"],
    )
    pod_status = obj(
        "PodStatus represents information about the status of a pod.",
        {
            "phase": string("Pending, Running, Succeeded, Failed or Unknown."),
            "conditions": _conditions(CORE + "PodCondition"),
            "hostIP": string("IP address of the host to which the pod is assigned."),
            "podIP": string("IP address allocated to the pod."),
            "podIPs": _merge_list(array(free_object(), "IP addresses allocated to the pod."), "ip"),
            "startTime": ref(META + "Time", "When the pod was acknowledged by the kubelet."),
            "containerStatuses": array(free_object(), "Statuses of the containers."),
            "message": string(
                "A human readable message indicating details about why the pod is in this condition."
            ),
            "reason": string(
                "A brief CamelCase message indicating details about why the pod is in this state."
            ),
        },
    )
    condition_fields = {
        "type": string("Type of the condition."),
        "status": string("True, False or Unknown."),
        "lastTransitionTime": ref(META + "Time", "Last time the condition transitioned."),
        "reason": string("Unique, one-word, CamelCase reason for the condition's last transition."),
        "message": string("Human-readable message indicating details about the last transition."),
    }
    return {
        CORE + "ObjectReference": object_reference,
        CORE + "LocalObjectReference": obj(
            "LocalObjectReference lets you locate the referenced object inside the same namespace.",
            {"name": string("Name of the referent.")},
        ),
        CORE + "EnvVar": obj(
            "EnvVar represents an environment variable present in a Container.",
            {
                "name": string("Name of the environment variable."),
                "value": string("Value of the variable."),
                "valueFrom": free_object("Source for the environment variable's value."),
            },
            ["name"],
        ),
        CORE + "ContainerPort": obj(
            "ContainerPort represents a network port in a single container.",
            {
                "containerPort": integer("Number of port to expose on the pod's IP address."),
                "hostPort": integer("Number of port to expose on the host."),
                "name": string("An IANA_SVC_NAME unique within the pod."),
                "protocol": string("UDP, TCP, or SCTP. Defaults to TCP.", enum=["SCTP", "TCP", "UDP"]),
                "hostIP": string("What host IP to bind the external port to."),
            },
            ["containerPort"],
        ),
        CORE + "VolumeMount": obj(
            "VolumeMount describes a mounting of a Volume within a container.",
            {
                "name": string("Must match the Name of a Volume."),
                "mountPath": string("Path within the container at which the volume should be mounted."),
                "readOnly": boolean("Mounted read-only if true."),
                "subPath": string(
                    "Path within the volume from which the container's volume should be mounted."
                ),
            },
            ["name", "mountPath"],
        ),
        CORE + "Volume": {
            **obj(
                "Volume represents a named volume in a pod that may be accessed by any container in the pod.",
                {
                    "name": string("Name of the volume; a DNS_LABEL unique within the pod."),
                    "configMap": free_object("A configMap that should populate this volume."),
                    "secret": free_object("A secret that should populate this volume."),
                    "emptyDir": free_object("A temporary directory that shares a pod's lifetime."),
                    "hostPath": free_object("A pre-existing file or directory on the host machine."),
                    "persistentVolumeClaim": free_object(
                        "A reference to a PersistentVolumeClaim in the same namespace."
                    ),
                    "projected": free_object(
                        "Items for all in one resources secrets, configmaps, and downward API."
                    ),
                    "downwardAPI": free_object(
                        "Downward API about the pod that should populate this volume."
                    ),
                },
                ["name"],
            ),
            "x-kubernetes-preserve-unknown-fields": True,
        },
        CORE + "ResourceRequirements": obj(
            "ResourceRequirements describes the compute resource requirements.",
            {
                "limits": {
                    "type": "object",
                    "additionalProperties": ref(QUANTITY),
                    "description": "Maximum amount of compute resources allowed.",
                },
                "requests": {
                    "type": "object",
                    "additionalProperties": ref(QUANTITY),
                    "description": "Minimum amount of compute resources required.",
                },
            },
        ),
        CORE + "Toleration": obj(
            "The pod this Toleration is attached to tolerates any taint that matches the triple "
            "<key,value,effect>.",
            {
                "key": string("The taint key that the toleration applies to."),
                "operator": string("Exists or Equal."),
                "value": string("The taint value the toleration matches to."),
                "effect": string("The taint effect to match."),
                "tolerationSeconds": integer("Period of time the toleration tolerates the taint.", "int64"),
            },
        ),
        CORE + "Container": container,
        CORE + "PodSpec": pod_spec,
        CORE + "PodCondition": obj(
            "PodCondition contains details for the current condition of this pod.",
            condition_fields,
            ["type", "status"],
        ),
        CORE + "PodStatus": pod_status,
        CORE + "PodTemplateSpec": obj(
            "PodTemplateSpec describes the data a pod should have when created from a template.",
            {
                "metadata": ref(META + "ObjectMeta", METADATA_DOC),
                "spec": ref(CORE + "PodSpec", "Specification of the desired behavior of the pod."),
            },
        ),
        CORE + "Pod": _kind(
            "Pod is a collection of containers that can run on a host.",
            {
                "spec": ref(CORE + "PodSpec", "Specification of the desired behavior of the pod."),
                "status": ref(CORE + "PodStatus", "Most recently observed status of the pod."),
            },
        ),
        CORE + "Taint": obj(
            "The node this Taint is attached to has the effect on any pod that does not tolerate the Taint.",
            {
                "key": string("The taint key to be applied to a node."),
                "value": string("The taint value corresponding to the taint key."),
                "effect": string("NoSchedule, PreferNoSchedule or NoExecute."),
                "timeAdded": ref(META + "Time", "The time at which the taint was added."),
            },
            ["key", "effect"],
        ),
        CORE + "NodeAddress": obj(
            "NodeAddress contains information for the node's address.",
            {
                "type": string("Hostname, ExternalIP or InternalIP."),
                "address": string("The node address."),
            },
            ["type", "address"],
        ),
        CORE + "NodeCondition": obj(
            "NodeCondition contains condition information for a node.",
            {
                **condition_fields,
                "lastHeartbeatTime": ref(META + "Time", "Last time we got an update on a given condition."),
            },
            ["type", "status"],
        ),
        CORE + "NodeSystemInfo": obj(
            "NodeSystemInfo is a set of ids/uuids to uniquely identify the node.",
            {
                "machineID": string(),
                "systemUUID": string(),
                "bootID": string(),
                "kernelVersion": string(),
                "osImage": string(),
                "containerRuntimeVersion": string(),
                "kubeletVersion": string("Kubelet Version reported by the node (KubeEdge: edgecore's)."),
                "kubeProxyVersion": string(),
                "operatingSystem": string(),
                "architecture": string(),
            },
        ),
        CORE + "NodeSpec": obj(
            "NodeSpec describes the attributes that a node is created with.",
            {
                "podCIDR": string("The pod IP range assigned to the node."),
                "podCIDRs": {
                    **array(string(), "The IP ranges assigned to the node."),
                    "x-kubernetes-patch-strategy": "merge",
                    "x-kubernetes-list-type": "set",
                },
                "providerID": string("ID of the node assigned by the cloud provider."),
                "taints": array(ref(CORE + "Taint"), "The node's taints."),
                "unschedulable": boolean("Controls node schedulability of new pods."),
            },
        ),
        CORE + "NodeStatus": obj(
            "NodeStatus is information about the current status of a node.",
            {
                "addresses": _merge_list(
                    array(ref(CORE + "NodeAddress"), "Addresses reachable to the node."), "type"
                ),
                "conditions": _conditions(CORE + "NodeCondition"),
                "capacity": {
                    "type": "object",
                    "additionalProperties": ref(QUANTITY),
                    "description": "Total resources of the node.",
                },
                "allocatable": {
                    "type": "object",
                    "additionalProperties": ref(QUANTITY),
                    "description": "Resources available for scheduling.",
                },
                "nodeInfo": ref(CORE + "NodeSystemInfo", "Set of ids/uuids to uniquely identify the node."),
                "daemonEndpoints": free_object("Endpoints of daemons running on the Node."),
                "images": array(free_object(), "List of container images on this node."),
                "phase": string("NodePhase is the recently observed lifecycle phase of the node."),
            },
        ),
        CORE + "Node": _kind(
            "Node is a worker node in Kubernetes (in KubeEdge, an edge node).",
            {
                "spec": ref(CORE + "NodeSpec", "Spec defines the behavior of a node."),
                "status": ref(CORE + "NodeStatus", "Most recently observed status of the node."),
            },
        ),
        CORE + "NamespaceCondition": obj(
            "NamespaceCondition contains details about state of namespace.",
            condition_fields,
            ["type", "status"],
        ),
        CORE + "Namespace": _kind(
            "Namespace provides a scope for Names.",
            {
                "spec": obj(
                    "NamespaceSpec describes the attributes on a Namespace.",
                    {
                        "finalizers": array(
                            string(),
                            "Finalizers is an opaque list of values that must be empty to permanently remove "
                            "object from storage.",
                        )
                    },
                ),
                "status": obj(
                    "NamespaceStatus is information about the current status of a Namespace.",
                    {
                        "phase": string("Active or Terminating."),
                        "conditions": _conditions(CORE + "NamespaceCondition"),
                    },
                ),
            },
        ),
        CORE + "ConfigMap": _kind(
            "ConfigMap holds configuration data for pods to consume.",
            {
                "data": string_map("Configuration data (UTF-8 strings)."),
                "binaryData": string_map("Binary configuration data (base64).", "byte"),
                "immutable": boolean("If true, the data cannot be updated."),
            },
        ),
        CORE + "Secret": _kind(
            "Secret holds secret data of a certain type.",
            {
                "data": string_map("Secret data, base64-encoded values.", "byte"),
                "stringData": string_map("Write-only convenience field: merged into data as plain strings."),
                "type": string("Used to facilitate programmatic handling of secret data."),
                "immutable": boolean("If true, the data cannot be updated."),
            },
        ),
        CORE + "ServicePort": obj(
            "ServicePort contains information on service's port.",
            {
                "name": string("The name of this port within the service."),
                "protocol": string("TCP, UDP, or SCTP. Default is TCP.", enum=["SCTP", "TCP", "UDP"]),
                "appProtocol": string("The application protocol for this port."),
                "port": integer("The port that will be exposed by this service."),
                "targetPort": int_or_string(
                    "Number or name of the port to access on the pods targeted by the service."
                ),
                "nodePort": integer("The port on each node on which this service is exposed."),
            },
            ["port"],
        ),
        CORE + "ServiceSpec": obj(
            "ServiceSpec describes the attributes that a user creates on a service.",
            {
                "ports": _merge_list(
                    array(ref(CORE + "ServicePort"), "The list of ports exposed by this service."), "port"
                ),
                "selector": string_map(
                    "Route service traffic to pods with label keys and values matching this selector."
                ),
                "clusterIP": string("The IP address of the service."),
                "clusterIPs": array(string(), "IP addresses assigned to this service."),
                "type": string(
                    "ClusterIP, NodePort, LoadBalancer or ExternalName.",
                    enum=["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
                ),
                "externalName": string(
                    "The external reference that discovery mechanisms will return as an alias."
                ),
                "sessionAffinity": string("ClientIP or None."),
                "externalTrafficPolicy": string("Cluster or Local."),
                "ipFamilies": array(string(), "IP families (IPv4, IPv6) assigned to this service."),
                "ipFamilyPolicy": string("SingleStack, PreferDualStack or RequireDualStack."),
            },
        ),
        CORE + "Service": _kind(
            "Service is a named abstraction of software service consisting of a port and a selector.",
            {
                "spec": ref(CORE + "ServiceSpec", "Spec defines the behavior of a service."),
                "status": obj(
                    "ServiceStatus represents the current status of a service.",
                    {
                        "loadBalancer": free_object(
                            "The current status of the load-balancer, if one is present."
                        ),
                        "conditions": _conditions(META + "Condition"),
                    },
                ),
            },
        ),
        CORE + "EndpointAddress": obj(
            "EndpointAddress is a tuple that describes single IP address.",
            {
                "ip": string("The IP of this endpoint."),
                "hostname": string("The Hostname of this endpoint."),
                "nodeName": string("Node hosting this endpoint."),
                "targetRef": ref(CORE + "ObjectReference", "Reference to object providing the endpoint."),
            },
            ["ip"],
        ),
        CORE + "EndpointPort": obj(
            "EndpointPort is a tuple that describes a single port.",
            {
                "name": string("The name of this port."),
                "port": integer("The port number of the endpoint."),
                "protocol": string("TCP, UDP or SCTP."),
                "appProtocol": string("The application protocol for this port."),
            },
            ["port"],
        ),
        CORE + "EndpointSubset": obj(
            "EndpointSubset is a group of addresses with a common set of ports.",
            {
                "addresses": array(
                    ref(CORE + "EndpointAddress"), "IP addresses which offer the related ports and are ready."
                ),
                "notReadyAddresses": array(
                    ref(CORE + "EndpointAddress"), "IP addresses which are not ready."
                ),
                "ports": array(
                    ref(CORE + "EndpointPort"), "Port numbers available on the related IP addresses."
                ),
            },
        ),
        CORE + "Endpoints": _kind(
            "Endpoints is a collection of endpoints that implement the actual service.",
            {"subsets": array(ref(CORE + "EndpointSubset"), "The set of all endpoints.")},
        ),
        CORE + "EventSource": obj(
            "EventSource contains information for an event.",
            {
                "component": string("Component from which the event is generated."),
                "host": string("Node name on which the event is generated."),
            },
        ),
        CORE + "Event": _kind(
            "Event is a report of an event somewhere in the cluster.",
            {
                "involvedObject": ref(CORE + "ObjectReference", "The object that this event is about."),
                "reason": string(
                    "Short, machine understandable string that gives the reason for the transition."
                ),
                "message": string("A human-readable description of the status of this operation."),
                "type": string("Normal or Warning."),
                "source": ref(CORE + "EventSource", "The component reporting this event."),
                "count": integer("The number of times this event has occurred."),
                "firstTimestamp": ref(META + "Time", "The time at which the event was first recorded."),
                "lastTimestamp": ref(
                    META + "Time", "The time at which the most recent occurrence of this event was recorded."
                ),
                "eventTime": ref(META + "MicroTime", "Time when this Event was first observed."),
                "action": string("What action was taken/failed regarding to the Regarding object."),
                "reportingComponent": string("Name of the controller that emitted this Event."),
                "reportingInstance": string("ID of the controller instance."),
                "related": ref(
                    CORE + "ObjectReference", "Optional secondary object for more complex actions."
                ),
            },
            ["metadata", "involvedObject"],
        ),
    }


def _kind(description: str, properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """A top-level kind: apiVersion, kind and metadata plus ``properties``."""
    return obj(
        description,
        {
            "apiVersion": string(API_VERSION_DOC),
            "kind": string(KIND_DOC),
            "metadata": ref(META + "ObjectMeta", METADATA_DOC),
            **properties,
        },
        required,
    )


def other_schemas() -> dict[str, Schema]:
    """apps, discovery, coordination, autoscaling and apiextensions types."""
    deployment_condition = obj(
        "DeploymentCondition describes the state of a deployment at a certain point.",
        {
            "type": string("Available, Progressing or ReplicaFailure."),
            "status": string("True, False or Unknown."),
            "lastUpdateTime": ref(META + "Time", "The last time this condition was updated."),
            "lastTransitionTime": ref(
                META + "Time", "Last time the condition transitioned from one status to another."
            ),
            "reason": string("The reason for the condition's last transition."),
            "message": string("A human readable message indicating details about the transition."),
        },
        ["type", "status"],
    )
    endpoint = obj(
        "Endpoint represents a single logical backend implementing a service.",
        {
            "addresses": {**array(string(), "Addresses of this endpoint."), "x-kubernetes-list-type": "set"},
            "conditions": obj(
                "EndpointConditions represents the current condition of an endpoint.",
                {"ready": boolean(), "serving": boolean(), "terminating": boolean()},
            ),
            "hostname": string("Hostname of this endpoint."),
            "nodeName": string("Name of the Node hosting this endpoint."),
            "targetRef": ref(
                CORE + "ObjectReference", "A reference to a Kubernetes object that represents this endpoint."
            ),
            "zone": string("The name of the Zone this endpoint exists in."),
        },
        ["addresses"],
    )
    version = obj(
        "CustomResourceDefinitionVersion describes a version for CRD.",
        {
            "name": string("The version name, e.g. v1, v2beta1."),
            "served": boolean("Whether this version is served via REST APIs."),
            "storage": boolean("Whether this version is used when persisting custom resources."),
            "deprecated": boolean("Whether this version of the custom resource API is deprecated."),
            "schema": free_object("The schema used for validation, pruning, and defaulting of this version."),
            "subresources": free_object("The subresources (status, scale) this version has."),
            "additionalPrinterColumns": array(free_object(), "Additional columns returned in Table output."),
        },
        ["name", "served", "storage"],
    )
    return {
        APPS + "DeploymentCondition": deployment_condition,
        APPS + "DeploymentStrategy": {
            **obj(
                "DeploymentStrategy describes how to replace existing pods with new ones.",
                {
                    "type": string("Recreate or RollingUpdate.", enum=["Recreate", "RollingUpdate"]),
                    "rollingUpdate": obj(
                        "Rolling update config params.",
                        {"maxSurge": int_or_string(), "maxUnavailable": int_or_string()},
                    ),
                },
            ),
        },
        APPS + "DeploymentSpec": obj(
            "DeploymentSpec is the specification of the desired behavior of the Deployment.",
            {
                "replicas": integer("Number of desired pods. Defaults to 1."),
                "selector": ref(META + "LabelSelector", "Label selector for pods."),
                "template": ref(
                    CORE + "PodTemplateSpec", "Template describes the pods that will be created."
                ),
                "strategy": {
                    **ref(APPS + "DeploymentStrategy", "The deployment strategy."),
                    "x-kubernetes-patch-strategy": "retainKeys",
                },
                "minReadySeconds": integer(
                    "Minimum seconds a new pod should be ready to be considered available."
                ),
                "revisionHistoryLimit": integer("The number of old ReplicaSets to retain."),
                "paused": boolean("Indicates that the deployment is paused."),
                "progressDeadlineSeconds": integer(
                    "Maximum time in seconds for a deployment to make progress."
                ),
            },
            ["selector", "template"],
        ),
        APPS + "DeploymentStatus": obj(
            "DeploymentStatus is the most recently observed status of the Deployment.",
            {
                "observedGeneration": integer(
                    "The generation observed by the deployment controller.", "int64"
                ),
                "replicas": integer("Total number of non-terminated pods targeted by this deployment."),
                "updatedReplicas": integer("Pods that have the desired template spec."),
                "readyReplicas": integer("Pods targeted by this Deployment with a Ready Condition."),
                "availableReplicas": integer("Available pods (ready for at least minReadySeconds)."),
                "unavailableReplicas": integer(
                    "Pods that are still required for the deployment to have 100% available capacity."
                ),
                "conditions": _conditions(APPS + "DeploymentCondition"),
            },
        ),
        APPS + "Deployment": _kind(
            "Deployment enables declarative updates for Pods and ReplicaSets.",
            {
                "spec": ref(
                    APPS + "DeploymentSpec", "Specification of the desired behavior of the Deployment."
                ),
                "status": ref(APPS + "DeploymentStatus", "Most recently observed status of the Deployment."),
            },
        ),
        AUTOSCALING + "Scale": _kind(
            "Scale represents a scaling request for a resource.",
            {
                "spec": obj(
                    "ScaleSpec describes the attributes of a scale subresource.",
                    {"replicas": integer("Desired number of instances for the scaled object.")},
                ),
                "status": obj(
                    "ScaleStatus represents the current status of a scale subresource.",
                    {
                        "replicas": integer("Actual number of observed instances."),
                        "selector": string("Label query over pods, in string form."),
                    },
                    ["replicas"],
                ),
            },
        ),
        DISCOVERY + "Endpoint": endpoint,
        DISCOVERY + "EndpointPort": obj(
            "EndpointPort represents a Port used by an EndpointSlice.",
            {"name": string(), "port": integer(), "protocol": string(), "appProtocol": string()},
        ),
        DISCOVERY + "EndpointSlice": _kind(
            "EndpointSlice represents a subset of the endpoints that implement a service.",
            {
                "addressType": string("IPv4, IPv6 or FQDN.", enum=["FQDN", "IPv4", "IPv6"]),
                "endpoints": {
                    **array(ref(DISCOVERY + "Endpoint"), "A list of unique endpoints in this slice."),
                    "x-kubernetes-list-type": "atomic",
                },
                "ports": {
                    **array(ref(DISCOVERY + "EndpointPort"), "Network ports exposed by each endpoint."),
                    "x-kubernetes-list-type": "atomic",
                },
            },
            ["addressType", "endpoints"],
        ),
        COORDINATION + "LeaseSpec": obj(
            "LeaseSpec is a specification of a Lease.",
            {
                "holderIdentity": string("The identity of the holder of a current lease."),
                "leaseDurationSeconds": integer(
                    "Duration that candidates for a lease need to wait to force acquire it."
                ),
                "acquireTime": ref(META + "MicroTime", "When the current lease was acquired."),
                "renewTime": ref(
                    META + "MicroTime", "When the current holder of a lease has last updated the lease."
                ),
                "leaseTransitions": integer("The number of transitions of a lease between holders."),
            },
        ),
        COORDINATION + "Lease": _kind(
            "Lease defines a lease concept (node heartbeats, leader election).",
            {"spec": ref(COORDINATION + "LeaseSpec", "Specification of the Lease.")},
        ),
        APIEXTENSIONS + "CustomResourceDefinitionVersion": version,
        APIEXTENSIONS + "CustomResourceDefinitionNames": obj(
            "CustomResourceDefinitionNames indicates the names to serve this CustomResourceDefinition.",
            {
                "plural": string("The plural name of the resource to serve."),
                "singular": string("The singular name of the resource."),
                "kind": string("The serialized kind of the resource."),
                "listKind": string("The serialized kind of the list for this resource."),
                "shortNames": array(string(), "Short names for the resource (kubectl get <shortname>)."),
                "categories": array(
                    string(), "Grouped resources this custom resource belongs to (e.g. 'all')."
                ),
            },
            ["plural", "kind"],
        ),
        APIEXTENSIONS + "CustomResourceDefinition": _kind(
            "CustomResourceDefinition represents a resource that should be exposed on the API server.",
            {
                "spec": obj(
                    "CustomResourceDefinitionSpec describes how a user wants their resource to appear.",
                    {
                        "group": string("The API group of the defined custom resource."),
                        "names": ref(
                            APIEXTENSIONS + "CustomResourceDefinitionNames", "The resource and kind names."
                        ),
                        "scope": string("Cluster or Namespaced.", enum=["Cluster", "Namespaced"]),
                        "versions": array(
                            ref(APIEXTENSIONS + "CustomResourceDefinitionVersion"),
                            "The API versions of the defined custom resource.",
                        ),
                        "conversion": free_object("Conversion settings for the CRD."),
                        "preserveUnknownFields": boolean(
                            "Deprecated; must be false for apiextensions.k8s.io/v1."
                        ),
                    },
                    ["group", "names", "scope", "versions"],
                ),
                "status": obj(
                    "CustomResourceDefinitionStatus indicates the state of the CustomResourceDefinition.",
                    {
                        "conditions": {
                            **array(free_object(), "Conditions (Established, NamesAccepted, ...)."),
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["type"],
                        },
                        "acceptedNames": ref(
                            APIEXTENSIONS + "CustomResourceDefinitionNames",
                            "The names actually being used to serve discovery.",
                        ),
                        "storedVersions": array(
                            string(), "Versions of CustomResources that were ever persisted."
                        ),
                    },
                ),
            },
            ["spec"],
        ),
    }


def all_schemas() -> dict[str, Schema]:
    return {**meta_schemas(), **core_schemas(), **other_schemas()}
