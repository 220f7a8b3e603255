"""Write one CRD manifest per kind to ``crds/<plural>.<group>.yaml``, derived from the pydantic models.

Usage: ``python -m crds.generate [--check]`` (``python -m codegen`` runs it with the other generators).
With ``--check`` nothing is written and the exit code is 1 when a committed manifest is missing,
differs, or no longer corresponds to a kind (a generated manifest no kind writes is removed).
"""

from __future__ import annotations

from pathlib import Path

import yaml

import codegen
from crds import RESOURCES
from crds._base import Resource
from crds._schema import crd_manifest

COMMAND = "crds.generate"
CRD_DIR = Path("crds")
OWNED = ("crds/*.yaml",)
HEADER = codegen.header(COMMAND, "the models in crds/")


def manifest_path(resource: type[Resource]) -> Path:
    return CRD_DIR / f"{resource.info.crd_name}.yaml"


def render_manifest(resource: type[Resource]) -> str:
    body = yaml.safe_dump(crd_manifest(resource), sort_keys=False, default_flow_style=False, width=100)
    return HEADER + body


def render() -> dict[Path, str]:
    """Every manifest, keyed by its path in the repository."""
    return {manifest_path(r): render_manifest(r) for r in RESOURCES}


def main(argv: list[str] | None = None) -> int:
    return codegen.cli(COMMAND, __doc__, render, argv, OWNED)


if __name__ == "__main__":
    raise SystemExit(main())
