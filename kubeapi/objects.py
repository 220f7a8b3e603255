"""Kubernetes object semantics over a :class:`~kubeapi.store.Store`: what kube-apiserver's generic
registry does between decoding a request and writing to etcd.

Both the HTTP handlers and in-process controllers (garbage collector, CRD controller) go through
:class:`ObjectService`, so finalizers, generations and status subresources behave the same
whoever writes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubeapi import _patchtypes
from kubeapi.errors import (
    APIError,
    StatusCause,
    bad_request,
    conflict,
    field_error,
    invalid,
    not_found,
    unsupported_media_type,
)
from kubeapi.resources import Registry, ResourceType
from kubeapi.store import Store, StoredObject

# Called before every write with (resource, new object, old object or None); may change the new
# object (defaults, pruning) or raise APIError (422 Invalid).
Admission = Callable[[ResourceType, dict[str, Any], dict[str, Any] | None], Awaitable[None]]

MERGE_PATCH = _patchtypes.MERGE_PATCH
JSON_PATCH = _patchtypes.JSON_PATCH
STRATEGIC_PATCH = _patchtypes.STRATEGIC_MERGE_PATCH
APPLY_PATCH = _patchtypes.APPLY_PATCH

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# kube-apiserver's generateName alphabet: no vowels, no easily confused characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_RETRIES = 8

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class DeleteOptions:
    propagation_policy: str = ""  # "", Background, Foreground, Orphan
    grace_period_seconds: int | None = None
    precondition_uid: str = ""
    precondition_resource_version: str = ""
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: dict[str, Any] | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        opts = cls()
        policy = body.get("propagationPolicy") or query.get("propagationPolicy") or ""
        orphan = body.get("orphanDependents")
        if orphan is None and "orphanDependents" in query:
            orphan = query["orphanDependents"] == "true"
        if not policy and orphan is not None:
            policy = "Orphan" if orphan else "Background"
        if policy not in ("", "Background", "Foreground", "Orphan"):
            raise APIError(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
                'supported values: "Foreground", "Background", "Orphan", "nil"',
            )
        opts.propagation_policy = policy
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        opts.grace_period_seconds = int(grace) if grace is not None else None
        pre = body.get("preconditions") or {}
        opts.precondition_uid = pre.get("uid") or ""
        opts.precondition_resource_version = pre.get("resourceVersion") or ""
        dry = body.get("dryRun") or ([query["dryRun"]] if "dryRun" in query else [])
        opts.dry_run = "All" in dry
        return opts


def _strip_version_independent(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without metadata and status: what a generation counts changes of."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _validate_name(resource: ResourceType, name: str) -> list[str]:
    problems = []
    limit = 63 if resource.dns_label_names else 253
    pattern = _DNS_LABEL if resource.dns_label_names else _DNS_SUBDOMAIN
    if len(name) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not pattern.match(name):
        if resource.dns_label_names:
            problems.append(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
        else:
            problems.append(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
    return problems


class ObjectService:
    def __init__(self, store: Store, registry: Registry, *, admit: Admission | None = None) -> None:
        self.store = store
        self.registry = registry
        self._admit = admit

    # -- reads -----------------------------------------------------------------------------

    async def get(self, resource: ResourceType, namespace: str, name: str) -> StoredObject:
        stored = await self.store.get(resource, namespace, name)
        if stored is None:
            raise not_found(resource.plural, resource.group, name)
        return stored

    # -- helpers ---------------------------------------------------------------------------

    def storage_type(self, resource: ResourceType) -> ResourceType:
        if resource.storage_version and resource.storage_version != resource.version:
            stored = self.registry.get(resource.group, resource.storage_version, resource.plural)
            if stored is not None:
                return stored
        return resource

    def _check_type(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version is None and kind is None:
            obj["apiVersion"], obj["kind"] = resource.group_version, resource.kind
            return
        if not isinstance(api_version, str) or not isinstance(kind, str) or not kind or not api_version:
            raise bad_request(
                "Object 'Kind' is missing in '" + json.dumps(obj)[:200] + "'"
                if not kind
                else "Object 'apiVersion' is missing in '" + json.dumps(obj)[:200] + "'"
            )
        group, _, version = api_version.rpartition("/")
        served = self.registry.get(group, version, resource.plural)
        if group != resource.group or served is None:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({resource.group_version})"
            )
        if kind != resource.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
            )

    def _check_metadata(self, resource: ResourceType, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if resource.namespaced:
            body_ns = meta.get("namespace") or ""
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or body_ns
        else:
            meta.pop("namespace", None)
        for key in ("labels", "annotations"):
            value = meta.get(key)
            if value is not None and (
                not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
            ):
                raise invalid(
                    resource.kind,
                    resource.group,
                    str(meta.get("name", "")),
                    [
                        field_error(
                            f"metadata.{key}", "FieldValueInvalid", "Invalid value: must be a map of strings"
                        )
                    ],
                )
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        return meta

    async def _check_namespace(self, namespace: str) -> None:
        ns_type = self.registry.get("", "v1", "namespaces")
        if ns_type is None:
            return
        ns = await self.store.get(ns_type, "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if b'"deletionTimestamp"' in ns.raw and ns.object()["metadata"].get("deletionTimestamp"):
            raise APIError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def _to_storage(self, resource: ResourceType, obj: dict[str, Any]) -> ResourceType:
        storage = self.storage_type(resource)
        obj["apiVersion"] = storage.group_version
        obj["kind"] = storage.kind
        return storage

    # -- writes ----------------------------------------------------------------------------

    async def create(
        self,
        resource: ResourceType,
        namespace: str,
        obj: Any,
        *,
        dry_run: bool = False,
        field_validation: str = "",
    ) -> StoredObject:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_type(resource, obj)
        meta = self._check_metadata(resource, obj, namespace)
        name = meta.get("name") or ""
        if not name:
            prefix = meta.get("generateName") or ""
            if not prefix:
                raise invalid(
                    resource.kind,
                    resource.group,
                    "",
                    [
                        field_error(
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            name = meta["name"] = prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
        problems = _validate_name(resource, name)
        if problems:
            raise invalid(
                resource.kind,
                resource.group,
                name,
                [
                    field_error(
                        "metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {problems[0]}'
                    )
                ],
            )
        if resource.namespaced:
            if not meta["namespace"]:
                raise bad_request("the server could not find the requested resource: a namespace is required")
            await self._check_namespace(meta["namespace"])
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if resource.tracks_generation:
            meta["generation"] = 1
        if resource.has_status() and (resource.custom or resource.kind == "Deployment"):
            obj.pop("status", None)
        if resource.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        elif resource.kind == "Pod" and resource.group == "":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        storage = self._to_storage(resource, obj)
        obj = self._validate(storage, obj, field_validation)
        if self._admit is not None:
            await self._admit(storage, obj, None)
        return await self.store.create(storage, obj, dry_run=dry_run)

    async def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        obj: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "",
    ) -> StoredObject:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        self._check_type(resource, obj)
        meta = self._check_metadata(resource, obj, namespace)
        body_name = meta.get("name") or ""
        if body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        rv_text = str(meta.get("resourceVersion") or "")
        if not rv_text and resource.custom:
            raise invalid(
                resource.kind,
                resource.group,
                name,
                [
                    field_error(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        expected = _parse_rv(rv_text) if rv_text else None
        for attempt in range(_RETRIES):
            current = await self.get(resource, namespace, name)
            if expected is not None and current.resource_version != expected:
                raise conflict(resource.plural, resource.group, name)
            try:
                return await self._replace(
                    resource,
                    current,
                    dict(obj),
                    subresource=subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                )
            except APIError as exc:
                if exc.reason != "Conflict" or expected is not None or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str = "",
        dry_run: bool = False,
        field_validation: str = "",
    ) -> StoredObject:
        # Imported here: a read-only server (the edge MetaServer) never needs the patch machinery.
        from kubeapi import patch as patches

        if patch_type == STRATEGIC_PATCH and resource.custom:
            patch_type = "custom-strategic"
        if patch_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
            raise APIError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(patches.supported_patch_types(not resource.custom)),
            )
        for attempt in range(_RETRIES):
            # Server-side apply creates what does not exist yet.
            if (
                patch_type == APPLY_PATCH
                and not subresource
                and await self.store.get(self.storage_type(resource), namespace, name) is None
            ):
                try:
                    patches.apply_server_side(None, patch)
                except patches.PatchError as err:
                    raise APIError(err.code, err.reason, err.message) from None
                created = dict(patch)
                created.setdefault("metadata", {})
                if isinstance(created["metadata"], dict) and created["metadata"].get("name", name) != name:
                    raise bad_request(
                        f"the name of the object ({created['metadata'].get('name')}) does not match "
                        f"the name on the URL ({name})"
                    )
                if isinstance(created["metadata"], dict):
                    created["metadata"] = {**created["metadata"], "name": name}
                try:
                    return await self.create(
                        resource, namespace, created, dry_run=dry_run, field_validation=field_validation
                    )
                except APIError as exc:
                    if exc.reason != "AlreadyExists" or attempt == _RETRIES - 1:
                        raise
                    continue
            current = await self.get(resource, namespace, name)
            obj = current.object()
            self._served_as(resource, obj)
            try:
                if patch_type == APPLY_PATCH:
                    lists = patches.strategic_merge_lists(resource.group, resource.version, resource.kind)
                    patched = patches.apply_server_side(obj, patch, merge_lists=lists, schema=resource.schema)
                elif patch_type == JSON_PATCH:
                    patched = patches.apply_json_patch(obj, patch)
                elif patch_type == STRATEGIC_PATCH:
                    lists = patches.strategic_merge_lists(resource.group, resource.version, resource.kind)
                    patched = patches.apply_strategic_merge_patch(obj, patch, lists or {})
                else:
                    patched = patches.apply_merge_patch(obj, patch)
            except patches.PatchError as err:
                raise APIError(err.code, err.reason, err.message) from None
            if not isinstance(patched, dict):
                raise bad_request("the patched object must be a JSON object")
            meta = patched.get("metadata")
            if not isinstance(meta, dict):
                raise bad_request("metadata must be an object")
            pinned = str(meta.get("resourceVersion") or "")
            if pinned and _parse_rv(pinned) != current.resource_version:
                raise conflict(resource.plural, resource.group, name)
            if meta.get("name") != name:
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
                )
            self._check_type(resource, patched)
            self._check_metadata(resource, patched, namespace)
            try:
                return await self._replace(
                    resource,
                    current,
                    patched,
                    subresource=subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                )
            except APIError as exc:
                if exc.reason != "Conflict" or pinned or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _validate(self, resource: ResourceType, obj: dict[str, Any], field_validation: str) -> dict[str, Any]:
        """Default built-in kinds; prune, default and validate a custom resource against its CRD schema;
        check CRD schemas."""
        from kubeapi import schema  # writes only: not loaded by a read-only server

        name = str(obj.get("metadata", {}).get("name", ""))
        if resource.kind == "Secret" and resource.group == "":
            _merge_string_data(resource, name, obj)
        if resource.kind in ("ConfigMap", "Secret") and resource.group == "":
            _check_data_maps(resource, name, obj)
        if not resource.custom:
            from kubeapi.defaults import apply_defaults  # writes only, as schema

            apply_defaults(resource.group, resource.version, resource.kind, obj)
        if resource.custom and resource.schema:
            result = schema.admit(resource.schema, obj)
            if result.errors:
                raise _from_status(schema.invalid_status(resource.kind, resource.group, name, result.errors))
            if result.unknown_fields and field_validation == "Strict":
                raise _from_status(
                    schema.strict_decoding_status(resource.kind, resource.version, result.unknown_fields)
                )
            admitted: dict[str, Any] = result.obj
            return admitted
        if resource.kind == "CustomResourceDefinition" and resource.group == "apiextensions.k8s.io":
            errors = []
            for i, version in enumerate((obj.get("spec") or {}).get("versions") or []):
                if isinstance(version, dict):
                    errors += schema.check_structural(
                        (version.get("schema") or {}).get("openAPIV3Schema"),
                        f"spec.versions[{i}].schema.openAPIV3Schema",
                    )
            if errors:
                raise _from_status(schema.invalid_status(resource.kind, resource.group, name, errors))
        return obj

    def _served_as(self, resource: ResourceType, obj: dict[str, Any]) -> None:
        obj["apiVersion"] = resource.group_version

    async def _replace(
        self,
        resource: ResourceType,
        current: StoredObject,
        new: dict[str, Any],
        *,
        subresource: str,
        dry_run: bool,
        field_validation: str = "",
    ) -> StoredObject:
        old = current.object()
        old_meta = old["metadata"]
        if subresource == "status":
            # /status changes only the status; everything else comes from the stored object.
            merged = dict(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
            new["metadata"] = dict(old_meta)
        elif resource.has_status():
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        meta = new["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
            if added:
                raise invalid(
                    resource.kind,
                    resource.group,
                    current.name,
                    [
                        field_error(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            f"Forbidden: no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {json.dumps(sorted(added))}",
                        )
                    ],
                )
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        storage = self._to_storage(resource, new)
        self._to_storage(resource, old)
        new = self._validate(storage, new, field_validation)
        meta = new["metadata"]
        if resource.tracks_generation and _strip_version_independent(new) != _strip_version_independent(old):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        if new == old:
            # kube-apiserver does not write (nor bump the resourceVersion) for a no-op update.
            return current
        if self._admit is not None:
            await self._admit(storage, new, old)
        stored = await self.store.update(storage, new, current.resource_version, dry_run=dry_run)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return await self.store.delete(
                storage, current.namespace, current.name, stored.resource_version, dry_run=dry_run
            )
        return stored

    async def delete(
        self, resource: ResourceType, namespace: str, name: str, options: DeleteOptions | None = None
    ) -> tuple[StoredObject, bool]:
        """Delete now, or mark for deletion when finalizers remain; returns (object, deleted now)."""
        options = options or DeleteOptions()
        for attempt in range(_RETRIES):
            current = await self.get(resource, namespace, name)
            obj = current.object()
            meta = obj["metadata"]
            if options.precondition_uid and options.precondition_uid != meta.get("uid"):
                raise conflict(
                    resource.plural,
                    resource.group,
                    name,
                    f"Precondition failed: UID in precondition: {options.precondition_uid}, "
                    f"UID in object meta: {meta.get('uid')}",
                )
            if (
                options.precondition_resource_version
                and _parse_rv(options.precondition_resource_version) != current.resource_version
            ):
                raise conflict(
                    resource.plural,
                    resource.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{options.precondition_resource_version}, ResourceVersion in object meta: "
                    f"{current.resource_version}",
                )
            finalizers = list(meta.get("finalizers") or [])
            policy = options.propagation_policy
            if policy == "Orphan" and ORPHAN_FINALIZER not in finalizers:
                finalizers.append(ORPHAN_FINALIZER)
            elif policy == "Foreground" and FOREGROUND_FINALIZER not in finalizers:
                finalizers.append(FOREGROUND_FINALIZER)
            if resource.kind == "Namespace" and resource.group == "":
                obj.setdefault("status", {})["phase"] = "Terminating"
            if not finalizers and not (resource.kind == "Namespace" and resource.group == ""):
                storage = self.storage_type(resource)
                try:
                    stored = await self.store.delete(
                        storage, namespace, name, current.resource_version, dry_run=options.dry_run
                    )
                except APIError as exc:
                    if exc.reason == "Conflict" and attempt < _RETRIES - 1:
                        continue
                    raise
                return stored, True
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return current, False
            meta.setdefault("deletionTimestamp", now_rfc3339())
            meta.setdefault("deletionGracePeriodSeconds", 0)
            if finalizers:
                meta["finalizers"] = finalizers
            storage = self._to_storage(resource, obj)
            try:
                stored = await self.store.update(
                    storage, obj, current.resource_version, dry_run=options.dry_run
                )
            except APIError as exc:
                if exc.reason == "Conflict" and attempt < _RETRIES - 1:
                    continue
                raise
            return stored, False
        raise AssertionError("unreachable")

    async def remove_finalizer(self, resource: ResourceType, stored: StoredObject, finalizer: str) -> None:
        """Drop one finalizer (a controller finished its part); deletes the object if it was the last."""
        for _ in range(_RETRIES):
            obj = stored.object()
            finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
            if finalizers == list(obj["metadata"].get("finalizers") or []):
                return
            obj["metadata"]["finalizers"] = finalizers
            try:
                await self._replace(resource, stored, obj, subresource="", dry_run=False)
                return
            except APIError as exc:
                if exc.code == 404:
                    return
                if exc.reason != "Conflict":
                    raise
            latest = await self.store.get(resource, stored.namespace, stored.name)
            if latest is None:
                return
            stored = latest


def _merge_string_data(resource: ResourceType, name: str, obj: dict[str, Any]) -> None:
    """Secret ``stringData`` is write-only: merged into ``data`` (base64 of its UTF-8), winning over
    ``data``'s key of the same name, and never stored, as kube-apiserver does."""
    string_data = obj.pop("stringData", None)
    if string_data is None:
        return
    if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
        raise invalid(
            resource.kind,
            resource.group,
            name,
            [field_error("stringData", "FieldValueInvalid", "Invalid value: must map keys to strings")],
        )
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        data = {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    obj["data"] = data


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def _check_data_maps(resource: ResourceType, name: str, obj: dict[str, Any]) -> None:
    """ConfigMap/Secret ``data`` and ``binaryData``: string values (kube-apiserver cannot decode others:
    400) under valid config keys (422), as the edge, the MetaServer and the pods that read them expect."""
    causes = []
    for field in ("data", "binaryData"):
        values = obj.get(field)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
                f"{field} must map keys to strings"
            )
        for key in values:
            if len(key) > 253 or not _CONFIG_KEY.fullmatch(key):
                causes.append(
                    field_error(
                        f"{field}[{key}]",
                        "FieldValueInvalid",
                        f'Invalid value: "{key}": a valid config key must consist of alphanumeric '
                        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', "
                        "regex used for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
    if causes:
        raise invalid(resource.kind, resource.group, name, causes)


def _parse_rv(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise bad_request(f'invalid resource version "{text}"') from None


def _from_status(status: dict[str, Any]) -> APIError:
    details = status.get("details") or {}
    return APIError(
        int(status["code"]),
        str(status["reason"]),
        str(status["message"]),
        name=details.get("name", ""),
        group=details.get("group", ""),
        kind=details.get("kind", ""),
        causes=[StatusCause(**c) for c in details.get("causes") or []],
    )


def served_bytes(resource: ResourceType, stored: StoredObject) -> bytes:
    """The stored JSON as ``resource``'s version serves it (CRD versions share stored objects)."""
    if not resource.storage_version or resource.storage_version == resource.version:
        return stored.raw
    obj = stored.object()
    obj["apiVersion"] = resource.group_version
    return json.dumps(obj, separators=(",", ":")).encode()


def unsupported(content_type: str) -> APIError:
    return unsupported_media_type(content_type)
