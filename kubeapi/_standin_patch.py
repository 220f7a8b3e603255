"""Temporary stand-in until kubeapi/patch.py lands: JSON merge patch and basic JSON patch only."""

from __future__ import annotations

import copy
from typing import Any

from kubeapi.errors import APIError


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if isinstance(patch, dict):
        patch = {k: v for k, v in patch.items() if not k.startswith("$")}
    return merge_patch(target, patch)


def _parts(path: str) -> list[str]:
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise APIError(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        kind, parts = op.get("op"), _parts(op.get("path", ""))
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1] if parts else ""
        try:
            if kind in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif kind == "test":
                if (parent[int(last)] if isinstance(parent, list) else parent[last]) != op.get("value"):
                    raise APIError(422, "Invalid", "testing value failed")
            else:
                raise APIError(400, "BadRequest", f"unsupported json patch operation {kind!r}")
        except (KeyError, IndexError, ValueError) as exc:
            raise APIError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
            ) from exc
    return doc
