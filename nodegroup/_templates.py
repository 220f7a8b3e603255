"""From an EdgeApplication to the manifests it generates: per-target Deployments, annotated
Services, everything else as written. Pure; discovery and writes are the controller's part.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from crds import TargetNodeGroup, TargetNodeLabels
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


@dataclass(frozen=True)
class InvalidTarget:
    """A target whose own fields do not validate; ``target`` still names what it would produce."""

    target: Target
    message: str


def _validation_message(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors(include_url=False)
    )


def parse_targets(spec: Mapping[str, Any]) -> tuple[list[Target], list[InvalidTarget]]:
    """Targets validated one by one against the CRD models, so one bad target spoils only itself."""
    scope = spec.get("workloadScope") or {}
    targets: list[Target] = []
    invalid: list[InvalidTarget] = []
    for raw in scope.get("targetNodeGroups") or []:
        raw = raw if isinstance(raw, dict) else {}
        try:
            group = TargetNodeGroup.model_validate(raw)
        except ValidationError as exc:
            where = Target(group=str(raw.get("name") or "?"))
            invalid.append(InvalidTarget(where, _validation_message(exc)))
            continue
        overriders = group.overriders.to_dict() if group.overriders else {}
        targets.append(Target(group=group.name, overriders=overriders))
    for raw in scope.get("targetNodeLabels") or []:
        raw = raw if isinstance(raw, dict) else {}
        try:
            labels_target = TargetNodeLabels.model_validate(raw)
        except ValidationError as exc:
            selector = raw.get("labelSelector")
            match = selector.get("matchLabels") if isinstance(selector, dict) else None
            match = match if isinstance(match, dict) else {}
            where = Target(match_labels={str(k): str(v) for k, v in match.items()})
            invalid.append(InvalidTarget(where, _validation_message(exc)))
            continue
        selector_model = labels_target.label_selector
        labels = dict(selector_model.match_labels or {}) if selector_model else {}
        if not labels:
            invalid.append(
                InvalidTarget(Target(), "a targetNodeLabels entry needs labelSelector.matchLabels")
            )
            continue
        overriders = labels_target.overriders.to_dict() if labels_target.overriders else {}
        targets.append(Target(match_labels=labels, overriders=overriders))
    return targets, invalid


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
    targets, invalid = parse_targets(spec)
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
            for bad in invalid:
                where = bad.target
                kept = where.generated_name(metadata["name"]) if where.group or where.match_labels else None
                message = f"Deployment {metadata['name']}: {where.describe()}: {bad.message}"
                out.problems.append(Problem(ordinal, message, kept))
            continue
        if kind == "Service" and api_version == "v1":
            annotations = metadata.get("annotations") or {}
            annotations[SERVICE_TOPOLOGY_ANNOTATION] = SERVICE_TOPOLOGY_RANGE_NODEGROUP
            metadata["annotations"] = annotations
        out.generated.append(Generated(ordinal, manifest))
    return out
