"""PATCH bodies applied the way kube-apiserver applies them.

Pure functions over decoded JSON values (``dict``/``list``/``str``/``int``/``float``/``bool``/``None``);
nothing here touches storage or HTTP. Inputs are never mutated: every function works on a copy.

Content types (the ``Content-Type`` of a PATCH request):

- ``MERGE_PATCH`` ``application/merge-patch+json``: RFC 7386, :func:`apply_merge_patch`.
  What ``kubectl patch --type merge``, ``label``, ``annotate`` and ``apply``/``edit`` on custom
  resources send.
- ``JSON_PATCH`` ``application/json-patch+json``: RFC 6902, :func:`apply_json_patch`.
- ``STRATEGIC_MERGE_PATCH`` ``application/strategic-merge-patch+json``: Kubernetes strategic merge
  patch, :func:`apply_strategic_merge_patch`; only for built-in kinds (those with an entry in
  :data:`STRATEGIC_MERGE_LISTS`). ``kubectl apply``/``edit``/``patch`` (default type) and
  ``rollout restart`` send it for built-in kinds.
- ``APPLY_PATCH`` ``application/apply-patch+yaml`` (server-side apply, ``kubectl apply
  --server-side``): :func:`apply_server_side`, a simplified apply without field ownership: the applied
  configuration is merged into the live object (maps recursively, associative lists by their keys,
  other lists replaced); fields dropped from the configuration are *not* removed and there are no
  conflicts. ``managedFields`` is not maintained. For an object that does not exist yet the server
  applies to ``{}`` and creates the result.

:func:`patch_options_status` checks the query options first, as kube-apiserver does (an apply needs
``fieldManager``; ``force`` is for apply only) and gives the 422 body when they are wrong.

:func:`apply_patch` dispatches on the content type and decodes the raw body, so a PATCH handler is::

    try:
        patched = apply_patch(request.content_type, live_object, await request.read(),
                              merge_lists=strategic_merge_lists(group, version, kind),
                              schema=crd_schema)  # the CRD version's openAPIV3Schema, or None
    except PatchError as err:
        return json_response(err.status(), status=err.code)

``merge_lists`` is ``None`` for custom resources: strategic merge patch is then refused with 415
exactly as kube-apiserver refuses it, which makes ``kubectl apply`` fall back to a merge patch.

Strategic merge patch, in short (the rules of k8s.io/apimachinery/pkg/util/strategicpatch):

- maps merge recursively; ``null`` deletes a key; ``{"$patch": "replace", ...}`` replaces a map,
  ``{"$patch": "delete"}`` empties it;
- a list merges only when its path is in the merge-list table (``MergeList``): lists of maps by
  their merge key (``containers`` by ``name``, ``ports`` by ``containerPort``, ...), lists of
  scalars (``finalizers``) as a set union; every other list is replaced;
- in a merge list, ``{"name": "x", "$patch": "delete"}`` deletes the element, ``{"$patch":
  "replace"}`` replaces the whole list with the other elements;
- ``"$deleteFromPrimitiveList/<field>": [values]`` removes scalars from a merged scalar list;
- ``"$setElementOrder/<field>": [...]`` fixes the order of the merged list;
- ``"$retainKeys": [fields]`` clears every other field of the map first;
- order of a merged list: patch elements in patch order interleaved with the elements only the
  live object has, in live order (new elements not in the live list come first, as in Kubernetes).

Merge-list paths are dotted field names from the object root with ``[]`` for "each element of the
list", e.g. ``spec.template.spec.containers[].env``.

Errors raise :class:`PatchError` carrying the HTTP code (400 malformed body, 413 too many JSON patch
operations, 415 unsupported patch type, 422 patch does not apply); ``.status()`` builds the
``Status`` body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeapi import _generated_merge_lists
from kubeapi._jsonvalues import copy_json, json_equal
from kubeapi._patchtypes import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_CONTENT_TYPES,
    STRATEGIC_MERGE_PATCH,
)
from kubeshore import mergepatch

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MAX_JSON_PATCH_OPERATIONS",
    "MERGE_PATCH",
    "PATCH_CONTENT_TYPES",
    "STRATEGIC_MERGE_LISTS",
    "STRATEGIC_MERGE_PATCH",
    "MergeList",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_patch",
    "apply_server_side",
    "apply_strategic_merge_patch",
    "patch_options_status",
    "strategic_merge_lists",
    "supported_patch_types",
]


# kube-apiserver refuses longer JSON patches with 413 (maxJSONPatchOperations).
MAX_JSON_PATCH_OPERATIONS = 10000

_REASONS = {
    400: "BadRequest",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
}


class PatchError(ValueError):
    """A patch could not be decoded or applied; ``code`` is the HTTP status to answer with."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def reason(self) -> str:
        return _REASONS.get(self.code, "BadRequest")

    def status(self) -> dict[str, Any]:
        """The ``Status`` body kube-apiserver would answer with."""
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def supported_patch_types(strategic: bool) -> list[str]:
    """Patch content types accepted for a resource (``strategic`` for built-in kinds)."""
    if strategic:
        return [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
    return [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]


def _unsupported_media_type(strategic: bool) -> PatchError:
    accepted = ", ".join(supported_patch_types(strategic))
    return PatchError(
        f"the body of the request was in an unknown format - accepted media types include: {accepted}",
        415,
    )


def apply_patch(
    content_type: str,
    obj: Mapping[str, Any],
    body: bytes | str,
    *,
    merge_lists: Mapping[str, MergeList] | None,
    schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Decode a PATCH body of ``content_type`` and apply it to ``obj``.

    ``merge_lists`` is the strategic-merge table of the object's kind
    (:func:`strategic_merge_lists`), ``None`` when the kind has none (custom resources): strategic
    merge patch is then refused with 415. ``schema`` is the CRD schema of a custom resource, whose
    ``x-kubernetes-list-type`` markers server-side apply follows. The result must still be an
    object (``dict``).
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    strategic = merge_lists is not None
    if media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        raise _unsupported_media_type(strategic)
    if media_type == STRATEGIC_MERGE_PATCH and merge_lists is None:
        raise _unsupported_media_type(strategic)
    decoded = _decode_apply(body) if media_type == APPLY_PATCH else _decode_json(body)
    if media_type == JSON_PATCH:
        result = apply_json_patch(obj, decoded)
    elif media_type == MERGE_PATCH:
        result = apply_merge_patch(obj, decoded)
    elif media_type == APPLY_PATCH:
        result = apply_server_side(obj, decoded, merge_lists=merge_lists, schema=schema)
    else:
        assert merge_lists is not None
        result = apply_strategic_merge_patch(obj, decoded, merge_lists)
    if not isinstance(result, dict):
        raise PatchError(f"the patched object must be a JSON object, got {_json_type(result)}")
    return result


def patch_options_status(
    content_type: str, field_manager: str | None, force: str | None
) -> dict[str, Any] | None:
    """The 422 ``Status`` for invalid PATCH query options, ``None`` when they are fine."""
    from kubeapi.schema import FieldError, invalid_status

    apply = content_type.split(";", 1)[0].strip().lower() == APPLY_PATCH
    errors = []
    if apply and not field_manager:
        errors.append(FieldError.required("fieldManager", "is required for apply patch"))
    if not apply and force is not None:
        errors.append(FieldError.forbidden("force", "may not be specified for non-apply patch"))
    if not errors:
        return None
    return invalid_status("PatchOptions", "meta.k8s.io", "", errors)


def _decode_json(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise PatchError(f"error decoding patch: {err}", 400) from None


def _decode_apply(body: bytes | str) -> Any:
    """An apply configuration: JSON (what kubectl sends) or YAML."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        pass
    import yaml  # only for the rare YAML apply body; the project depends on PyYAML anyway

    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as err:
        raise PatchError(f"error decoding YAML: {err}", 400) from None


# --------------------------------------------------------------------------------------------------
# Shared helpers


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _identity(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal exactly when the values are JSON-equal."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z",)
    return ("j", json.dumps(value, sort_keys=True))


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def apply_merge_patch(obj: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes a key,
    everything else (arrays included) replaces the target.

    kube-apiserver only accepts an object as a merge patch of an object; anything else is a
    400 ``PatchError``.
    """
    if not isinstance(patch, dict):
        raise PatchError(f"a JSON merge patch must be a JSON object, got {_json_type(patch)}", 400)
    return mergepatch.apply(obj, patch)


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch


def _parse_pointer(pointer: Any, field: str, index: int) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(
            f"operation {index}: {field!r} must be a string JSON pointer, got {_json_type(pointer)}"
        )
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f'operation {index}: JSON pointer "{pointer}" must be empty or start with "/"')
    tokens = []
    for raw in pointer[1:].split("/"):
        rest = raw.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise PatchError(
                f'operation {index}: JSON pointer "{pointer}" has an invalid escape '
                '("~" must be "~0" or "~1")'
            )
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _array_index(token: str, length: int, pointer: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0") or not token.isascii():
        raise PatchError(f'invalid array index "{token}" in JSON pointer "{pointer}"')
    idx = int(token)
    limit = length if allow_end else length - 1
    if idx > limit:
        raise PatchError(f'array index {idx} out of range (length {length}) in JSON pointer "{pointer}"')
    return idx


def _pointer_text(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _walk(doc: Any, tokens: list[str], op: str) -> Any:
    """The value at ``tokens``; a missing step is a 422 naming the operation and path."""
    current = doc
    for depth, token in enumerate(tokens):
        here = _pointer_text(tokens[: depth + 1])
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f'{op} operation does not apply: doc is missing path: "{here}"')
            current = current[token]
        elif isinstance(current, list):
            current = current[_array_index(token, len(current), here, allow_end=False)]
        else:
            raise PatchError(
                f'{op} operation does not apply: "{_pointer_text(tokens[:depth])}" is a '
                f"{_json_type(current)}, not an object or array"
            )
    return current


def _add(doc: Any, tokens: list[str], value: Any, op: str) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], op)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), _pointer_text(tokens), allow_end=True), value)
    else:
        raise PatchError(
            f'{op} operation does not apply: "{_pointer_text(tokens[:-1])}" is a {_json_type(parent)}, '
            "not an object or array"
        )
    return doc


