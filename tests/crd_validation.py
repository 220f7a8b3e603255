"""Validate objects against the committed CRD manifests as an API server would (via jsonschema)."""

from __future__ import annotations

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
