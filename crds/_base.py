"""What every Kubernetes object model shares: JSON naming, TypeMeta/ObjectMeta, lists, schema markers.

JSON names are camelCase aliases of snake_case attributes; objects validate from either spelling and
dump with the aliases (``to_dict``), leaving out unset fields as Go's ``omitempty`` does.
Unknown keys are ignored, as Go's ``encoding/json`` ignores them, except in ``ObjectMeta`` and in
schemas KubeEdge marks ``x-kubernetes-preserve-unknown-fields`` (those models use ``extra="allow"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class Format:
    """OpenAPI ``format`` of an integer field (KubeEdge's int64/int32 markers)."""

    name: str


class IntOrString:
    """Marks a field as Kubernetes int-or-string (resource quantities)."""


Int64 = Annotated[int, Format("int64"), Field(ge=INT64_MIN, le=INT64_MAX)]
Int32 = Annotated[int, Format("int32"), Field(ge=INT32_MIN, le=INT32_MAX)]
Quantity = Annotated[int | str, IntOrString()]
FreeForm = dict[str, Any]
"""A free-form JSON object (Go ``map[string]interface{}``): x-kubernetes-preserve-unknown-fields."""


class Scope(StrEnum):
    NAMESPACED = "Namespaced"
    CLUSTER = "Cluster"


class KubeModel(BaseModel):
    """Base of every API type: camelCase JSON names, either spelling accepted, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        defer_build=True,
    )

    def to_dict(self) -> dict[str, Any]:
        """The object as the API server would return it: JSON names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OwnerReference(KubeModel):
    model_config = ConfigDict(extra="allow")

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeModel):
    """Standard object metadata. Permissive: fields not named here are kept, not dropped."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[str] | None = None
    managed_fields: list[dict[str, Any]] | None = None


class ListMeta(KubeModel):
    model_config = ConfigDict(extra="allow")

    resource_version: str | None = None
    continue_: str | None = Field(default=None, alias="continue")
    remaining_item_count: int | None = None


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry (what ``kubectl get`` shows)."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceInfo:
    """Names, scope and CRD presentation of one kind; the CRD manifest is derived from it."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    scope: Scope
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    printer_columns: tuple[PrinterColumn, ...] = field(default=())
    description: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


class Resource(KubeModel):
    """A top-level Kubernetes object: TypeMeta plus metadata. Subclasses set ``info`` and apiVersion/kind."""

    info: ClassVar[ResourceInfo]

    api_version: str
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or ""


ResourceT = TypeVar("ResourceT", bound=Resource)


class KubeList(KubeModel, Generic[ResourceT]):
    """A ``<Kind>List`` as list calls return it."""

    api_version: str | None = None
    kind: str | None = None
    metadata: ListMeta = Field(default_factory=ListMeta)
    items: list[ResourceT] = Field(default_factory=list)
