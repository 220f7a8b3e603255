"""Pod status and deletion from edge nodes, as KubeEdge's edged sends them.

- ``<ns>/podpatch/<name>``, operation ``patch``: a strategic merge patch of the Pod (its status),
  applied to ``pods/<name>/status``, and answered as KubeEdge's cloud answers it: with the patched Pod
  or the error. KubeEdge's edged waits for that answer (up to 60 s) before it sends the next status
  and stores the Pod it gets back; kubeshore's edge ignores it. (The ``sync`` flag its metaclient sets
  does not reach the wire, so every patch is answered.)
- ``<ns>/pod/<name>``, operation ``delete``: the node stopped a Pod marked for deletion; the Pod is
  deleted with grace period 0 and the uid precondition, as the kubelet's final delete.

A node may only write Pods bound to it (``spec.nodeName``); anything else is refused and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from cloudcore.edgecontroller._nodes import object_reply
from kubeclient import PODS, STRATEGIC_MERGE_PATCH, ApiError, Kube
from kubeshore.message import OP_DELETE, OP_PATCH, OP_UPDATE, Message, MessageError, parse_edge_resource

log = logging.getLogger(__name__)

RT_PODPATCH = "podpatch"
RT_POD = "pod"
RT_PODSTATUS = "podstatus"


class PodStatusWriter:
    def __init__(self, kube: Kube, send: Callable[[str, Message], object]) -> None:
        self.kube = kube
        self.send = send  # to one node: cloudhub's send_to_node
        #: refused writes per node (a node writing a Pod that is not its own, bad content)
        self.refused: dict[str, int] = {}
        self.written = 0
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _refuse(self, node: str, msg: Message, why: str) -> bool:
        self.refused[node] = self.refused.get(node, 0) + 1
        log.warning("node %s: %s %s refused: %s", node, msg.route.operation, msg.route.resource, why)
        self.send(node, object_reply(msg, None, ApiError(403, why, "Forbidden")))
        return True

    async def handle_upstream(self, node: str, msg: Message) -> bool:
        """Apply a pod status patch or final delete; False for any other message."""
        try:
            r = parse_edge_resource(msg.route.resource, msg.route.operation)
        except MessageError:
            return False
        op = msg.route.operation
        if r.resource_type == RT_PODPATCH and op == OP_PATCH:
            patch: Any = msg.content_data()
        elif r.resource_type == RT_PODSTATUS and op == OP_UPDATE:
            # KubeEdge's older edged: {"uid": ..., "name": ..., "status": {...}}
            body = msg.content_data()
            if not isinstance(body, dict):
                return self._refuse(node, msg, "content is not an object")
            patch = {"metadata": {"uid": body.get("uid", "")}, "status": body.get("status") or {}}
        elif r.resource_type == RT_POD and op == OP_DELETE:
            return await self._delete(node, msg, r.namespace, r.name)
        else:
            return False
        if not isinstance(patch, dict) or not isinstance(patch.get("status"), dict):
            return self._refuse(node, msg, "content is not a status patch")
        lock = self._locks.setdefault((r.namespace, r.name), asyncio.Lock())
        async with lock:
            pod = await self.kube.run(self.kube.get, PODS, r.name, r.namespace)
            why = _not_theirs(node, pod, (patch.get("metadata") or {}).get("uid"))
            if why:
                return self._refuse(node, msg, why)
            # Only the status (and the uid it is about) goes through: a node cannot relabel its Pods.
            body = {"metadata": {"uid": pod["metadata"]["uid"]}, "status": patch["status"]}
            try:
                patched = await self.kube.run(
                    self.kube.patch, PODS, r.name, body, r.namespace, "status", STRATEGIC_MERGE_PATCH
                )
                self.written += 1
                self.send(node, object_reply(msg, patched))
            except ApiError as exc:
                log.warning("node %s: pod %s/%s status not written: %s", node, r.namespace, r.name, exc)
                self.send(node, object_reply(msg, None, exc))
        if not lock.locked():
            self._locks.pop((r.namespace, r.name), None)
        return True

    async def _delete(self, node: str, msg: Message, namespace: str, name: str) -> bool:
        options = msg.content_data()
        uid = ((options or {}).get("preconditions") or {}).get("uid") if isinstance(options, dict) else None
        pod = await self.kube.run(self.kube.get, PODS, name, namespace)
        if pod is None:
            return True
        why = _not_theirs(node, pod, uid)
        if why:
            return self._refuse(node, msg, why)
        if not (pod.get("metadata") or {}).get("deletionTimestamp"):
            return self._refuse(node, msg, "the pod is not being deleted")
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}}
        try:
            await self.kube.run(self.kube.request, "DELETE", PODS.item(name, namespace), body=body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("node %s: pod %s/%s not deleted: %s", node, namespace, name, exc)
        return True


def _not_theirs(node: str, pod: dict[str, Any] | None, uid: Any) -> str:
    if pod is None:
        return "no such pod"
    if (pod.get("spec") or {}).get("nodeName") != node:
        return "the pod is not bound to this node"
    if uid and uid != (pod.get("metadata") or {}).get("uid"):
        return "the pod's uid differs (a newer pod has the name)"
    return ""
