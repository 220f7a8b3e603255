"""RFC 7386 JSON merge patch, the one implementation: the API server's ``merge-patch+json``, the
patches client-side apply sends (nodegroup), and command-line flags laid over a config file."""

from __future__ import annotations

from typing import Any


def apply(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` merged: objects merge recursively, ``null`` deletes a key, anything
    else (arrays included) replaces the target. The result shares nothing with either argument, so a
    caller may change it (a stored object, a parsed config) freely."""
    if not isinstance(patch, dict):
        return _copy(patch)
    result = _copy(target) if isinstance(target, dict) else {}
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
            result[key] = _copy(value)


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


def _copy(value: Any) -> Any:
    # A JSON-only deep copy: several times faster than copy.deepcopy on API objects.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
