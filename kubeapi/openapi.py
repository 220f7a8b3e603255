"""OpenAPI documents (swagger 2.0 at ``/openapi/v2``, OpenAPI 3.0 at ``/openapi/v3``) built from
resource descriptions, shaped like kube-apiserver's so that kubectl 1.32 works against them.

Pure functions: resource descriptions in, JSON-ready dicts out. The server serves them::

    docs = build_openapi([*BUILTIN_RESOURCES, *crd_resources])   # rebuild when a CRD changes

    GET /openapi/v2                  -> docs.v2                  (JSON or gnostic protobuf)
    GET /openapi/v3                  -> docs.v3_discovery        (application/json)
    GET /openapi/v3/api/v1           -> docs.v3["api/v1"]        (application/json)
    GET /openapi/v3/apis/<g>/<v>     -> docs.v3["apis/<g>/<v>"]  (application/json)

Details kubectl depends on:

- ``/openapi/v3`` lists each group-version as ``{"serverRelativeURL": "/openapi/v3/apis/<g>/<v>?hash=<H>"}``
  with ``H = docs.hashes[path]``. Serve a group-version document whatever ``hash`` says; when it
  matches, answer with ``Cache-Control: public, immutable`` (kubectl caches it on disk), otherwise
  ``Cache-Control: no-cache, private``. Unknown group-version: 404.
- client-go asks ``/openapi/v2`` for protobuf only (``Accept:
  application/com.github.proto-openapi.spec.v2@v1.0+protobuf``, gnostic's ``openapi.v2.Document``,
  :mod:`kubeapi._openapi_protobuf`), and kubectl needs it: ``kubectl apply`` reads each kind's PATCH
  content types there, and validates the items of a ``kind: List`` (what ``kubectl get -o yaml``
  writes) with its definitions, refusing fields an object's ``properties`` leave out. So the v2
  schemas get kube-apiserver's rewrite for kubectl (values that are nullable or keep unknown fields
  lose ``properties``, ``items`` and type). The built-in definitions are Kubernetes' own and list
  every field it defines.
- Every PATCH/PUT/POST operation declares the ``fieldValidation`` query parameter, so ``kubectl
  apply/create/edit`` (``--validate=strict`` by default) leave validation to the server, which must
  honour ``?fieldValidation=Strict|Warn|Ignore`` (see :mod:`kubeapi.schema`).
- ``kubectl explain`` reads the group-version document: ``components.schemas`` are named like
  kube-apiserver's (``io.kubeedge.devices.v1beta1.Device``, ``io.k8s.api.core.v1.Pod``) and carry
  ``x-kubernetes-group-version-kind``; ``$ref``s point at ``#/components/schemas/...``.
- PATCH operations advertise ``application/json-patch+json``, ``application/merge-patch+json`` and
  ``application/apply-patch+yaml``, and for built-in kinds ``application/strategic-merge-patch+json``
  as kube-apiserver does: ``kubectl apply`` then computes its patch from the served schemas, which
  are Kubernetes' own (``kubeapi/_generated_schemas.py``, from kube-apiserver's OpenAPI by
  ``python -m kubeapi.generate``) and carry the same merge keys :mod:`kubeapi.patch` applies.

Custom resources get their CRD version's ``openAPIV3Schema`` with ``metadata`` replaced by a
reference to ``ObjectMeta``; :func:`resources_from_crd` turns a CRD object into descriptions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubeapi import _generated_schemas as generated
from kubeapi.builtins import builtin_types
from kubeapi.resources import ResourceType

__all__ = [
    "BUILTIN_RESOURCES",
    "OpenAPIDocuments",
    "ResourceDescription",
    "build_openapi",
    "definition_name",
    "describe",
    "document_hash",
    "group_version_path",
    "resources_from_crd",
]

_COMPONENTS = "#/components/schemas/"
_DEFINITIONS = "#/definitions/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_SCALE = generated.DEFINITIONS[("autoscaling", "v1", "Scale")]
_STATUS = _META + "Status"
_DELETE_OPTIONS = _META + "DeleteOptions"
_PATCH = _META + "Patch"
# kube-apiserver names these in each group-version document as the core group's and that group's.
_PER_GROUP = (_DELETE_OPTIONS, _META + "WatchEvent")
_GVK = "x-kubernetes-group-version-kind"

# What kube-apiserver publishes for a custom resource's apiVersion, kind, metadata and list metadata.
_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values."
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. In CamelCase."
)
_METADATA_DOC = "Standard object's metadata."
_LIST_METADATA_DOC = "Standard list metadata."


def _ref(name: str, description: str = "") -> dict[str, Any]:
    """A reference with a description, in the ``allOf`` form kube-apiserver's v3 documents use."""
    out: dict[str, Any] = {"allOf": [{"$ref": _COMPONENTS + name}]}
    if description:
        out["description"] = description
    return out


