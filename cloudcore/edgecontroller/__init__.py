"""edgecontroller: what each edge node needs (pods, configmaps, secrets, services, endpoints) and
the Node lifecycle (Ready/Unknown, reported status)."""

from cloudcore.edgecontroller._events import EdgeEvents
from cloudcore.edgecontroller._nodegroups import NodeGroupViews
from cloudcore.edgecontroller._nodes import EDGE_ROLE_LABEL, NodeLifecycle, validate_node_message
from cloudcore.edgecontroller._objects import ChangeListener, EdgeController, ObjectFilter, pod_references
from cloudcore.edgecontroller._pods import PodStatusWriter

__all__ = [
    "EDGE_ROLE_LABEL",
    "ChangeListener",
    "EdgeController",
    "EdgeEvents",
    "NodeGroupViews",
    "NodeLifecycle",
    "ObjectFilter",
    "PodStatusWriter",
    "pod_references",
    "validate_node_message",
]
