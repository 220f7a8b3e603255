"""CRD manifests derived from the models, and the JSON Schema an API server effectively validates with.

``openapi_schema(model)`` walks the pydantic fields (not pydantic's own JSON schema, which uses $ref and
anyOf) and produces a *structural* OpenAPI v3 schema: every node typed, free-form objects marked
``x-kubernetes-preserve-unknown-fields``, ``metadata`` left as ``type: object``.
"""

from __future__ import annotations

import copy
import inspect
import types
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from crds._base import INT32_MIN, INT64_MAX, INT64_MIN, Format, IntOrString, ObjectMeta, Resource

CRD_API_VERSION = "apiextensions.k8s.io/v1"


class SchemaError(TypeError):
    """A model field has a type the CRD schema generator cannot express structurally."""


def _doc(model: type[BaseModel]) -> str:
    own = model.__dict__.get("__doc__")
    if not own:
        return ""
    # The first paragraph, as kubectl explain shows it: one line, no reST literal markers.
    return inspect.cleandoc(own).split("\n\n")[0].replace("\n", " ").replace("``", "")


def _field_schema(info: FieldInfo, where: str) -> dict[str, Any]:
    schema = _type_schema(info.annotation, list(info.metadata), where)
    if info.description:
        schema = {"description": info.description, **schema}
    return schema


def _integer(metadata: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for meta in metadata:
        if isinstance(meta, Format):
            schema["format"] = meta.name
        elif isinstance(meta, annotated_types.Ge) and meta.ge not in (INT64_MIN, INT32_MIN):
            schema["minimum"] = meta.ge
    return schema


def _flatten(metadata: list[Any]) -> list[Any]:
    # Field(...) inside Annotated arrives as a FieldInfo whose constraints sit in its own metadata.
    out: list[Any] = []
    for meta in metadata:
        out.extend(meta.metadata if isinstance(meta, FieldInfo) else [meta])
    return out


def _type_schema(tp: Any, metadata: list[Any], where: str) -> dict[str, Any]:
    metadata = _flatten(metadata)
    origin = get_origin(tp)
    if origin is Annotated:
        base, *extra = get_args(tp)
        return _type_schema(base, metadata + list(extra), where)
    if any(isinstance(m, IntOrString) for m in metadata):
        return {"x-kubernetes-int-or-string": True}
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if len(options) != 1:
            raise SchemaError(f"{where}: unions other than Optional[X] are not structural: {tp}")
        return _type_schema(options[0], metadata, where)
    if origin is Literal:
        return {"type": "string"}
    if origin is list:
        (item,) = get_args(tp)
        return {"type": "array", "items": _type_schema(item, [], f"{where}[]")}
    if origin is dict:
        key, value = get_args(tp)
        if key is not str:
            raise SchemaError(f"{where}: map keys must be strings")
        if value is Any:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"type": "object", "additionalProperties": _type_schema(value, [], f"{where}{{}}")}
    if isinstance(tp, type):
        if issubclass(tp, Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return _integer(metadata)
        if tp is float:
            return {"type": "number"}
        if tp is str:
            return {"type": "string"}
        if issubclass(tp, BaseModel):
            return openapi_schema(tp, where)
    raise SchemaError(f"{where}: no structural schema for {tp!r}")


def openapi_schema(model: type[BaseModel], where: str = "") -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (properties sorted by JSON name)."""
    if issubclass(model, ObjectMeta):
        return {"type": "object"}
    where = where or model.__name__
    schema: dict[str, Any] = {}
    if doc := _doc(model):
        schema["description"] = doc
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, info in model.model_fields.items():
        json_name = info.alias or name
        properties[json_name] = _field_schema(info, f"{where}.{json_name}")
        if info.is_required():
            required.append(json_name)
    if properties:
        schema["properties"] = dict(sorted(properties.items()))
    if required:
        schema["required"] = sorted(required)
    schema["type"] = "object"
    if model.model_config.get("extra") == "allow":
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def crd_manifest(resource: type[Resource]) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of ``resource``."""
    info = resource.info
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": info.list_kind,
        "plural": info.plural,
        "singular": info.singular,
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    if info.categories:
        names["categories"] = list(info.categories)
    schema = openapi_schema(resource)
    if info.description:
        schema["description"] = info.description
    version: dict[str, Any] = {
        "name": info.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if info.status_subresource:
        version["subresources"] = {"status": {}}
    if info.printer_columns:
        columns = []
        for col in info.printer_columns:
            column: dict[str, Any] = {"name": col.name, "type": col.type, "jsonPath": col.json_path}
            if col.description:
                column["description"] = col.description
            if col.priority:
                column["priority"] = col.priority
            columns.append(column)
        version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {"group": info.group, "names": names, "scope": info.scope.value, "versions": [version]},
    }


def to_json_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """Translate a structural CRD schema into JSON Schema with the API server's validation semantics.

    Unknown fields are errors (as with kubectl's default strict field validation) except under
    ``x-kubernetes-preserve-unknown-fields``; int-or-string accepts either; int64 is range-checked
    (larger numbers cannot be decoded). Other ``x-kubernetes-*`` extensions carry no validation.
    """
    node = copy.deepcopy(openapi)
    return _translate(node)


def _translate(node: dict[str, Any]) -> dict[str, Any]:
    preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
    if node.pop("x-kubernetes-int-or-string", False):
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for key in [k for k in node if k.startswith("x-kubernetes-")]:
        del node[key]
    if node.get("type") == "integer" and node.get("format") == "int64":
        node.setdefault("minimum", INT64_MIN)
        node.setdefault("maximum", INT64_MAX)
    if "properties" in node:
        node["properties"] = {k: _translate(v) for k, v in node["properties"].items()}
        if not preserve and "additionalProperties" not in node:
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _translate(node["additionalProperties"])
    if "items" in node:
        node["items"] = _translate(node["items"])
    return node
