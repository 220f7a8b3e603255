"""From an EdgeApplication to the manifests it generates: per-target Deployments, annotated
Services, everything else as written. Pure; discovery and writes are the controller's part.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodegroup._naming import SERVICE_TOPOLOGY_ANNOTATION, SERVICE_TOPOLOGY_RANGE_NODEGROUP
from nodegroup._overriders import Manifest, OverrideError, Target, stamp_deployment


@dataclass(frozen=True)
class Generated:
    ordinal: int
    manifest: Manifest


@dataclass(frozen=True)
class Problem:
    """A manifest (or one target of it) that produced nothing this time, and why.

    ``name`` is the object it would have produced, when known, so the last good one can be kept.
    """

    ordinal: int
    message: str
    name: str | None = None


@dataclass
class Rendered:
    generated: list[Generated] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def targets_of(spec: Mapping[str, Any]) -> list[Target]:
    scope = spec.get("workloadScope") or {}
    targets = [
        Target(group=str(t.get("name", "")), overriders=t.get("overriders") or {})
        for t in scope.get("targetNodeGroups") or []
    ]
    for t in scope.get("targetNodeLabels") or []:
        selector = t.get("labelSelector") or {}
        labels = {str(k): str(v) for k, v in (selector.get("matchLabels") or {}).items()}
        targets.append(Target(match_labels=labels, overriders=t.get("overriders") or {}))
    return targets


def _check_manifest(ordinal: int, manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return f"manifest {ordinal} is not an object"
    for key in ("apiVersion", "kind"):
        if not isinstance(manifest.get(key), str) or not manifest.get(key):
            return f"manifest {ordinal} has no {key}"
    name = (manifest.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        return f"manifest {ordinal} ({manifest['kind']}) has no metadata.name"
    return None


def render(edge_app: Mapping[str, Any]) -> Rendered:
    spec = edge_app.get("spec") or {}
    namespace = str(edge_app.get("metadata", {}).get("namespace") or "default")
    manifests = (spec.get("workloadTemplate") or {}).get("manifests") or []
    targets = targets_of(spec)
    out = Rendered()
    for ordinal, raw in enumerate(manifests):
        problem = _check_manifest(ordinal, raw)
        if problem:
            out.problems.append(Problem(ordinal, problem))
            continue
        manifest: Manifest = copy.deepcopy(raw)
        metadata = manifest.setdefault("metadata", {})
        metadata.setdefault("namespace", namespace)
        # Server-owned fields in a template would make every apply look like a change.
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
            metadata.pop(key, None)
        manifest.pop("status", None)
        kind, api_version = manifest["kind"], manifest["apiVersion"]
        if kind == "Deployment" and api_version == "apps/v1":
            for target in targets:
                try:
                    out.generated.append(Generated(ordinal, stamp_deployment(manifest, target)))
                except OverrideError as exc:
                    name = target.generated_name(metadata["name"])
                    out.problems.append(Problem(ordinal, f"Deployment {metadata['name']}: {exc}", name))
            continue
        if kind == "Service" and api_version == "v1":
            annotations = metadata.get("annotations") or {}
            annotations[SERVICE_TOPOLOGY_ANNOTATION] = SERVICE_TOPOLOGY_RANGE_NODEGROUP
            metadata["annotations"] = annotations
        out.generated.append(Generated(ordinal, manifest))
    return out
