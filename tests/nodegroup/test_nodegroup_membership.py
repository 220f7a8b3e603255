from typing import Any

import pytest

from nodegroup._membership import GroupSpec, groups_for_node, plan_group, readiness
from nodegroup._naming import BELONGING_TO_LABEL, ZONE_LABEL


def node(name: str, labels: dict[str, str] | None = None, ready: str | None = "True") -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"metadata": {"name": name, "labels": labels or {}}, "status": {"conditions": conditions}}


@pytest.mark.parametrize(
    ("ready", "expected"),
    [("True", "Ready"), ("False", "NotReady"), ("Unknown", "Unknown"), (None, "Unknown")],
)
def test_readiness(ready: str | None, expected: str) -> None:
    assert readiness(node("n", ready=ready)) == expected


def nodes(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in items}


def test_members_are_named_nodes_and_label_matches() -> None:
    group = GroupSpec("east", nodes=("a",), match_labels={"region": "east"})
    plan = plan_group(group, nodes(node("a"), node("b", {"region": "east"}), node("c", {"region": "west"})))
    assert plan.label_changes == {"a": {BELONGING_TO_LABEL: "east"}, "b": {BELONGING_TO_LABEL: "east"}}
    assert [s["nodeName"] for s in plan.node_statuses] == ["a", "b"]
    assert all(s["selectionStatus"] == "Succeeded" for s in plan.node_statuses)


def test_empty_match_labels_select_nothing() -> None:
    plan = plan_group(GroupSpec("g", match_labels={}), nodes(node("a")))
    assert plan.label_changes == {} and plan.node_statuses == []


def test_topology_label() -> None:
    plan = plan_group(GroupSpec("g", nodes=("a",), topology_enabled=True), nodes(node("a")))
    assert plan.label_changes == {"a": {BELONGING_TO_LABEL: "g", ZONE_LABEL: "g"}}
    # Turning topology off takes back only the zone label the group set.
    labelled = node("a", {BELONGING_TO_LABEL: "g", ZONE_LABEL: "g"})
    assert plan_group(GroupSpec("g", nodes=("a",)), nodes(labelled)).label_changes == {
        "a": {ZONE_LABEL: None}
    }
    foreign = node("a", {BELONGING_TO_LABEL: "g", ZONE_LABEL: "us-east-1a"})
    assert plan_group(GroupSpec("g", nodes=("a",)), nodes(foreign)).label_changes == {}


def test_node_in_another_group_fails() -> None:
    plan = plan_group(GroupSpec("g", nodes=("a",)), nodes(node("a", {BELONGING_TO_LABEL: "other"})))
    assert plan.label_changes == {}
    assert plan.node_statuses == [
        {
            "nodeName": "a",
            "readyStatus": "Ready",
            "selectionStatus": "Failed",
            "selectionStatusReason": "node a has already belonged to NodeGroup other",
        }
    ]


def test_missing_named_node() -> None:
    plan = plan_group(GroupSpec("g", nodes=("ghost",)), {})
    assert plan.node_statuses == [
        {
            "nodeName": "ghost",
            "readyStatus": "Unknown",
            "selectionStatus": "Failed",
            "selectionStatusReason": "node does not exist",
        }
    ]


def test_leaving_nodes_lose_labels() -> None:
    gone = node("a", {BELONGING_TO_LABEL: "g", ZONE_LABEL: "g", "keep": "me"})
    plan = plan_group(GroupSpec("g", nodes=("b",)), nodes(gone, node("b")))
    assert plan.label_changes["a"] == {BELONGING_TO_LABEL: None, ZONE_LABEL: None}


def test_status_tracks_readiness_and_is_sorted() -> None:
    plan = plan_group(
        GroupSpec("g", nodes=("c", "a", "b")),
        nodes(node("c", ready="False"), node("a", ready="Unknown"), node("b")),
    )
    assert [(s["nodeName"], s["readyStatus"]) for s in plan.node_statuses] == [
        ("a", "Unknown"),
        ("b", "Ready"),
        ("c", "NotReady"),
    ]


def test_groups_for_node() -> None:
    groups = [GroupSpec("x", nodes=("a",)), GroupSpec("y", match_labels={"r": "1"}), GroupSpec("z")]
    assert groups_for_node(node("a", {"r": "1", BELONGING_TO_LABEL: "w"}), groups) == {"x", "y", "w"}
    assert groups_for_node(node("q"), groups) == set()
