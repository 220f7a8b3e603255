"""apps.kubeedge.io/v1alpha1: NodeGroup and EdgeApplication, field for field as KubeEdge v1.23."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal

from pydantic import Field

from crds._base import FreeForm, KubeList, KubeModel, PrinterColumn, Resource, ResourceInfo, Scope
from crds._core import EnvVar, LabelSelector, ResourceRequirements

GROUP = "apps.kubeedge.io"
VERSION = "v1alpha1"
API_VERSION: Final = "apps.kubeedge.io/v1alpha1"
_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


class ReadyStatus(StrEnum):
    """Conventional values of ``NodeStatus.readyStatus`` (the CRD accepts any string)."""

    READY = "Ready"
    NOT_READY = "NotReady"
    UNKNOWN = "Unknown"


class SelectionStatus(StrEnum):
    """Conventional values of ``NodeStatus.selectionStatus`` (the CRD accepts any string)."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ImageComponent(StrEnum):
    REGISTRY = "Registry"
    REPOSITORY = "Repository"
    TAG = "Tag"


class OverriderOperator(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"


class CommandArgsOperator(StrEnum):
    ADD = "add"
    REMOVE = "remove"


class WorkloadCondition(StrEnum):
    PROCESSING = "Processing"
    AVAILABLE = "Available"


# --- NodeGroup ------------------------------------------------------------------------------------


class NodeGroupSpec(KubeModel):
    """Members: the listed nodes plus nodes carrying all matchLabels."""

    nodes: list[str] | None = Field(default=None, description="Names of nodes in the group.")
    match_labels: dict[str, str] | None = Field(
        default=None, description="Nodes with all these labels are in the group too."
    )
    topology_enabled: bool | None = Field(
        default=None, description="Also label members topology.kubernetes.io/zone=<group name>."
    )


class NodeStatus(KubeModel):
    node_name: str
    ready_status: str = Field(description="Ready, NotReady or Unknown.")
    selection_status: str = Field(description="Succeeded or Failed.")
    selection_status_reason: str | None = None


class NodeGroupStatus(KubeModel):
    """Selection and readiness of each member node."""

    node_statuses: list[NodeStatus] | None = None


class NodeGroup(Resource):
    """A named set of nodes (listed, or selected by labels) that EdgeApplications target."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="NodeGroup",
        plural="nodegroups",
        singular="nodegroup",
        scope=Scope.CLUSTER,
        short_names=("ng",),
        categories=("kubeedge",),
        status_subresource=True,
        # The API server shows only the first value a column's JSONPath yields: list-valued columns
        # point at whole arrays or maps, and a filtered column names its first match.
        printer_columns=(
            PrinterColumn("Nodes", ".spec.nodes", description="Nodes listed in spec"),
            PrinterColumn("Match-Labels", ".spec.matchLabels", description="Labels that select more nodes"),
            PrinterColumn(
                "Not-Ready",
                '.status.nodeStatuses[?(@.readyStatus!="Ready")].nodeName',
                description="First member node that is not Ready (empty when all are)",
            ),
            _AGE,
        ),
        description="NodeGroup is a group of edge nodes.",
    )

    api_version: Literal["apps.kubeedge.io/v1alpha1"] = API_VERSION
    kind: Literal["NodeGroup"] = "NodeGroup"
    spec: NodeGroupSpec
    status: NodeGroupStatus | None = None


# --- EdgeApplication ------------------------------------------------------------------------------


class ImagePredicate(KubeModel):
    path: str = Field(description="Path of the image field, e.g. /spec/template/spec/containers/0/image.")


class ImageOverrider(KubeModel):
    predicate: ImagePredicate | None = None
    component: ImageComponent = Field(description="Registry, Repository or Tag.")
    operator: OverriderOperator = Field(description="add, remove or replace.")
    value: str | None = None


class EnvOverrider(KubeModel):
    container_name: str
    operator: OverriderOperator = Field(description="add, remove or replace.")
    value: list[EnvVar] | None = None


class CommandArgsOverrider(KubeModel):
    container_name: str
    operator: CommandArgsOperator = Field(description="add or remove.")
    value: list[str] | None = None


class ResourcesOverrider(KubeModel):
    container_name: str
    value: ResourceRequirements | None = None


class Overriders(KubeModel):
    """Changes applied to the Deployment generated for one target."""

    replicas: int | None = Field(default=None, description="Replicas of the Deployment in this group.")
    image_overriders: list[ImageOverrider] | None = None
    env_overriders: list[EnvOverrider] | None = None
    command_overriders: list[CommandArgsOverrider] | None = None
    args_overriders: list[CommandArgsOverrider] | None = None
    resources_overriders: list[ResourcesOverrider] | None = None


class TargetNodeGroup(KubeModel):
    name: str = Field(description="NodeGroup name.")
    overriders: Overriders | None = None


class TargetNodeLabels(KubeModel):
    label_selector: LabelSelector | None = Field(
        default=None, description="Nodes to target; only matchLabels is honoured."
    )
    overriders: Overriders | None = None


class WorkloadScope(KubeModel):
    target_node_groups: list[TargetNodeGroup] | None = None
    target_node_labels: list[TargetNodeLabels] | None = None


class WorkloadTemplate(KubeModel):
    manifests: list[FreeForm] | None = Field(
        default=None, description="Full Kubernetes manifests to deploy per target."
    )


class EdgeApplicationSpec(KubeModel):
    """The manifests to deploy and the node groups (or node labels) to deploy them to."""

    workload_template: WorkloadTemplate | None = None
    workload_scope: WorkloadScope


class ResourceIdentifier(KubeModel):
    ordinal: int = Field(ge=0, description="Index of the manifest in spec.workloadTemplate.manifests.")
    group: str | None = None
    version: str | None = None
    kind: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None


class ManifestStatus(KubeModel):
    identifier: ResourceIdentifier
    conditions: WorkloadCondition | None = Field(default=None, description="Processing or Available.")


class StatusCondition(KubeModel):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class EdgeApplicationStatus(KubeModel):
    """Status of the workloads generated for each target.

    ``conditions`` is kubeshore's addition: KubeEdge's status has no place to say why a manifest or
    an overrider could not be applied.
    """

    workload_status: list[ManifestStatus] | None = None
    conditions: list[StatusCondition] | None = Field(
        default=None, description="kubeshore: Applied=False names every manifest or overrider that failed."
    )


class EdgeApplication(Resource):
    """Workload manifests deployed to node groups, with per-group overrides."""

    info = ResourceInfo(
        group=GROUP,
        version=VERSION,
        kind="EdgeApplication",
        plural="edgeapplications",
        singular="edgeapplication",
        scope=Scope.NAMESPACED,
        short_names=("eapp",),
        categories=("kubeedge",),
        status_subresource=True,
        printer_columns=(
            PrinterColumn(
                "Processing",
                '.status.workloadStatus[?(@.conditions=="Processing")].identifier.name',
                description="First generated workload not yet available (empty when all are)",
            ),
            _AGE,
        ),
        description="EdgeApplication deploys workloads to node groups with per-group overrides.",
    )

    api_version: Literal["apps.kubeedge.io/v1alpha1"] = API_VERSION
    kind: Literal["EdgeApplication"] = "EdgeApplication"
    spec: EdgeApplicationSpec
    status: EdgeApplicationStatus | None = None


class NodeGroupList(KubeList[NodeGroup]):
    pass


class EdgeApplicationList(KubeList[EdgeApplication]):
    pass