def _remove(doc: Any, tokens: list[str], op: str) -> Any:
    """Remove and return the value at ``tokens`` (which must exist)."""
    if not tokens:
        raise PatchError(f"{op} operation does not apply: cannot remove the whole document")
    parent = _walk(doc, tokens[:-1], op)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'{op} operation does not apply: doc is missing path: "{_pointer_text(tokens)}"')
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_array_index(last, len(parent), _pointer_text(tokens), allow_end=False))
    raise PatchError(
        f'{op} operation does not apply: "{_pointer_text(tokens[:-1])}" is a {_json_type(parent)}, '
        "not an object or array"
    )


def apply_json_patch(obj: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) and return the new document.

    Supports ``add``, ``remove``, ``replace``, ``move``, ``copy`` and ``test``; pointers use ``~0``/``~1``
    escapes and ``-`` for "after the last element" (``add``, and the target of ``move``/``copy``).
    A malformed operation list is a 400 ``PatchError``, an operation that does not apply (missing
    path, failed ``test``, index out of range) a 422 naming the operation's index and path. More
    than :data:`MAX_JSON_PATCH_OPERATIONS` operations is a 413, as in kube-apiserver.
    """
    if not isinstance(ops, list):
        raise PatchError(f"a JSON patch must be an array of operations, got {_json_type(ops)}", 400)
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchError(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
            413,
        )
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"operation {index} must be a JSON object, got {_json_type(op)}", 400)
    doc = copy_json(obj)
    for index, op in enumerate(ops):
        try:
            doc = _apply_operation(doc, op, index)
        except PatchError as err:
            if err.message.startswith("operation "):
                raise
            raise PatchError(f"operation {index} ({_compact(op)}): {err.message}", err.code) from None
    return doc


def _apply_operation(doc: Any, op: dict[str, Any], index: int) -> Any:
    name = op.get("op")
    if not isinstance(name, str):
        raise PatchError(f'operation {index} has no "op" (one of add, remove, replace, move, copy, test)')
    if "path" not in op:
        raise PatchError(f'operation {index} ({name}) has no "path"')
    tokens = _parse_pointer(op["path"], "path", index)
    if name in ("add", "replace", "test") and "value" not in op:
        raise PatchError(f'operation {index} ({name} {op["path"]}) has no "value"')
    if name == "add":
        return _add(doc, tokens, copy_json(op["value"]), name)
    if name == "remove":
        _remove(doc, tokens, name)
        return doc
    if name == "replace":
        if not tokens:
            return copy_json(op["value"])
        _remove(doc, tokens, name)
        return _add(doc, tokens, copy_json(op["value"]), name)
    if name == "test":
        current = _walk(doc, tokens, name)
        if not json_equal(current, op["value"]):
            raise PatchError(
                f"testing value {op['path']} failed: test failed: have {_compact(current)}, "
                f"want {_compact(op['value'])}"
            )
        return doc
    if name in ("move", "copy"):
        if "from" not in op:
            raise PatchError(f'operation {index} ({name} {op["path"]}) has no "from"')
        source = _parse_pointer(op["from"], "from", index)
        if name == "move":
            if source == tokens:
                _walk(doc, source, name)
                return doc
            if tokens[: len(source)] == source:
                raise PatchError(
                    f'move operation does not apply: cannot move "{op["from"]}" into its own child'
                )
            value = _remove(doc, source, name)
        else:
            value = copy_json(_walk(doc, source, name))
        return _add(doc, tokens, value, name)
    raise PatchError(
        f'operation {index} has unknown op "{name}" (one of add, remove, replace, move, copy, test)'
    )


# --------------------------------------------------------------------------------------------------
# Strategic merge patch


@dataclass(frozen=True)
class MergeList:
    """A list that a strategic merge patch merges instead of replacing.

    ``merge_key`` names the field identifying an element of a list of objects (``patchMergeKey``);
    ``None`` for a list of scalars merged as a set (``finalizers``). ``retain_keys`` records
    ``patchStrategy:"merge,retainKeys"`` (each element honours ``$retainKeys``); it is informative:
    the directive in the patch decides.
    """

    merge_key: str | None
    retain_keys: bool = False


# Keyed by (group, version, kind); "" is the core group. Generated from Kubernetes' OpenAPI
# (x-kubernetes-patch-strategy/-merge-key, the patchStrategy/patchMergeKey tags of k8s.io/api) by
# `python -m kubeapi.generate`.
STRATEGIC_MERGE_LISTS: dict[tuple[str, str, str], dict[str, MergeList]] = {
    gvk: {path: MergeList(key, retain_keys) for path, (key, retain_keys) in lists.items()}
    for gvk, lists in _generated_merge_lists.MERGE_LISTS.items()
}


def strategic_merge_lists(group: str, version: str, kind: str) -> Mapping[str, MergeList] | None:
    """The merge-list table of a built-in kind, ``None`` if strategic merge patch does not apply."""
    return STRATEGIC_MERGE_LISTS.get((group, version, kind))


_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM_PRIMITIVE = "$deleteFromPrimitiveList/"


def apply_strategic_merge_patch(obj: Any, patch: Any, schema_info: Mapping[str, MergeList]) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to ``obj`` using the merge-list table ``schema_info``
    (see :func:`strategic_merge_lists`); see the module docstring for the rules.

    Malformed directives are a 400 ``PatchError`` (as kube-apiserver answers), a patch that does
    not fit the object (list element without its merge key, lists of lists, mixed element types)
    a 422.
    """
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, got {_json_type(patch)}", 400)
    original = copy_json(obj) if isinstance(obj, dict) else {}
    return _StrategicMerge(schema_info).merge_map(original, copy_json(patch), "")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _StrategicMerge:
    def __init__(self, lists: Mapping[str, MergeList]) -> None:
        self.lists = lists

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: str) -> dict[str, Any]:
        """Merge ``patch`` into ``original`` (both owned by us: modified in place)."""
        if _DIRECTIVE in patch:
            directive = patch.pop(_DIRECTIVE)
            if directive == "replace":
                return self.strip_directives(patch, path)
            if directive == "delete":
                return {}
            if directive != "merge":
                raise PatchError(f"unknown patch type: {_compact(directive)} in map: {_compact(patch)}", 400)
        self.retain_keys(original, patch)
        self.apply_element_orders(original, patch, path)
        deletions: list[tuple[str, Any]] = []
        for key, value in patch.items():
            if key.startswith(_DELETE_FROM_PRIMITIVE):
                deletions.append((key[len(_DELETE_FROM_PRIMITIVE) :], value))
                continue
            if key.startswith("$"):
                raise PatchError(
                    f"unknown strategic merge patch directive {key!r} at {path or '<root>'}", 400
                )
            if value is None:
                original.pop(key, None)
                continue
            original[key] = self.merge_value(original.get(key), value, _child(path, key))
        for key, values in deletions:
            if not isinstance(values, list):
                raise PatchError("invalid patch format of primitive list", 400)
            current = original.get(key)
            if isinstance(current, list):
                doomed = {_identity(v) for v in values}
                original[key] = [v for v in current if _identity(v) not in doomed]
        return original

    def merge_value(self, original: Any, patch: Any, path: str) -> Any:
        if isinstance(patch, dict):
            return self.merge_map(original if isinstance(original, dict) else {}, patch, path)
        if isinstance(patch, list):
            strategy = self.lists.get(path)
            if strategy is None:
                # Replaced, as a list without patchStrategy:"merge" is.
                return self.strip_list(patch, path)
            return self.merge_list(original if isinstance(original, list) else [], patch, strategy, path)
        return patch

    def strip_directives(self, patch: dict[str, Any], path: str) -> dict[str, Any]:
        """A replaced map: drop nulls and directives, as merging into nothing does."""
        return self.merge_map({}, patch, path)

    def strip_list(self, items: list[Any], path: str) -> list[Any]:
        return [self.merge_map({}, v, path + "[]") if isinstance(v, dict) else v for v in items]

    def retain_keys(self, original: dict[str, Any], patch: dict[str, Any]) -> None:
        if _RETAIN_KEYS not in patch:
            return
        keep = patch.pop(_RETAIN_KEYS)
        if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
            raise PatchError("invalid patch format of retainKeys", 400)
        for key, value in patch.items():
            if value is None or key.startswith(("$deleteFromPrimitiveList/", "$setElementOrder/")):
                continue
            if key not in keep:
                raise PatchError("invalid patch format of retainKeys", 400)
        for key in list(original):
            if key not in keep:
                del original[key]

    def apply_element_orders(self, original: dict[str, Any], patch: dict[str, Any], path: str) -> None:
        """Merge each list that has a ``$setElementOrder`` and order it; both leave ``patch``."""
        for key in [k for k in patch if k.startswith(_SET_ORDER)]:
            order = patch.pop(key)
            field = key[len(_SET_ORDER) :]
            if not isinstance(order, list):
                raise PatchError("invalid patch format of setElementOrder list", 400)
            field_path = _child(path, field)
            strategy = self.lists.get(field_path)
            identify = self.identifier(strategy.merge_key if strategy else None)
            live = original.get(field)
            live_list = live if isinstance(live, list) else []
            in_patch = field in patch
            patch_list = patch.pop(field, None)
            if in_patch and patch_list is None:
                original.pop(field, None)
                continue
            if not in_patch and not isinstance(live, list):
                continue
            if in_patch:
                if not isinstance(patch_list, list):
                    raise PatchError("invalid patch format of setElementOrder list", 400)
                self.check_order(patch_list, order, identify)
                merged = self.merge_value(live_list, patch_list, field_path)
            else:
                merged = live_list
            in_order = {identify(v) for v in order}
            listed = [v for v in merged if identify(v) in in_order]
            server_only = [v for v in merged if identify(v) not in in_order]
            original[field] = _normalize_order(listed, server_only, order, live_list, identify)

    @staticmethod
    def identifier(merge_key: str | None) -> Callable[[Any], Any]:
        if merge_key is None:
            return _identity

        def identify(item: Any) -> Any:
            if isinstance(item, dict):
                return _identity(item.get(merge_key))
            return _identity(item)

        return identify

    @staticmethod
    def check_order(patch_list: list[Any], order: list[Any], identify: Callable[[Any], Any]) -> None:
        # Every patch element must appear in $setElementOrder, in the same relative order.
        wanted = [identify(v) for v in patch_list if not (isinstance(v, dict) and _DIRECTIVE in v)]
        positions = {identify(v): i for i, v in enumerate(order)}
        last = -1
        for ident in wanted:
            pos = positions.get(ident)
            if pos is None or pos < last:
                raise PatchError(
                    f"The order in patch list: {_compact(patch_list)} doesn't match $setElementOrder list: "
                    f"{_compact(order)}"
                )
            last = pos

    def merge_list(self, original: list[Any], patch: list[Any], strategy: MergeList, path: str) -> list[Any]:
        if not original and not patch:
            return original
        kinds = {_element_kind(v) for v in original + patch}
        if "array" in kinds:
            raise PatchError("lists of lists are not supported")
        if len(kinds) > 1:
            raise PatchError(f"types don't match in list {path}: {', '.join(sorted(kinds))}")
        if kinds == {"object"}:
            merge_key = strategy.merge_key
            if merge_key is None:
                raise PatchError(f"cannot merge lists without merge key for {path}")
            return self.merge_object_list(original, patch, merge_key, path)
        identify = _identity
        merged: list[Any] = []
        seen: set[Any] = set()
        for value in original + patch:
            ident = identify(value)
            if ident not in seen:
                seen.add(ident)
                merged.append(value)
        in_patch = {identify(v) for v in patch}
        patch_items = [v for v in merged if identify(v) in in_patch]
        server_only = [v for v in merged if identify(v) not in in_patch]
        return _normalize_order(patch_items, server_only, patch, original, identify)

    def merge_object_list(
        self, original: list[Any], patch: list[Any], merge_key: str, path: str
    ) -> list[Any]:
        item_path = path + "[]"
        identify = self.identifier(merge_key)
        plain: list[dict[str, Any]] = []
        replace = False
        for item in patch:
            directive = item.get(_DIRECTIVE)
            if directive is None and _DIRECTIVE not in item:
                if merge_key not in item:
                    raise _missing_merge_key(item, merge_key)
                plain.append(item)
            elif directive == "delete":
                if merge_key not in item:
                    raise _missing_merge_key(item, merge_key)
                doomed = identify(item)
                original = [v for v in original if identify(v) != doomed]
            elif directive == "replace":
                replace = True
            elif directive == "merge":
                raise PatchError("merging lists cannot yet be specified in the patch", 400)
            else:
                raise PatchError(f"unknown patch type: {_compact(directive)} in map: {_compact(item)}", 400)
        if replace:
            return [self.merge_map({}, item, item_path) for item in plain]
        server_order = list(original)
        merged = list(original)
        positions = {identify(v): i for i, v in enumerate(merged)}
        for item in plain:
            ident = identify(item)
            pos = positions.get(ident)
            if pos is None:
                positions[ident] = len(merged)
                merged.append(self.merge_map({}, item, item_path))
            else:
                merged[pos] = self.merge_map(merged[pos], item, item_path)
        in_patch = {identify(v) for v in plain}
        patch_items = [v for v in merged if identify(v) in in_patch]
        server_only = [v for v in merged if identify(v) not in in_patch]
        return _normalize_order(patch_items, server_only, plain, server_order, identify)


