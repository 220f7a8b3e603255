"""Validate objects against the committed CRD manifests as an API server would (via jsonschema)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

import crds

CRD_DIR = Path(crds.__file__).parent


@cache
def committed_crds() -> dict[tuple[str, str], dict[str, Any]]:
    """The CRD manifests in crds/*.yaml keyed by (apiVersion, kind) of the resource they define."""
    out = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            out[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = crd
    return out


def schema_of(crd: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    chosen = next(v for v in versions if version is None or v["name"] == version)
    schema: dict[str, Any] = chosen["schema"]["openAPIV3Schema"]
    return schema


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def validation_errors(obj: dict[str, Any]) -> list[str]:
    """Messages ``<field path>: <problem>`` for every violation, empty if the object is valid."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    crd = committed_crds().get((api_version, kind))
    if crd is None:
        return [f"<root>: no CRD for apiVersion {api_version!r} kind {kind!r}"]
    schema = crds.to_json_schema(schema_of(crd, api_version.split("/")[-1]))
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj))


def _go_print(value: Any) -> str:
    """How the API server prints a column value (Go's fmt.Fprint of the decoded JSON)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_print(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_print(value[k])}" for k in sorted(value)) + "]"
    return str(value)


_STEP = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_]+)(==|!=)"([^"]*)"\)\]')


def _json_path_values(obj: Any, path: str) -> list[Any]:
    """The values a printer-column JSONPath yields (the subset of kubectl JSONPath kubeshore's CRDs use)."""
    values = [obj]
    pos = 0
    while pos < len(path):
        step = _STEP.match(path, pos)
        assert step is not None, f"unsupported JSONPath {path!r} at {path[pos:]!r}"
        pos = step.end()
        key, index, field, op, literal = step.groups()
        out: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                out.append(value[key])
            elif index == "*" and isinstance(value, list):
                out.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                out.append(value[int(index)])
            elif field is not None and isinstance(value, list):
                out.extend(
                    v for v in value if isinstance(v, dict) and (v.get(field) == literal) == (op == "==")
                )
        values = out
    return values


def printer_cells(obj: dict[str, Any]) -> dict[str, str | None]:
    """Column name -> cell text as the API server's table convertor renders ``kubectl get`` for obj.

    Like the server, only the first value a JSONPath yields is shown; ``date`` columns are left as the
    raw timestamp (the server turns them into an age).
    """
    crd = committed_crds()[(obj["apiVersion"], obj["kind"])]
    version = next(v for v in crd["spec"]["versions"] if obj["apiVersion"].endswith("/" + v["name"]))
    cells: dict[str, str | None] = {}
    for column in version.get("additionalPrinterColumns", []):
        values = _json_path_values(obj, column["jsonPath"])
        cells[column["name"]] = _go_print(values[0]) if values else None
    return cells