@dataclass(frozen=True)
class ResourceDescription:
    """One served resource (a kind in one group-version).

    ``schema`` is the CRD ``openAPIV3Schema`` (``None`` for built-in kinds, whose schemas are kept
    here, and for CRDs without a schema). ``subresources`` may hold ``"status"`` and ``"scale"``.
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    schema: Mapping[str, Any] | None = None
    list_kind: str = ""
    subresources: frozenset[str] = frozenset()
    builtin: bool = False
    description: str = ""

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"


def definition_name(group: str, version: str, kind: str, *, builtin_kind: bool = False) -> str:
    """The schema name kube-apiserver uses: ``io.k8s.api.core.v1.Pod`` for built-in kinds,
    the reversed group for custom resources (``devices.kubeedge.io`` -> ``io.kubeedge.devices``)."""
    if builtin_kind and (group, version, kind) in generated.DEFINITIONS:
        return generated.DEFINITIONS[(group, version, kind)]
    reversed_group = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
    return f"{reversed_group}.{version}.{kind}"


def group_version_path(group: str, version: str) -> str:
    """The key of a group-version under ``/openapi/v3``: ``api/v1`` or ``apis/<group>/<version>``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def describe(resource: ResourceType) -> ResourceDescription:
    """The description of a served resource type (built-in or from a CRD) for :func:`build_openapi`."""
    return ResourceDescription(
        group=resource.group,
        version=resource.version,
        kind=resource.kind,
        plural=resource.plural,
        namespaced=resource.namespaced,
        schema=resource.schema,
        subresources=frozenset(resource.subresources),
        builtin=not resource.custom,
    )


# Every built-in kind kubeapi serves (kubeapi.builtins), described.
BUILTIN_RESOURCES: tuple[ResourceDescription, ...] = tuple(describe(t) for t in builtin_types())