def _missing_merge_key(item: dict[str, Any], merge_key: str) -> PatchError:
    return PatchError(f"map: {_compact(item)} does not contain declared merge key: {merge_key}")


def _element_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def _sort_by_order(items: list[Any], order: list[Any], identify: Callable[[Any], Any]) -> list[Any]:
    positions: dict[Any, int] = {}
    for i, v in enumerate(order):
        positions.setdefault(identify(v), i)
    return sorted(items, key=lambda v: positions.get(identify(v), len(order)))


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    identify: Callable[[Any], Any],
) -> list[Any]:
    """Patch elements in patch order interleaved with live-only elements in live order.

    This is strategicpatch's normalizeElementOrder + mergeSortedSlice: a live-only element goes
    before a patch element only when both are in the live list and it comes first there, so
    elements new to the list end up in front of the live elements that follow them.
    """
    right = _sort_by_order(patch_items, patch_order, identify)
    left = _sort_by_order(server_only, server_order, identify)
    live_positions: dict[Any, int] = {}
    for i, v in enumerate(server_order):
        live_positions.setdefault(identify(v), i)
    result: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            result.append(left[i])
            i += 1
        elif i >= len(left):
            result.append(right[j])
            j += 1
        else:
            li = live_positions.get(identify(left[i]))
            rj = live_positions.get(identify(right[j]))
            if li is not None and rj is not None and li < rj:
                result.append(left[i])
                i += 1
            else:
                result.append(right[j])
                j += 1
    return result


