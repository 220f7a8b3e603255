"""The subset of Kubernetes JSONPath that printer columns use: ``.a.b``, ``[0]``, ``[*]`` and
``[?(@.type=="Ready")]`` filters. Unsupported or missing paths yield no values, as kubectl shows
them as empty cells."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\.([A-Za-z0-9_\-/$]+)|\['([^']+)'\]|\[(\d+|\*)\]|\[\?\(@\.([\w.\-]+)\s*==\s*["']([^"']*)["']\)\]"""
)


def _walk(values: list[Any], tokens: list[tuple[str, str, str, str, str]]) -> list[Any]:
    for key, quoted, index, fkey, fvalue in tokens:
        out: list[Any] = []
        for v in values:
            if key or quoted:
                if isinstance(v, dict) and (key or quoted) in v:
                    out.append(v[key or quoted])
            elif index:
                if isinstance(v, list):
                    if index == "*":
                        out.extend(v)
                    elif int(index) < len(v):
                        out.append(v[int(index)])
            elif fkey and isinstance(v, list):
                for item in v:
                    probe: Any = item
                    for part in fkey.split("."):
                        probe = probe.get(part) if isinstance(probe, dict) else None
                    if probe is not None and str(probe) == fvalue:
                        out.append(item)
        values = out
    return values


def evaluate(path: str, obj: Any) -> list[Any]:
    """All values ``path`` selects in ``obj`` (``{}`` braces around the path are allowed)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if not path.startswith((".", "[")):
        path = "." + path
    tokens = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return []
        tokens.append((m[1] or "", m[2] or "", m[3] or "", m[4] or "", m[5] or ""))
        pos = m.end()
    return _walk([obj], tokens)