def resources_from_crd(crd: Mapping[str, Any]) -> list[ResourceDescription]:
    """Descriptions of every served version of a CustomResourceDefinition object."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        sub = version.get("subresources") or {}
        out.append(
            ResourceDescription(
                group=spec.get("group", ""),
                version=version["name"],
                kind=names.get("kind", ""),
                plural=names.get("plural", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                schema=schema,
                list_kind=names.get("listKind", ""),
                subresources=frozenset(k for k in ("status", "scale") if k in sub),
            )
        )
    return out


def document_hash(doc: Mapping[str, Any]) -> str:
    """The ``hash`` query value of a group-version document (SHA-512 of its canonical JSON)."""
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(data).hexdigest().upper()


@dataclass(frozen=True)
class OpenAPIDocuments:
    """Every OpenAPI document for one set of resources (see the module docstring for routes)."""

    v2: dict[str, Any]
    v3: dict[str, dict[str, Any]]
    hashes: dict[str, str]
    v3_discovery: dict[str, Any] = field(default_factory=dict)


def build_openapi(
    resources: Iterable[ResourceDescription], *, server_version: str = "v1.32.0"
) -> OpenAPIDocuments:
    """Build ``/openapi/v2``, the ``/openapi/v3`` index and every group-version document."""
    resources = list(resources)
    schemas = _all_definitions(resources)
    by_gv: dict[str, list[ResourceDescription]] = {}
    for res in resources:
        by_gv.setdefault(group_version_path(res.group, res.version), []).append(res)
    v3 = {path: _v3_document(items, schemas) for path, items in sorted(by_gv.items())}
    hashes = {path: document_hash(doc) for path, doc in v3.items()}
    discovery = {
        "paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={hashes[path]}"} for path in v3}
    }
    return OpenAPIDocuments(
        v2=_v2_document(resources, schemas, server_version), v3=v3, hashes=hashes, v3_discovery=discovery
    )


# --------------------------------------------------------------------------------------------------
# Schemas


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _crd_definition(res: ResourceDescription) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(json.dumps(res.schema)) if res.schema else {"type": "object"}
    if not res.schema:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    properties: dict[str, Any] = schema.setdefault("properties", {})
    properties["apiVersion"] = {
        **properties.get("apiVersion", {}),
        "type": "string",
        "description": _API_VERSION_DOC,
    }
    properties["kind"] = {**properties.get("kind", {}), "type": "string", "description": _KIND_DOC}
    properties["metadata"] = _ref(_META + "ObjectMeta", _METADATA_DOC)
    schema.setdefault("type", "object")
    if res.description and "description" not in schema:
        schema["description"] = res.description
    schema["x-kubernetes-group-version-kind"] = [_gvk(res.group, res.version, res.kind)]
    return dict(schema)


def _list_definition(res: ResourceDescription, item_name: str) -> dict[str, Any]:
    return {
        "description": f"{res.list_kind_name} is a list of {res.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "items": {
                "description": f"List of {res.plural}.",
                "type": "array",
                "items": _ref(item_name),
            },
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": _ref(_META + "ListMeta", _LIST_METADATA_DOC),
        },
        "x-kubernetes-group-version-kind": [_gvk(res.group, res.version, res.list_kind_name)],
    }


def _all_definitions(resources: Sequence[ResourceDescription]) -> dict[str, dict[str, Any]]:
    """Every schema by name: Kubernetes' own for built-in kinds (generated from its OpenAPI), the CRD
    version's for custom resources, and a list kind for each."""
    schemas = dict(generated.SCHEMAS)
    for res in resources:
        name = definition_name(res.group, res.version, res.kind, builtin_kind=res.builtin)
        if not (res.builtin and name in schemas):
            schemas[name] = _crd_definition(res)
        list_name = definition_name(res.group, res.version, res.list_kind_name, builtin_kind=res.builtin)
        if not (res.builtin and list_name in schemas):
            schemas[list_name] = _list_definition(res, name)
    return schemas


def _roots(resources: Iterable[ResourceDescription]) -> list[str]:
    """The schemas a document must hold for ``resources`` (the rest follows by reference)."""
    roots = [_STATUS, _DELETE_OPTIONS, _PATCH, *_PER_GROUP]
    for res in resources:
        roots.append(definition_name(res.group, res.version, res.kind, builtin_kind=res.builtin))
        roots.append(definition_name(res.group, res.version, res.list_kind_name, builtin_kind=res.builtin))
        if "scale" in res.subresources:
            roots.append(_SCALE)
    return roots


def _per_group(name: str, schema: dict[str, Any], group: str, version: str) -> dict[str, Any]:
    """DeleteOptions and WatchEvent as a group-version document of kube-apiserver has them."""
    kind = name.rsplit(".", 1)[-1]
    gvks = [_gvk("", "v1", kind)] + ([_gvk(group, version, kind)] if group else [])
    return {**schema, _GVK: gvks}


_REF = re.compile(r'"\$ref": ?"#/components/schemas/([^"]+)"')