# --------------------------------------------------------------------------------------------------
# Server-side apply, simplified


def apply_server_side(
    live: Mapping[str, Any] | None,
    applied: Any,
    *,
    merge_lists: Mapping[str, MergeList] | None = None,
    schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge an apply configuration into ``live`` (``None`` or ``{}`` when the object is new).

    Maps merge recursively and the configuration's values win; ``null`` removes a field. A list is
    merged when it is associative: by ``x-kubernetes-list-map-keys`` or as a set
    (``x-kubernetes-list-type: set``) in a CRD ``schema``, by the merge key of ``merge_lists`` for
    built-in kinds; other lists are replaced. Without field ownership, fields left out of the
    configuration stay as they are.
    """
    if not isinstance(applied, dict):
        raise PatchError(
            f"an apply configuration must be a JSON or YAML object, got {_json_type(applied)}", 400
        )
    for key in ("apiVersion", "kind"):
        if not isinstance(applied.get(key), str) or not applied[key]:
            raise PatchError(f"the apply configuration must set {key}", 400)
    merger = _ServerSideApply(merge_lists or {}, schema)
    return merger.merge_map(copy_json(dict(live or {})), applied, "", schema)


def _schema_child(schema: Mapping[str, Any] | None, key: str) -> Mapping[str, Any] | None:
    if schema is None:
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        sub = properties[key]
        return sub if isinstance(sub, Mapping) else None
    additional = schema.get("additionalProperties")
    return additional if isinstance(additional, Mapping) else None


class _ServerSideApply:
    def __init__(self, lists: Mapping[str, MergeList], schema: Mapping[str, Any] | None) -> None:
        self.lists = lists
        self.schema = schema

    def merge_map(
        self, live: dict[str, Any], applied: Mapping[str, Any], path: str, schema: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        for key, value in applied.items():
            child = _child(path, key)
            sub = _schema_child(schema, key)
            if value is None:
                live.pop(key, None)
            elif isinstance(value, dict):
                current = live.get(key)
                live[key] = self.merge_map(current if isinstance(current, dict) else {}, value, child, sub)
            elif isinstance(value, list):
                current = live.get(key)
                live[key] = self.merge_list(current if isinstance(current, list) else [], value, child, sub)
            else:
                live[key] = value
        return live

    def list_keys(self, path: str, schema: Mapping[str, Any] | None) -> tuple[str, ...] | None:
        """Keys of an associative list of objects, ``()`` for a set, ``None`` for atomic lists."""
        if schema is not None:
            list_type = schema.get("x-kubernetes-list-type")
            if list_type == "map":
                return tuple(k for k in schema.get("x-kubernetes-list-map-keys") or [] if isinstance(k, str))
            return () if list_type == "set" else None
        strategy = self.lists.get(path)
        if strategy is None:
            return None
        return (strategy.merge_key,) if strategy.merge_key else ()

    def merge_list(
        self, live: list[Any], applied: list[Any], path: str, schema: Mapping[str, Any] | None
    ) -> list[Any]:
        keys = self.list_keys(path, schema)
        if keys is None:
            replaced: list[Any] = copy_json(applied)
            return replaced
        if not keys:
            merged = list(live)
            seen = {_identity(v) for v in live}
            for value in applied:
                if _identity(value) not in seen:
                    seen.add(_identity(value))
                    merged.append(copy_json(value))
            return merged
        items = schema.get("items") if schema is not None else None
        item_schema = items if isinstance(items, Mapping) else None

        def identify(item: Any) -> Any:
            if not isinstance(item, dict):
                return ("scalar", _identity(item))
            return tuple(_identity(item.get(k)) for k in keys)

        merged = list(live)
        positions = {identify(v): i for i, v in enumerate(merged)}
        for value in applied:
            if not isinstance(value, dict):
                raise PatchError(
                    f"{path}: elements of an associative list must be objects, got {_json_type(value)}"
                )
            ident = identify(value)
            pos = positions.get(ident)
            if pos is None:
                positions[ident] = len(merged)
                merged.append(self.merge_map({}, value, path + "[]", item_schema))
            else:
                merged[pos] = self.merge_map(merged[pos], value, path + "[]", item_schema)
        return merged
