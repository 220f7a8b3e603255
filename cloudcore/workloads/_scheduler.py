"""A scheduler for standalone mode: binds each unscheduled Pod (``schedulerName`` default) to a Ready
node that fits it, as kube-scheduler's default filters do for what they cover here: ``nodeSelector``,
required node affinity (``nodeSelectorTerms``: matchExpressions and matchFields), taints and
tolerations (NoSchedule, NoExecute), unschedulable nodes, and resource requests against allocatable
(cpu, memory, pods). Among nodes that fit it prefers the least requested (fewest Pods first). A Pod
no node fits gets ``PodScheduled=False`` with kube-scheduler's message and a FailedScheduling Event."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from cloudcore.workloads._common import Obj, key_of, split_key
from kubeapi.quantity import millicores, to_bytes
from kubeclient import NODES, PODS, STRATEGIC_MERGE_PATCH, ApiError, Informer, Kube, WorkQueue, run_controller

log = logging.getLogger("cloudcore.workloads")

SCHEDULER_NAME = "default-scheduler"
_RETRY = 5.0  # seconds before an unschedulable Pod is tried again (node changes retry it at once)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(node: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _expression(expr: Mapping[str, Any], value: str | None) -> bool:
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_affinity_matches(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    md = node.get("metadata") or {}
    labels = md.get("labels") or {}
    if not all(labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {})  # fmt: skip
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": md.get("name")}
    for term in terms:
        exprs = term.get("matchExpressions") or []
        field_exprs = term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue  # an empty term matches nothing
        if all(_expression(e, labels.get(e.get("key"))) for e in exprs) and all(
            _expression(e, fields.get(e.get("key"))) for e in field_exprs
        ):
            return True
    return False


def tolerates(pod: Obj, taint: Mapping[str, Any]) -> bool:
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def requests(pod: Obj) -> tuple[int, int]:
    """(cpu millicores, memory bytes) the Pod requests: its containers', or its largest init container's."""
    spec = pod.get("spec") or {}

    def one(c: Obj) -> tuple[int, int]:
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return millicores(req.get("cpu", 0)), to_bytes(req.get("memory", 0))

    main = [one(c) for c in spec.get("containers") or []]
    init = [one(c) for c in spec.get("initContainers") or []]
    cpu = max(sum(c for c, _ in main), max((c for c, _ in init), default=0))
    mem = max(sum(m for _, m in main), max((m for _, m in init), default=0))
    return cpu, mem


class Scheduler:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.pods = Informer(kube, PODS, self._on_pod)
        self.nodes = Informer(kube, NODES, self._on_node)
        self.queue = WorkQueue("scheduler", self.schedule)
        self._unschedulable: set[str] = set()

    def _pending(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (
            not spec.get("nodeName")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
        )

    async def _on_pod(self, event: str, obj: Obj, old: Obj | None) -> None:
        if event != "DELETED" and self._pending(obj):
            self.queue.add(key_of(obj))
        elif event == "DELETED" or (old is not None and not (old.get("spec") or {}).get("nodeName")):
            # Room freed or taken: Pods waiting for room are worth another try.
            self._retry_waiting()

    async def _on_node(self, event: str, obj: Obj, old: Obj | None) -> None:
        self._retry_waiting()

    def _retry_waiting(self) -> None:
        for key in list(self._unschedulable):
            self.queue.add(key)

    async def run(self, stop: asyncio.Event) -> None:
        await run_controller(
            stop,
            self.queue,
            (self.pods, self.nodes),
            lambda: [key_of(p) for p in self.pods.values() if self._pending(p)],
        )

    def feasible(self, pod: Obj) -> tuple[list[Obj], str]:
        """Nodes the Pod fits on, and kube-scheduler's message when there are none."""
        nodes = self.nodes.values()
        reasons: dict[str, int] = {}
        fits: list[Obj] = []
        cpu, mem = requests(pod)
        used: dict[str, tuple[int, int, int]] = {}
        for p in self.pods.values():
            n = (p.get("spec") or {}).get("nodeName")
            if n and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                c, m = requests(p)
                uc, um, un = used.get(n, (0, 0, 0))
                used[n] = (uc + c, um + m, un + 1)

        def no(reason: str) -> None:
            reasons[reason] = reasons.get(reason, 0) + 1

        for node in nodes:
            name = (node.get("metadata") or {}).get("name", "")
            spec = node.get("spec") or {}
            if spec.get("unschedulable"):
                no("node(s) were unschedulable")
                continue
            if not _ready(node):
                no("node(s) were not ready")
                continue
            if not node_affinity_matches(pod, node):
                no("node(s) didn't match Pod's node affinity/selector")
                continue
            bad = [
                t
                for t in spec.get("taints") or []
                if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod, t)
            ]
            if bad:
                t = bad[0]
                no(f"node(s) had untolerated taint {{{t.get('key')}: {t.get('value', '')}}}")
                continue
            alloc = (node.get("status") or {}).get("allocatable") or {}
            uc, um, un = used.get(name, (0, 0, 0))
            try:
                if "pods" in alloc and un + 1 > int(alloc["pods"]):
                    no("Too many pods")
                    continue
                if "cpu" in alloc and uc + cpu > millicores(alloc["cpu"]):
                    no("Insufficient cpu")
                    continue
                if "memory" in alloc and um + mem > to_bytes(alloc["memory"]):
                    no("Insufficient memory")
                    continue
            except ValueError:
                pass
            fits.append(node)
        fits.sort(key=lambda n: (used.get(n["metadata"]["name"], (0, 0, 0))[2], n["metadata"]["name"]))
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        message = (
            f"0/{len(nodes)} nodes are available: {detail}."
            if nodes
            else "no nodes available to schedule pods"
        )
        return fits, message

    async def schedule(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.pods.get(name, ns)
        if pod is None or not self._pending(pod):
            self._unschedulable.discard(key)
            return
        fits, message = self.feasible(pod)
        if not fits:
            self._unschedulable.add(key)
            await self._unschedulable_status(pod, message)
            self.queue.add_after(key, _RETRY)
            return
        node = fits[0]["metadata"]["name"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": (pod.get("metadata") or {}).get("uid")},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.kube.run(self.kube.request, "POST", PODS.item(name, ns, "binding"), body=binding)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
            return
        self._unschedulable.discard(key)
        log.info("scheduler: bound %s to %s", key, node)

    async def _unschedulable_status(self, pod: Obj, message: str) -> None:
        md = pod.get("metadata") or {}
        conds = (pod.get("status") or {}).get("conditions") or []
        old = next((c for c in conds if c.get("type") == "PodScheduled"), None)
        if old is not None and old.get("status") == "False" and old.get("message") == message:
            return
        patch = {
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": _now(),
                    }
                ],
            }
        }
        try:
            await self.kube.run(
                self.kube.patch,
                PODS,
                md.get("name"),
                patch,
                md.get("namespace"),
                "status",
                STRATEGIC_MERGE_PATCH,
            )
        except ApiError as exc:
            log.debug("scheduler: status of %s: %s", key_of(pod), exc)
        log.info("scheduler: %s unschedulable: %s", key_of(pod), message)
