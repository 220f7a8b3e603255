"""Which nodes belong to a NodeGroup, what labels they need and what the group's status says.

Pure functions over Node dicts (the JSON the API returns), so the controller loop only moves
data between the API and these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nodegroup._naming import BELONGING_TO_LABEL, ZONE_LABEL

Node = Mapping[str, Any]

READY, NOT_READY, UNKNOWN = "Ready", "NotReady", "Unknown"
SUCCEEDED, FAILED = "Succeeded", "Failed"
NODE_MISSING_REASON = "node does not exist"


@dataclass(frozen=True)
class GroupSpec:
    name: str
    nodes: tuple[str, ...] = ()
    match_labels: Mapping[str, str] | None = None
    topology_enabled: bool = False


@dataclass
class GroupPlan:
    """Label changes per node (value None removes the label) and the status the group should show."""

    label_changes: dict[str, dict[str, str | None]] = field(default_factory=dict)
    node_statuses: list[dict[str, str]] = field(default_factory=list)


def node_labels(node: Node) -> Mapping[str, str]:
    labels: Mapping[str, str] = node.get("metadata", {}).get("labels") or {}
    return labels


def node_name(node: Node) -> str:
    return str(node.get("metadata", {}).get("name", ""))


def readiness(node: Node) -> str:
    """Ready / NotReady / Unknown from the Node's Ready condition (missing means Unknown)."""
    for condition in node.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            status = condition.get("status")
            if status == "True":
                return READY
            if status == "False":
                return NOT_READY
            return UNKNOWN
    return UNKNOWN


def matches(labels: Mapping[str, str], match_labels: Mapping[str, str] | None) -> bool:
    """Equality selector; an empty or missing selector selects nothing (KubeEdge's rule)."""
    if not match_labels:
        return False
    return all(labels.get(key) == value for key, value in match_labels.items())


def is_member(group: GroupSpec, node: Node) -> bool:
    return node_name(node) in group.nodes or matches(node_labels(node), group.match_labels)


def plan_group(group: GroupSpec, nodes: Mapping[str, Node]) -> GroupPlan:
    plan = GroupPlan()
    members = {name for name, node in nodes.items() if is_member(group, node)}
    statuses: dict[str, dict[str, str]] = {}
    for name in sorted(members):
        node = nodes[name]
        labels = node_labels(node)
        owner = labels.get(BELONGING_TO_LABEL)
        status = {"nodeName": name, "readyStatus": readiness(node), "selectionStatus": SUCCEEDED}
        if owner and owner != group.name:
            status["selectionStatus"] = FAILED
            status["selectionStatusReason"] = f"node {name} has already belonged to NodeGroup {owner}"
        else:
            wanted: dict[str, str | None] = {BELONGING_TO_LABEL: group.name}
            if group.topology_enabled:
                wanted[ZONE_LABEL] = group.name
            elif labels.get(ZONE_LABEL) == group.name:
                # Only the zone label this controller set is ours to take back.
                wanted[ZONE_LABEL] = None
            changes = _changes(labels, wanted)
            if changes:
                plan.label_changes[name] = changes
        statuses[name] = status
    for name in group.nodes:
        if name not in nodes and name not in statuses:
            statuses[name] = {
                "nodeName": name,
                "readyStatus": UNKNOWN,
                "selectionStatus": FAILED,
                "selectionStatusReason": NODE_MISSING_REASON,
            }
    for name, node in nodes.items():
        if name not in members and node_labels(node).get(BELONGING_TO_LABEL) == group.name:
            plan.label_changes[name] = release_labels(node, group.name)
    plan.node_statuses = [statuses[name] for name in sorted(statuses)]
    return plan


def release_labels(node: Node, group: str) -> dict[str, str | None]:
    """The label removals that take ``node`` out of ``group``."""
    labels = node_labels(node)
    changes: dict[str, str | None] = {}
    if labels.get(BELONGING_TO_LABEL) == group:
        changes[BELONGING_TO_LABEL] = None
    if labels.get(ZONE_LABEL) == group:
        changes[ZONE_LABEL] = None
    return changes


def _changes(labels: Mapping[str, str], wanted: Mapping[str, str | None]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for key, value in wanted.items():
        if value is None and key in labels:
            changes[key] = None
        elif value is not None and labels.get(key) != value:
            changes[key] = value
    return changes


def groups_for_node(node: Node, groups: Iterable[GroupSpec]) -> set[str]:
    """Groups whose membership may change when ``node`` changes: its current group and every claimant."""
    names = {group.name for group in groups if is_member(group, node)}
    owner = node_labels(node).get(BELONGING_TO_LABEL)
    if owner:
        names.add(owner)
    return names
