"""reliablesyncs.kubeedge.io/v1alpha1: ObjectSync and ClusterObjectSync.

cloudcore records, per edge node and object, the resourceVersion the node has acknowledged. The object
name is ``<nodeName>.<objectUID>``; ObjectSync lives in the synced object's namespace, ClusterObjectSync
is for cluster-scoped objects.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import Field

from crds._base import KubeList, KubeModel, PrinterColumn, Resource, ResourceInfo, Scope

GROUP = "reliablesyncs.kubeedge.io"
VERSION = "v1alpha1"
API_VERSION: Final = "reliablesyncs.kubeedge.io/v1alpha1"

_COLUMNS = (
    PrinterColumn("Kind", ".spec.objectKind", description="Kind of the synced object"),
    PrinterColumn("Object", ".spec.objectName", description="Name of the synced object"),
    PrinterColumn(
        "Synced-Version", ".status.objectResourceVersion", description="resourceVersion the node acknowledged"
    ),
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
)


class ObjectSyncSpec(KubeModel):
    """The object whose delivery to the node is recorded."""

    object_api_version: str | None = Field(default=None, alias="objectAPIVersion")
    object_kind: str | None = None
    object_name: str | None = None


class ObjectSyncStatus(KubeModel):
    """What the node has acknowledged."""

    object_resource_version: str | None = Field(
        default=None, description="resourceVersion of the object the edge node has persisted."
    )


class ObjectSync(Resource):
    """The version of a namespaced object an edge node has persisted."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="ObjectSync",
        plural="objectsyncs",
        singular="objectsync",
        scope=Scope.NAMESPACED,
        categories=("kubeedge",),
        status_subresource=True,
        printer_columns=_COLUMNS,
        description="ObjectSync records the version of a namespaced object persisted by an edge node.",
    )

    api_version: Literal["reliablesyncs.kubeedge.io/v1alpha1"] = API_VERSION
    kind: Literal["ObjectSync"] = "ObjectSync"
    spec: ObjectSyncSpec | None = None
    status: ObjectSyncStatus | None = None


class ClusterObjectSync(Resource):
    """The version of a cluster-scoped object an edge node has persisted."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="ClusterObjectSync",
        plural="clusterobjectsyncs",
        singular="clusterobjectsync",
        scope=Scope.CLUSTER,
        categories=("kubeedge",),
        status_subresource=True,
        printer_columns=_COLUMNS,
        description="ClusterObjectSync records the version of a cluster-scoped object a node persisted.",
    )

    api_version: Literal["reliablesyncs.kubeedge.io/v1alpha1"] = API_VERSION
    kind: Literal["ClusterObjectSync"] = "ClusterObjectSync"
    spec: ObjectSyncSpec | None = None
    status: ObjectSyncStatus | None = None


class ObjectSyncList(KubeList[ObjectSync]):
    pass


class ClusterObjectSyncList(KubeList[ClusterObjectSync]):
    pass
