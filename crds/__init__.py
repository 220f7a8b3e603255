"""Pydantic v2 models of the KubeEdge v1.23 custom resources kubeshore serves and uses.

Kinds: ``Device``, ``DeviceModel``, ``DeviceStatus`` (devices.kubeedge.io/v1beta1), ``NodeGroup``,
``EdgeApplication`` (apps.kubeedge.io/v1alpha1), ``ObjectSync``, ``ClusterObjectSync``
(reliablesyncs.kubeedge.io/v1alpha1). Attributes are snake_case, JSON names exactly KubeEdge's
(``Device.model_validate(obj)`` accepts either; ``obj.to_dict()`` dumps JSON names, unset fields left out).
Each kind's ``info`` (a ``ResourceInfo``) names its group, plural, scope, short names and printer columns;
the CRD manifests in ``crds/*.yaml`` are generated from these models by ``python -m crds.generate``.
"""

from __future__ import annotations

from typing import Any

from crds._apps import (
    CommandArgsOperator,
    CommandArgsOverrider,
    EdgeApplication,
    EdgeApplicationList,
    EdgeApplicationSpec,
    EdgeApplicationStatus,
    EnvOverrider,
    ImageComponent,
    ImageOverrider,
    ImagePredicate,
    ManifestStatus,
    NodeGroup,
    NodeGroupList,
    NodeGroupSpec,
    NodeGroupStatus,
    NodeStatus,
    OverriderOperator,
    Overriders,
    ReadyStatus,
    ResourceIdentifier,
    ResourcesOverrider,
    SelectionStatus,
    StatusCondition,
    TargetNodeGroup,
    TargetNodeLabels,
    WorkloadCondition,
    WorkloadScope,
    WorkloadTemplate,
)
from crds._base import (
    FreeForm,
    KubeList,
    KubeModel,
    ListMeta,
    ObjectMeta,
    OwnerReference,
    PrinterColumn,
    Resource,
    ResourceInfo,
    Scope,
)
from crds._core import (
    EnvVar,
    LabelSelector,
    LabelSelectorRequirement,
    LocalObjectReference,
    ResourceRequirements,
)
from crds._devices import (
    AccessMode,
    DBMethod,
    DBMethodInfluxdb2,
    DBMethodMySQL,
    DBMethodRedis,
    DBMethodTDEngine,
    Device,
    DeviceConditionType,
    DeviceList,
    DeviceMethod,
    DeviceModel,
    DeviceModelList,
    DeviceModelSpec,
    DeviceProperty,
    DeviceSpec,
    DeviceState,
    DeviceStatus,
    DeviceStatusList,
    DeviceStatusOld,
    DeviceStatusSpec,
    DeviceStatusStatus,
    Influxdb2ClientConfig,
    Influxdb2DataConfig,
    ModelProperty,
    MySQLClientConfig,
    PropertyType,
    ProtocolConfig,
    PushMethod,
    PushMethodHTTP,
    PushMethodMQTT,
    PushMethodOTEL,
    RedisClientConfig,
    StateReport,
    TDEngineClientConfig,
    Twin,
    TwinProperty,
    VisitorConfig,
    desired_value_problems,
    device_properties_changed,
    duplicate_property_names,
)
from crds._reliablesyncs import (
    ClusterObjectSync,
    ClusterObjectSyncList,
    ObjectSync,
    ObjectSyncList,
    ObjectSyncSpec,
    ObjectSyncStatus,
)
from crds._schema import crd_manifest, openapi_schema, to_json_schema

RESOURCES: tuple[type[Resource], ...] = (
    Device,
    DeviceModel,
    DeviceStatus,
    NodeGroup,
    EdgeApplication,
    ObjectSync,
    ClusterObjectSync,
)
"""Every kind with a CRD, in the order the manifests are listed."""

_BY_TYPE = {(r.info.api_version, r.info.kind): r for r in RESOURCES}


class UnknownKindError(LookupError):
    """The object's apiVersion/kind is not one of the kinds in ``RESOURCES``."""


def model_for(api_version: str, kind: str) -> type[Resource]:
    """The model class of ``apiVersion``/``kind``; ``UnknownKindError`` if kubeshore has none."""
    try:
        return _BY_TYPE[(api_version, kind)]
    except KeyError:
        raise UnknownKindError(f"no model for apiVersion {api_version!r} kind {kind!r}") from None


def parse_object(obj: dict[str, Any]) -> Resource:
    """Validate a JSON object into the model its apiVersion/kind names (pydantic ValidationError if bad)."""
    return model_for(str(obj.get("apiVersion", "")), str(obj.get("kind", ""))).model_validate(obj)


__all__ = [
    "RESOURCES",
    "AccessMode",
    "ClusterObjectSync",
    "ClusterObjectSyncList",
    "CommandArgsOperator",
    "CommandArgsOverrider",
    "DBMethod",
    "DBMethodInfluxdb2",
    "DBMethodMySQL",
    "DBMethodRedis",
    "DBMethodTDEngine",
    "Device",
    "DeviceConditionType",
    "DeviceList",
    "DeviceMethod",
    "DeviceModel",
    "DeviceModelList",
    "DeviceModelSpec",
    "DeviceProperty",
    "DeviceSpec",
    "DeviceState",
    "DeviceStatus",
    "DeviceStatusList",
    "DeviceStatusOld",
    "DeviceStatusSpec",
    "DeviceStatusStatus",
    "EdgeApplication",
    "EdgeApplicationList",
    "EdgeApplicationSpec",
    "EdgeApplicationStatus",
    "EnvOverrider",
    "EnvVar",
    "FreeForm",
    "ImageComponent",
    "ImageOverrider",
    "ImagePredicate",
    "Influxdb2ClientConfig",
    "Influxdb2DataConfig",
    "KubeList",
    "KubeModel",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ListMeta",
    "LocalObjectReference",
    "ManifestStatus",
    "ModelProperty",
    "MySQLClientConfig",
    "NodeGroup",
    "NodeGroupList",
    "NodeGroupSpec",
    "NodeGroupStatus",
    "NodeStatus",
    "ObjectMeta",
    "ObjectSync",
    "ObjectSyncList",
    "ObjectSyncSpec",
    "ObjectSyncStatus",
    "OverriderOperator",
    "Overriders",
    "OwnerReference",
    "PrinterColumn",
    "PropertyType",
    "ProtocolConfig",
    "PushMethod",
    "PushMethodHTTP",
    "PushMethodMQTT",
    "PushMethodOTEL",
    "ReadyStatus",
    "RedisClientConfig",
    "Resource",
    "ResourceIdentifier",
    "ResourceInfo",
    "ResourceRequirements",
    "ResourcesOverrider",
    "Scope",
    "SelectionStatus",
    "StateReport",
    "StatusCondition",
    "TDEngineClientConfig",
    "TargetNodeGroup",
    "TargetNodeLabels",
    "Twin",
    "TwinProperty",
    "UnknownKindError",
    "VisitorConfig",
    "WorkloadCondition",
    "WorkloadScope",
    "WorkloadTemplate",
    "crd_manifest",
    "desired_value_problems",
    "device_properties_changed",
    "duplicate_property_names",
    "model_for",
    "openapi_schema",
    "parse_object",
    "to_json_schema",
]
