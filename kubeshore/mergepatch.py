"""RFC 7386 JSON merge patch, the one implementation: the API server's ``merge-patch+json``, the
patches client-side apply sends (nodegroup), and command-line flags laid over a config file; with the
JSON deep copy it is built on (``copy_json``, kubeapi's too)."""

from __future__ import annotations

from typing import Any


def apply(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` merged: objects merge recursively, ``null`` deletes a key, anything
    else (arrays included) replaces the target. The result shares nothing with either argument, so a
    caller may change it (a stored object, a parsed config) freely."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    result = copy_json(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                current = result[key] = {}
            _merge_into(current, value)
        else:
            result[key] = copy_json(value)


def create(old: Any, new: Any) -> Any:
    """The merge patch turning ``old`` into ``new``; fields only in ``old`` become ``null``.

    Lists are replaced as a whole, as merge patches define. Only fields the previous apply set are
    removed, so fields other writers added (status, defaults, annotations) survive.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                patch[key] = create(old[key], value)
            else:
                patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value; much faster than copy.deepcopy for API objects."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value
