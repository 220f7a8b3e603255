"""Stamping one Deployment per target: KubeEdge's overriders, applied to plain manifest dicts.

Order is KubeEdge's: name, replicas, image, node selector, command, args, env, resources. Unlike
KubeEdge, the target's node selection is added to the template's own ``nodeSelector`` and node
affinity instead of replacing them (KubeEdge issue #7197), and an overrider that names a missing
container or yields a malformed image is an error rather than a silent no-op.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodegroup._image_reference import ImageReferenceError, parse_image
from nodegroup._naming import BELONGING_TO_LABEL, MAX_NAME_LENGTH, group_target_name, label_target_name

Manifest = dict[str, Any]


class OverrideError(ValueError):
    """An overrider cannot be applied; the message names the target, the overrider and the cause."""


@dataclass(frozen=True)
class Target:
    """Where one copy of each Deployment goes: a node group, or nodes matching a label set."""

    group: str = ""
    match_labels: Mapping[str, str] = field(default_factory=dict)
    overriders: Mapping[str, Any] = field(default_factory=dict)

    def generated_name(self, name: str) -> str:
        if self.group:
            return group_target_name(name, self.group)
        return label_target_name(name, self.match_labels)

    def describe(self) -> str:
        if self.group:
            return f"node group {self.group!r}"
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.match_labels.items()))
        return f"node labels {labels!r}"


def _containers(manifest: Manifest) -> list[dict[str, Any]]:
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    containers = spec.get("containers") or []
    if not isinstance(containers, list):
        raise OverrideError("spec.template.spec.containers is not a list")
    return containers


def _container(manifest: Manifest, name: str, what: str) -> dict[str, Any]:
    containers = _containers(manifest)
    for container in containers:
        if isinstance(container, dict) and container.get("name") == name:
            return container
    names = ", ".join(repr(c.get("name")) for c in containers if isinstance(c, dict)) or "none"
    raise OverrideError(f"{what}: container {name!r} not found (containers: {names})")


def _pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest.setdefault("spec", {})
    template = spec.setdefault("template", {})
    pod_spec: dict[str, Any] = template.setdefault("spec", {})
    return pod_spec


def _override_name(manifest: Manifest, target: Target) -> None:
    metadata = manifest.setdefault("metadata", {})
    new_name = target.generated_name(str(metadata.get("name", "")))
    if len(new_name) > MAX_NAME_LENGTH:
        raise OverrideError(f"generated name {new_name!r} is longer than {MAX_NAME_LENGTH} characters")
    metadata["name"] = new_name


def _override_replicas(manifest: Manifest, target: Target) -> None:
    replicas = target.overriders.get("replicas")
    if replicas is None:
        return
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise OverrideError(f"replicas: {replicas!r} is not a non-negative integer")
    manifest.setdefault("spec", {})["replicas"] = replicas


def _resolve_path(manifest: Manifest, path: str) -> tuple[Any, str | int]:
    """The container and key a ``/a/b/0/image`` predicate path points at."""
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        raise OverrideError(f"image predicate path {path!r} is empty")
    node: Any = manifest
    for segment in segments[:-1]:
        node = _step(node, segment, path)
    last: str | int = segments[-1]
    if isinstance(node, list):
        last = _index(node, segments[-1], path)
    elif not isinstance(node, dict) or last not in node:
        raise OverrideError(f"image predicate path {path!r} does not exist in the manifest")
    return node, last


def _index(node: list[Any], segment: str, path: str) -> int:
    if not segment.isdigit() or int(segment) >= len(node):
        raise OverrideError(f"image predicate path {path!r}: {segment!r} is not an index of the list")
    return int(segment)


def _step(node: Any, segment: str, path: str) -> Any:
    if isinstance(node, dict):
        if segment not in node:
            raise OverrideError(f"image predicate path {path!r} does not exist in the manifest")
        return node[segment]
    if isinstance(node, list):
        return node[_index(node, segment, path)]
    raise OverrideError(f"image predicate path {path!r} does not exist in the manifest")


_IMAGE_OPERATORS = ("add", "remove", "replace")
_NAME_COMPONENTS = {"Registry": "registry", "Repository": "repository"}


def _new_image(current: str, rule: Mapping[str, Any]) -> str:
    component = rule.get("component")
    operator = rule.get("operator")
    value = str(rule.get("value") or "")
    if operator not in _IMAGE_OPERATORS:
        raise OverrideError(f"image overrider: unknown operator {operator!r}")
    if component not in (*_NAME_COMPONENTS, "Tag"):
        raise OverrideError(f"image overrider: unknown component {component!r} (Registry, Repository or Tag)")
    try:
        image = parse_image(current)
        if component == "Tag":
            if operator == "remove":
                image.remove_tag_or_digest()
            else:
                image.set_tag_or_digest(image.tag_or_digest() + value if operator == "add" else value)
        else:
            attribute = _NAME_COMPONENTS[str(component)]
            before = str(getattr(image, attribute))
            after = {"add": before + value, "replace": value, "remove": ""}[str(operator)]
            setattr(image, attribute, after)
        result = str(image)
        parse_image(result)
    except ImageReferenceError as exc:
        raise OverrideError(f"image overrider ({component} {operator} {value!r}): {exc}") from exc
    return result


def _override_images(manifest: Manifest, target: Target) -> None:
    for rule in target.overriders.get("imageOverriders") or []:
        predicate = rule.get("predicate") or {}
        path = predicate.get("path")
        if path:
            holder, key = _resolve_path(manifest, str(path))
            current = holder[key]
            if not isinstance(current, str):
                raise OverrideError(f"image predicate path {path!r} does not point at an image string")
            holder[key] = _new_image(current, rule)
            continue
        for container in _containers(manifest):
            container["image"] = _new_image(str(container.get("image", "")), rule)


def _override_node_selection(manifest: Manifest, target: Target) -> None:
    pod_spec = _pod_spec(manifest)
    if target.group:
        selector = pod_spec.get("nodeSelector") or {}
        selector[BELONGING_TO_LABEL] = target.group
        pod_spec["nodeSelector"] = selector
        return
    expressions = [
        {"key": key, "operator": "In", "values": [value]}
        for key, value in sorted(target.match_labels.items())
    ]
    if not expressions:
        return
    affinity = pod_spec.get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        terms = [{"matchExpressions": []}]
    # Terms are ORed and expressions inside a term ANDed, so the label set joins every term.
    for term in terms:
        term["matchExpressions"] = list(term.get("matchExpressions") or []) + copy.deepcopy(expressions)
    required["nodeSelectorTerms"] = terms
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity
    pod_spec["affinity"] = affinity


def _list_rules(key: str, what: str, allowed: tuple[str, ...]) -> Callable[[Manifest, Target], None]:
    def apply(manifest: Manifest, target: Target) -> None:
        for rule in target.overriders.get(key + "Overriders") or []:
            operator = rule.get("operator")
            if operator not in allowed:
                raise OverrideError(
                    f"{what} overrider: operator {operator!r} is not one of {', '.join(allowed)}"
                )
            container = _container(manifest, str(rule.get("containerName")), f"{what} overrider")
            values = [str(v) for v in rule.get("value") or []]
            current = [str(v) for v in container.get(key) or []]
            if operator == "add":
                container[key] = current + values
            else:
                removed = set(values)
                container[key] = [v for v in current if v not in removed]

    return apply


def _override_env(manifest: Manifest, target: Target) -> None:
    for rule in target.overriders.get("envOverriders") or []:
        operator = rule.get("operator")
        container = _container(manifest, str(rule.get("containerName")), "env overrider")
        values = [dict(v) for v in rule.get("value") or []]
        current = [dict(v) for v in container.get("env") or []]
        if operator == "add":
            container["env"] = current + values
        elif operator == "remove":
            names = {v.get("name") for v in values}
            container["env"] = [v for v in current if v.get("name") not in names]
        elif operator == "replace":
            for value in values:
                for i, existing in enumerate(current):
                    if existing.get("name") == value.get("name"):
                        current[i] = value
                        break
                else:
                    current.append(value)
            container["env"] = current
        else:
            raise OverrideError(f"env overrider: operator {operator!r} is not one of add, remove, replace")


def _override_resources(manifest: Manifest, target: Target) -> None:
    for rule in target.overriders.get("resourcesOverriders") or []:
        container = _container(manifest, str(rule.get("containerName")), "resources overrider")
        container["resources"] = copy.deepcopy(dict(rule.get("value") or {}))


OVERRIDERS: tuple[tuple[str, Callable[[Manifest, Target], None]], ...] = (
    ("name", _override_name),
    ("replicas", _override_replicas),
    ("image", _override_images),
    ("nodeSelector", _override_node_selection),
    ("command", _list_rules("command", "command", ("add", "remove"))),
    ("args", _list_rules("args", "args", ("add", "remove"))),
    ("env", _override_env),
    ("resources", _override_resources),
)


def stamp_deployment(template: Manifest, target: Target) -> Manifest:
    """A copy of ``template`` for ``target``; every failing overrider is named in one OverrideError."""
    manifest = copy.deepcopy(template)
    problems: list[str] = []
    for _, overrider in OVERRIDERS:
        try:
            overrider(manifest, target)
        except OverrideError as exc:
            problems.append(str(exc))
    if problems:
        raise OverrideError(f"{target.describe()}: " + "; ".join(problems))
    return manifest