def _closure(roots: Iterable[str], schemas: Mapping[str, dict[str, Any]]) -> list[str]:
    """Every schema name reachable from ``roots`` through ``$ref``."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo.extend(_REF.findall(json.dumps(schemas[name])))
    return sorted(seen)


# --------------------------------------------------------------------------------------------------
# Operations

_LIST_PARAMS = (
    ("allowWatchBookmarks", "boolean", "Requests watch events with type BOOKMARK."),
    ("continue", "string", "The continue option from a previous list response (limit/continue paging)."),
    ("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
    ("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
    ("limit", "integer", "Maximum number of responses to return for a list call."),
    ("resourceVersion", "string", "Constrains which resource versions the request may be served from."),
    ("resourceVersionMatch", "string", "How resourceVersion is applied to list calls."),
    ("sendInitialEvents", "boolean", "Stream synthetic ADDED events before the watch starts."),
    ("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    ("watch", "boolean", "Watch for changes to the described resources and return them as a stream."),
)
_WRITE_PARAMS = (
    ("dryRun", "string", "When present (All), modifications are not persisted."),
    ("fieldManager", "string", "A name associated with the actor or entity that is making these changes."),
    (
        "fieldValidation",
        "string",
        "How the server handles unknown or duplicate fields: Ignore, Warn or Strict "
        "(the default of kubectl).",
    ),
)
_DELETE_PARAMS = (
    ("dryRun", "string", "When present (All), modifications are not persisted."),
    ("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    ("propagationPolicy", "string", "Orphan, Background or Foreground garbage collection of dependents."),
)
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_STRATEGIC = "application/strategic-merge-patch+json"


def _patch_types(res: ResourceDescription) -> tuple[str, ...]:
    # Built-in kinds take strategic merge patches too (kubeapi.patch, from the same schemas).
    return (*_PATCH_TYPES, _STRATEGIC) if res.builtin else _PATCH_TYPES


_PRODUCES = ("application/json", "application/yaml")


@dataclass(frozen=True)
class _Op:
    method: str
    action: str
    verb: str  # operationId prefix
    kind: str  # the kind named in the operationId
    gvk: dict[str, str]
    response: str
    body: str = ""
    params: tuple[tuple[str, str, str], ...] = ()
    description: str = ""
    created: bool = False


def _operations(res: ResourceDescription, item: str, items: str) -> dict[str, list[_Op]]:
    gv = f"/apis/{res.group}/{res.version}" if res.group else f"/api/{res.version}"
    gvk = _gvk(res.group, res.version, res.kind)
    status = _STATUS
    ns = "Namespaced" if res.namespaced else ""
    collection = f"{gv}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{gv}/{res.plural}"
    member = f"{collection}/{{name}}"
    k = res.kind
    paths: dict[str, list[_Op]] = {
        collection: [
            _Op(
                "get",
                "list",
                "list",
                f"{ns}{k}",
                gvk,
                items,
                params=_LIST_PARAMS,
                description=f"list or watch objects of kind {k}",
            ),
            _Op("post", "post", "create", f"{ns}{k}", gvk, item, item, _WRITE_PARAMS, f"create a {k}", True),
            _Op(
                "delete",
                "deletecollection",
                "deleteCollection",
                f"{ns}{k}",
                gvk,
                status,
                _DELETE_OPTIONS,
                _DELETE_PARAMS + _LIST_PARAMS[:-1],
                f"delete collection of {k}",
            ),
        ],
        member: [
            _Op("get", "get", "read", f"{ns}{k}", gvk, item, description=f"read the specified {k}"),
            _Op(
                "put",
                "put",
                "replace",
                f"{ns}{k}",
                gvk,
                item,
                item,
                _WRITE_PARAMS,
                f"replace the specified {k}",
                True,
            ),
            _Op(
                "patch",
                "patch",
                "patch",
                f"{ns}{k}",
                gvk,
                item,
                _PATCH,
                (*_WRITE_PARAMS, ("force", "boolean", 'Force is going to "force" Apply requests.')),
                f"partially update the specified {k}",
                True,
            ),
            _Op(
                "delete",
                "delete",
                "delete",
                f"{ns}{k}",
                gvk,
                status,
                _DELETE_OPTIONS,
                _DELETE_PARAMS,
                f"delete a {k}",
            ),
        ],
    }
    if res.namespaced:
        paths[f"{gv}/{res.plural}"] = [
            _Op(
                "get",
                "list",
                "list",
                f"{k}ForAllNamespaces",
                gvk,
                items,
                params=_LIST_PARAMS,
                description=f"list or watch objects of kind {k}",
            )
        ]
    if "status" in res.subresources:
        paths[f"{member}/status"] = [
            _Op(
                "get",
                "get",
                "read",
                f"{ns}{k}Status",
                gvk,
                item,
                description=f"read status of the specified {k}",
            ),
            _Op(
                "put",
                "put",
                "replace",
                f"{ns}{k}Status",
                gvk,
                item,
                item,
                _WRITE_PARAMS,
                f"replace status of the specified {k}",
                True,
            ),
            _Op(
                "patch",
                "patch",
                "patch",
                f"{ns}{k}Status",
                gvk,
                item,
                _PATCH,
                _WRITE_PARAMS,
                f"partially update status of the specified {k}",
                True,
            ),
        ]
    if "scale" in res.subresources:
        scale = _SCALE
        scale_gvk = _gvk("autoscaling", "v1", "Scale")
        paths[f"{member}/scale"] = [
            _Op(
                "get",
                "get",
                "read",
                f"{ns}{k}Scale",
                scale_gvk,
                scale,
                description=f"read scale of the specified {k}",
            ),
            _Op(
                "put",
                "put",
                "replace",
                f"{ns}{k}Scale",
                scale_gvk,
                scale,
                scale,
                _WRITE_PARAMS,
                f"replace scale of the specified {k}",
                True,
            ),
            _Op(
                "patch",
                "patch",
                "patch",
                f"{ns}{k}Scale",
                scale_gvk,
                scale,
                _PATCH,
                _WRITE_PARAMS,
                f"partially update scale of the specified {k}",
                True,
            ),
        ]
    return paths


def _operation_id(op: _Op, res: ResourceDescription) -> str:
    group = "".join(part.capitalize() for part in re.split(r"[.\-]", res.group)) if res.group else "Core"
    return f"{op.verb}{group}{res.version.capitalize()}{op.kind}"


def _path_params(path: str, v3: bool) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for name in re.findall(r"{(\w+)}", path):
        desc = (
            "object name and auth scope, such as for teams and projects"
            if name == "namespace"
            else f"name of the {name}"
        )
        param: dict[str, Any] = {"name": name, "in": "path", "required": True, "description": desc}
        if v3:
            param["schema"] = {"type": "string", "uniqueItems": True}
        else:
            param["type"] = "string"
            param["uniqueItems"] = True
        params.append(param)
    pretty: dict[str, Any] = {
        "name": "pretty",
        "in": "query",
        "description": "If 'true', then the output is pretty printed.",
    }
    if v3:
        pretty["schema"] = {"type": "string", "uniqueItems": True}
    else:
        pretty.update(type="string", uniqueItems=True)
    params.append(pretty)
    return params


def _query_params(params: Iterable[tuple[str, str, str]], v3: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, kind, desc in params:
        param: dict[str, Any] = {"name": name, "in": "query", "description": desc}
        if v3:
            param["schema"] = {"type": kind, "uniqueItems": True}
        else:
            param.update(type=kind, uniqueItems=True)
        out.append(param)
    return out


def _v3_operation(op: _Op, res: ResourceDescription) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {t: {"schema": {"$ref": _COMPONENTS + op.response}} for t in _PRODUCES},
        },
        "401": {"description": "Unauthorized"},
    }
    if op.created:
        responses["201"] = {
            "description": "Created",
            "content": {t: {"schema": {"$ref": _COMPONENTS + op.response}} for t in _PRODUCES},
        }
    out: dict[str, Any] = {
        "tags": [_tag(res)],
        "description": op.description,
        "operationId": _operation_id(op, res),
        "parameters": _query_params(op.params, True),
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    }
    if op.body:
        types = _patch_types(res) if op.method == "patch" else ("*/*",)
        out["requestBody"] = {
            "content": {t: {"schema": {"$ref": _COMPONENTS + op.body}} for t in types},
            "required": op.method != "delete",
        }
    return out


def _v2_operation(op: _Op, res: ResourceDescription) -> dict[str, Any]:
    params = _query_params(op.params, False)
    if op.body:
        params.insert(
            0,
            {
                "name": "body",
                "in": "body",
                "required": op.method != "delete",
                "schema": {"$ref": _DEFINITIONS + op.body},
            },
        )
    responses: dict[str, Any] = {
        "200": {"description": "OK", "schema": {"$ref": _DEFINITIONS + op.response}},
        "401": {"description": "Unauthorized"},
    }
    if op.created:
        responses["201"] = {"description": "Created", "schema": {"$ref": _DEFINITIONS + op.response}}
    out: dict[str, Any] = {
        "description": op.description,
        "consumes": list(_patch_types(res)) if op.method == "patch" else ["*/*"],
        "produces": list(_PRODUCES),
        "schemes": ["https"],
        "tags": [_tag(res)],
        "operationId": _operation_id(op, res),
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": op.gvk,
    }
    return out


def _tag(res: ResourceDescription) -> str:
    group = "".join(part.capitalize() for part in re.split(r"[.\-]", res.group)) if res.group else "core"
    return f"{group}_{res.version}"


def _resource_paths(res: ResourceDescription, v3: bool) -> dict[str, dict[str, Any]]:
    item = definition_name(res.group, res.version, res.kind, builtin_kind=res.builtin)
    items = definition_name(res.group, res.version, res.list_kind_name, builtin_kind=res.builtin)
    paths: dict[str, dict[str, Any]] = {}
    for path, ops in _operations(res, item, items).items():
        entry: dict[str, Any] = {
            op.method: (_v3_operation(op, res) if v3 else _v2_operation(op, res)) for op in ops
        }
        entry["parameters"] = _path_params(path, v3)
        paths[path] = entry
    return paths


# --------------------------------------------------------------------------------------------------
# Documents


def _v3_document(
    resources: Sequence[ResourceDescription], schemas: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for res in resources:
        paths.update(_resource_paths(res, v3=True))
    names = _closure(_roots(resources), schemas)
    group, version = resources[0].group, resources[0].version
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                name: _per_group(name, schemas[name], group, version) if name in _PER_GROUP else schemas[name]
                for name in names
            },
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                }
            },
        },
        "security": [{"BearerToken": []}],
    }


def _to_v2(schema: Any) -> Any:
    """An OpenAPI v3 schema as swagger 2.0 has it (what kube-apiserver publishes at /openapi/v2):
    references to ``#/definitions``, single-reference ``allOf`` unwrapped, and the constructs v2 lacks
    (``nullable``, ``anyOf``, ``oneOf``, ``not``) dropped."""
    if isinstance(schema, list):
        return [_to_v2(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "anyOf", "oneOf", "not"):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace(_COMPONENTS, _DEFINITIONS)
        elif key == "allOf" and isinstance(value, list) and len(value) == 1 and "$ref" in value[0]:
            out["$ref"] = value[0]["$ref"].replace(_COMPONENTS, _DEFINITIONS)
        elif key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            out[key] = {k: _to_v2(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "allOf"):
            out[key] = _to_v2(value)
        else:
            out[key] = value
    if "$ref" in out:
        # swagger 2.0 ignores a reference's siblings; keep only the description as kube does.
        return {k: out[k] for k in ("$ref", "description") if k in out}
    return _kubectl_v2(schema, out)


def _kubectl_v2(v3: Mapping[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """What kube-apiserver changes for kubectl, which validates with the v2 document
    (apiextensions' ``ToStructuralOpenAPIV2``): kubectl reports fields an object's ``properties`` do not
    list, so a nullable value and one that keeps unknown fields lose ``properties``, ``items`` and
    their type (an untyped value accepts anything); an array left without ``items`` loses its type
    (kubectl refuses such a document); a nullable property is no longer required."""
    nullable = v3.get("nullable") is True
    preserve = v3.get("x-kubernetes-preserve-unknown-fields") is True
    if nullable or preserve:
        out.pop("properties", None)
        out.pop("items", None)
    if (
        nullable
        or (preserve and out.get("type") == "object")
        or (out.get("type") == "array" and "items" not in out)
    ):
        out.pop("type", None)
    properties = v3.get("properties")
    additional = v3.get("additionalProperties")
    if isinstance(additional, dict) and additional.get("nullable") is True:
        out.pop("required", None)
    elif isinstance(properties, dict) and isinstance(out.get("required"), list):
        required = [r for r in out["required"] if (properties.get(r) or {}).get("nullable") is not True]
        if required:
            out["required"] = required
        else:
            out.pop("required")
    return out


def _v2_document(
    resources: Sequence[ResourceDescription], schemas: Mapping[str, dict[str, Any]], server_version: str
) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for res in resources:
        paths.update(_resource_paths(res, v3=False))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": server_version},
        "paths": dict(sorted(paths.items())),
        "definitions": {name: _to_v2(schemas[name]) for name in _closure(_roots(resources), schemas)},
        "securityDefinitions": {
            "BearerToken": {
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
                "description": "Bearer Token authentication",
            }
        },
        "security": [{"BearerToken": []}],
    }
