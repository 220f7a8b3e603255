"""JSON merge patches (RFC 7386) between two documents, as client-side apply needs them."""

from __future__ import annotations

from typing import Any


def create_merge_patch(old: Any, new: Any) -> Any:
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
                patch[key] = create_merge_patch(old[key], value)
            else:
                patch[key] = value
    for key in old:
        if key not in new:
            patch[key] = None
    return patch
