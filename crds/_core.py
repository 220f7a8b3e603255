"""The few Kubernetes core/meta types KubeEdge's CRDs embed (LocalObjectReference, LabelSelector, EnvVar,
ResourceRequirements), with the same JSON names and required fields as upstream."""

from __future__ import annotations

from pydantic import Field

from crds._base import KubeModel, Quantity


class LocalObjectReference(KubeModel):
    name: str = Field(description="Name of the referent (an object in the same namespace).")


class LabelSelectorRequirement(KubeModel):
    key: str
    operator: str = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] | None = None


class LabelSelector(KubeModel):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class ConfigMapKeySelector(KubeModel):
    key: str
    name: str | None = None
    optional: bool | None = None


class SecretKeySelector(KubeModel):
    key: str
    name: str | None = None
    optional: bool | None = None


class ObjectFieldSelector(KubeModel):
    api_version: str | None = None
    field_path: str


class ResourceFieldSelector(KubeModel):
    container_name: str | None = None
    resource: str
    divisor: Quantity | None = None


class EnvVarSource(KubeModel):
    config_map_key_ref: ConfigMapKeySelector | None = None
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    secret_key_ref: SecretKeySelector | None = None


class EnvVar(KubeModel):
    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class ResourceClaim(KubeModel):
    name: str
    request: str | None = None


class ResourceRequirements(KubeModel):
    limits: dict[str, Quantity] | None = None
    requests: dict[str, Quantity] | None = None
    claims: list[ResourceClaim] | None = None
