"""Events from edge nodes: KubeEdge's edged (and kubeshore's devicetwin) send each Event up the
channel (group ``meta``, resource ``<namespace>/event/<name>``, operation insert, update or patch,
content the Event, or ``{"event": Event, "patchData": ...}`` for a patch); they become core/v1
Events in the API, counted when repeated (``kubeclient.EventRecorder``)."""

from __future__ import annotations

import logging
from typing import Any

from kubeclient import EventRecorder
from kubeshore.events import RT_EVENT, is_event
from kubeshore.message import Message, MessageError, parse_edge_resource

log = logging.getLogger(__name__)


class EdgeEvents:
    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder
        #: Events refused, for tests and logs (node -> count)
        self.refused: dict[str, int] = {}

    def handle_upstream(self, node: str, msg: Message) -> bool:
        """Record an Event message; False for any other message."""
        try:
            r = parse_edge_resource(msg.route.resource, msg.route.operation)
        except MessageError:
            return False
        if r.resource_type != RT_EVENT:
            return False
        content: Any = msg.content_data()
        if isinstance(content, dict) and isinstance(content.get("event"), dict):
            content = content["event"]  # KubeEdge's PatchInfo
        problem = is_event(content)
        if problem is None and (content.get("metadata") or {}).get("namespace", r.namespace) != r.namespace:
            problem = "metadata.namespace differs from the message's namespace"
        if (
            problem is None
            and (content.get("involvedObject") or {}).get("namespace", r.namespace) != r.namespace
        ):
            problem = "involvedObject is in another namespace"
        if problem is not None:
            self.refused[node] = self.refused.get(node, 0) + 1
            log.warning("node %s: event %s refused: %s", node, msg.route.resource, problem)
            return True
        event = dict(content)
        event["metadata"] = {
            "name": content["metadata"]["name"],
            "namespace": r.namespace,
        }
        # The node is who says so: a node names itself as the source, whatever the body claims.
        source = content.get("source") if isinstance(content.get("source"), dict) else {}
        event["source"] = {**source, "host": node}
        event["reportingInstance"] = node
        self.recorder.record(event)
        return True
