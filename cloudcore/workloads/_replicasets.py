"""ReplicaSet controller: keeps ``spec.replicas`` Pods from the template, owned by the ReplicaSet, as
kube-controller-manager's does (scale down removes unscheduled, then not-ready, then newest Pods)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cloudcore.workloads._common import (
    Obj,
    controller_of,
    key_of,
    owned_by,
    owner_reference,
    pod_active,
    pod_ready,
    split_key,
)
from kubeclient import MERGE_PATCH, PODS, REPLICASETS, ApiError, Informer, Kube, WorkQueue, run_controller

log = logging.getLogger("cloudcore.workloads")

_BURST = 50  # pods created or deleted per pass, as the kubelet-side "slow start" batches bound it


class ReplicaSetController:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.replicasets = Informer(kube, REPLICASETS, self._on_rs)
        self.pods = Informer(kube, PODS, self._on_pod)
        self.queue = WorkQueue("replicaset", self.reconcile)

    async def _on_rs(self, event: str, obj: Obj, old: Obj | None) -> None:
        self.queue.add(key_of(obj))

    async def _on_pod(self, event: str, obj: Obj, old: Obj | None) -> None:
        ref = controller_of(obj)
        if ref is not None and ref.get("kind") == "ReplicaSet":
            ns = (obj.get("metadata") or {}).get("namespace", "")
            self.queue.add(f"{ns}/{ref.get('name')}")

    async def run(self, stop: asyncio.Event) -> None:
        await run_controller(
            stop,
            self.queue,
            (self.replicasets, self.pods),
            lambda: [key_of(rs) for rs in self.replicasets.values()],
        )

    def owned_pods(self, rs: Obj) -> list[Obj]:
        ns = (rs.get("metadata") or {}).get("namespace")
        return [
            p
            for p in self.pods.values()
            if (p.get("metadata") or {}).get("namespace") == ns and owned_by(p, rs)
        ]

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.replicasets.get(name, ns)
        if rs is None or (rs.get("metadata") or {}).get("deletionTimestamp"):
            return
        pods = self.owned_pods(rs)
        active = [p for p in pods if pod_active(p)]
        want = int((rs.get("spec") or {}).get("replicas", 1))
        diff = want - len(active)
        if diff > 0:
            await asyncio.gather(*(self._create_pod(rs) for _ in range(min(diff, _BURST))))
        elif diff < 0:
            for pod in sorted(active, key=_deletion_rank)[: min(-diff, _BURST)]:
                md = pod["metadata"]
                try:
                    await self.kube.run(self.kube.delete, PODS, md["name"], ns)
                except ApiError as exc:
                    log.warning("replicaset %s: delete pod %s: %s", key, md["name"], exc)
        await self._status(rs, active)

    async def _create_pod(self, rs: Obj) -> None:
        md = rs.get("metadata") or {}
        template = (rs.get("spec") or {}).get("template") or {}
        tmd = template.get("metadata") or {}
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{md.get('name')}-",
                "namespace": md.get("namespace"),
                "labels": dict(tmd.get("labels") or {}),
                "annotations": dict(tmd.get("annotations") or {}),
                "ownerReferences": [owner_reference({"apiVersion": "apps/v1", "kind": "ReplicaSet", **rs})],
            },
            "spec": template.get("spec") or {},
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        try:
            await self.kube.run(self.kube.create, PODS, pod, md.get("namespace"))
        except ApiError as exc:
            log.warning("replicaset %s: create pod: %s", key_of(rs), exc)

    async def _status(self, rs: Obj, active: list[Obj]) -> None:
        md = rs.get("metadata") or {}
        selector_labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get(
            "labels"
        ) or {}
        ready = sum(1 for p in active if pod_ready(p))
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if selector_labels.items() <= ((p.get("metadata") or {}).get("labels") or {}).items()
            ),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": md.get("generation", 1),
        }
        current = rs.get("status") or {}
        if all(current.get(k, 0) == v for k, v in status.items()):
            return
        try:
            name, ns = md.get("name"), md.get("namespace")
            await self.kube.run(
                self.kube.patch, REPLICASETS, name, {"status": status}, ns, "status", MERGE_PATCH
            )
        except ApiError as exc:
            if exc.status != 404:
                log.warning("replicaset %s: status: %s", key_of(rs), exc)


def _deletion_rank(pod: Obj) -> tuple[int, int, int, str]:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    unscheduled = 0 if not spec.get("nodeName") else 1
    pending = 0 if status.get("phase") in (None, "", "Pending") else 1
    ready = 1 if pod_ready(pod) else 0
    # Newest first among equals: an ISO timestamp sorts by time, so invert it by sorting on its negation.
    created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
    return (unscheduled, pending, ready, "".join(chr(0x10FFFF - ord(ch)) for ch in created))
