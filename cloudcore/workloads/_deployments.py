"""Deployment controller: one ReplicaSet per pod template (``pod-template-hash``), rolled out with
``maxSurge``/``maxUnavailable`` (or Recreate), scaled, with the status and the revision annotation
``kubectl rollout status`` reads, as kube-controller-manager's deployment controller."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import logging
import math
from typing import Any

from cloudcore.workloads._common import (
    Obj,
    controller_of,
    key_of,
    owned_by,
    owner_reference,
    set_condition,
    split_key,
)
from kubeclient import (
    DEPLOYMENTS,
    MERGE_PATCH,
    REPLICASETS,
    ApiError,
    Informer,
    Kube,
    WorkQueue,
    run_controller,
)

log = logging.getLogger("cloudcore.workloads")

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj, collisions: int = 0) -> str:
    raw = json.dumps(template, sort_keys=True, separators=(",", ":")) + str(collisions)
    n = int.from_bytes(hashlib.sha256(raw.encode()).digest()[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resolve(value: Any, total: int, round_up: bool, default: str) -> int:
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        frac = int(value[:-1]) * total / 100
        return math.ceil(frac) if round_up else math.floor(frac)
    return int(value)


def _replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def _status(obj: Obj, name: str) -> int:
    return int((obj.get("status") or {}).get(name) or 0)


class DeploymentController:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.deployments = Informer(kube, DEPLOYMENTS, self._on_deployment)
        self.replicasets = Informer(kube, REPLICASETS, self._on_rs)
        self.queue = WorkQueue("deployment", self.reconcile)

    async def _on_deployment(self, event: str, obj: Obj, old: Obj | None) -> None:
        self.queue.add(key_of(obj))

    async def _on_rs(self, event: str, obj: Obj, old: Obj | None) -> None:
        ref = controller_of(obj)
        if ref is not None and ref.get("kind") == "Deployment":
            self.queue.add(f"{(obj.get('metadata') or {}).get('namespace')}/{ref.get('name')}")

    async def run(self, stop: asyncio.Event) -> None:
        await run_controller(
            stop,
            self.queue,
            (self.deployments, self.replicasets),
            lambda: [key_of(d) for d in self.deployments.values()],
        )

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        d = self.deployments.get(name, ns)
        if d is None or (d.get("metadata") or {}).get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        owned = [
            rs
            for rs in self.replicasets.values()
            if (rs.get("metadata") or {}).get("namespace") == ns and owned_by(rs, d)
        ]
        template = spec.get("template") or {}
        h = template_hash(template, int((d.get("status") or {}).get("collisionCount") or 0))
        new = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == h), None)
        olds = [rs for rs in owned if rs is not new]
        desired = _replicas(d)
        if spec.get("paused"):
            await self._write_status(d, new, owned)
            return
        if new is None:
            new = await self._create_rs(d, h, template, olds)
            if new is None:
                return
            owned.append(new)
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            await self._recreate(new, olds, desired)
        else:
            ru = strategy.get("rollingUpdate") or {}
            surge = _resolve(ru.get("maxSurge"), desired, True, "25%")
            unavailable = _resolve(ru.get("maxUnavailable"), desired, False, "25%")
            if surge == 0 and unavailable == 0:
                unavailable = 1
            await self._rolling(new, olds, desired, surge, unavailable)
        await self._write_status(d, new, owned)

    async def _create_rs(self, d: Obj, h: str, template: Obj, olds: list[Obj]) -> Obj | None:
        md = d.get("metadata") or {}
        spec = d.get("spec") or {}
        tpl = copy.deepcopy(template)
        tpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        revision = 1 + max(
            (int((rs["metadata"].get("annotations") or {}).get(REVISION, 0)) for rs in olds), default=0
        )
        has_olds = any(_replicas(rs) > 0 for rs in olds)
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{md.get('name')}-{h}",
                "namespace": md.get("namespace"),
                "labels": dict(tpl["metadata"]["labels"]),
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [owner_reference({"apiVersion": "apps/v1", "kind": "Deployment", **d})],
            },
            "spec": {
                # A rollout starts the new ReplicaSet at zero and grows it by the surge; a first one full.
                "replicas": 0 if has_olds else _replicas(d),
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": tpl,
            },
        }
        try:
            created: Obj = await self.kube.run(self.kube.create, REPLICASETS, rs, md.get("namespace"))
        except ApiError as exc:
            if exc.status != 409:
                log.warning("deployment %s: create replicaset: %s", key_of(d), exc)
                return None
            return await self._name_taken(d, rs)
        await self._patch(DEPLOYMENTS, d, {"metadata": {"annotations": {REVISION: str(revision)}}})
        return created

    async def _name_taken(self, d: Obj, rs: Obj) -> Obj | None:
        """The ReplicaSet's name exists: ours (a cache behind our own create) is used; anyone else's
        (one left from a Deployment of the same name, being deleted) bumps ``collisionCount``, which
        changes the hash and the name, as kube-controller-manager does."""
        md = rs["metadata"]
        existing: Obj | None = await self.kube.run(self.kube.get, REPLICASETS, md["name"], md["namespace"])
        if existing is not None and owned_by(existing, d):
            return existing
        count = int((d.get("status") or {}).get("collisionCount") or 0) + 1
        log.info("deployment %s: replicaset %s exists, collisionCount %d", key_of(d), md["name"], count)
        await self._patch(DEPLOYMENTS, d, {"status": {"collisionCount": count}}, sub="status")
        return None

    async def _scale(self, rs: Obj, replicas: int) -> None:
        if _replicas(rs) != replicas:
            await self._patch(REPLICASETS, rs, {"spec": {"replicas": replicas}})
            rs.setdefault("spec", {})["replicas"] = replicas

    async def _recreate(self, new: Obj, olds: list[Obj], desired: int) -> None:
        for rs in olds:
            await self._scale(rs, 0)
        if all(_status(rs, "replicas") == 0 for rs in olds):
            await self._scale(new, desired)

    async def _rolling(self, new: Obj, olds: list[Obj], desired: int, surge: int, unavailable: int) -> None:
        if not olds or all(_replicas(rs) == 0 and _status(rs, "replicas") == 0 for rs in olds):
            await self._scale(new, desired)
            return
        # Scale up the new ReplicaSet as far as the surge allows.
        total = _replicas(new) + sum(_replicas(rs) for rs in olds)
        room = desired + surge - total
        if room > 0 and _replicas(new) < desired:
            await self._scale(new, min(desired, _replicas(new) + room))
        # Scale down old ReplicaSets as far as availability allows, their unavailable pods first.
        min_available = desired - unavailable
        all_pods = _status(new, "replicas") + sum(_status(rs, "replicas") for rs in olds)
        new_unavailable = _replicas(new) - _status(new, "availableReplicas")
        budget = all_pods - min_available - max(0, new_unavailable)
        for rs in sorted(olds, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if budget <= 0:
                break
            unhealthy = max(0, _replicas(rs) - _status(rs, "availableReplicas"))
            cut = min(unhealthy, budget)
            if cut:
                await self._scale(rs, _replicas(rs) - cut)
                budget -= cut
        available = _status(new, "availableReplicas") + sum(_status(rs, "availableReplicas") for rs in olds)
        budget = available - min_available
        for rs in sorted(olds, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if budget <= 0:
                break
            cut = min(_replicas(rs), budget)
            if cut:
                await self._scale(rs, _replicas(rs) - cut)
                budget -= cut

    async def _write_status(self, d: Obj, new: Obj | None, owned: list[Obj]) -> None:
        desired = _replicas(d)
        replicas = sum(_status(rs, "replicas") for rs in owned)
        available = sum(_status(rs, "availableReplicas") for rs in owned)
        ready = sum(_status(rs, "readyReplicas") for rs in owned)
        updated = _status(new, "replicas") if new else 0
        ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _resolve(ru.get("maxUnavailable"), desired, False, "25%")
        now = _now()
        conds = list((d.get("status") or {}).get("conditions") or [])
        ok = available >= desired - max_unavailable
        conds = set_condition(
            conds,
            "Available",
            "True" if ok else "False",
            "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if ok
            else "Deployment does not have minimum availability.",
            now,
        )
        complete = new is not None and updated == desired and replicas == desired and available == desired
        name = (new or {}).get("metadata", {}).get("name", "")
        conds = set_condition(
            conds,
            "Progressing",
            "True",
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{name}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{name}" is progressing.',
            now,
        )
        status: Obj = {
            "observedGeneration": (d.get("metadata") or {}).get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, desired - available),
            "conditions": conds,
        }
        current = d.get("status") or {}
        same = all(current.get(k, 0) == v for k, v in status.items() if k != "conditions")
        if same and [
            (c.get("type"), c.get("status"), c.get("reason")) for c in current.get("conditions") or []
        ] == [(c["type"], c["status"], c["reason"]) for c in conds]:
            return
        await self._patch(DEPLOYMENTS, d, {"status": status}, sub="status")

    async def _patch(self, res: Any, obj: Obj, patch: Obj, sub: str | None = None) -> None:
        md = obj.get("metadata") or {}
        try:
            await self.kube.run(
                self.kube.patch, res, md.get("name"), patch, md.get("namespace"), sub, MERGE_PATCH
            )
        except ApiError as exc:
            if exc.status != 404:
                log.warning("%s %s: %s", res.kind, key_of(obj), exc)
