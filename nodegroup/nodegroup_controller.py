"""The NodeGroup controller: labels member nodes, reports their readiness, cleans up on deletion."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from nodegroup._kube import ApiError, Informer, Kube, Obj, wait_synced
from nodegroup._membership import GroupSpec, groups_for_node, node_labels, plan_group, release_labels
from nodegroup._naming import BELONGING_TO_LABEL, NODEGROUP_FINALIZER
from nodegroup._workqueue import WorkQueue

log = logging.getLogger(__name__)

NODES_PATH = "/api/v1/nodes"
NODEGROUPS_PATH = "/apis/apps.kubeedge.io/v1alpha1/nodegroups"


def group_spec(obj: Obj) -> GroupSpec:
    spec = obj.get("spec") or {}
    match_labels = spec.get("matchLabels")
    return GroupSpec(
        name=str(obj.get("metadata", {}).get("name", "")),
        nodes=tuple(str(n) for n in spec.get("nodes") or []),
        match_labels={str(k): str(v) for k, v in match_labels.items()} if match_labels else None,
        topology_enabled=bool(spec.get("topologyEnabled")),
    )


class NodeGroupController:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.nodes = Informer(kube, NODES_PATH, self._on_node)
        self.groups = Informer(kube, NODEGROUPS_PATH, self._on_group)
        self.queue = WorkQueue("nodegroup", self.reconcile)

    def _on_node(self, old: Obj | None, new: Obj | None) -> None:
        specs = [group_spec(g) for g in self.groups.values()]
        for node in (old, new):
            if node is not None:
                for name in groups_for_node(node, specs):
                    self.queue.add(name)

    def _on_group(self, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is not None:
            self.queue.add(str(obj["metadata"]["name"]))

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self.nodes.run(stop)), asyncio.create_task(self.groups.run(stop))]
        try:
            await wait_synced(stop, self.nodes.synced, self.groups.synced)
            if not stop.is_set():
                await self.queue.run(stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def reconcile(self, name: str) -> None:
        group = self.groups.get(name)
        if group is None or group.get("metadata", {}).get("deletionTimestamp"):
            await self._release_all(name)
            if group is not None:
                await self._drop_finalizer(group)
            return
        finalizers = list(group.get("metadata", {}).get("finalizers") or [])
        if NODEGROUP_FINALIZER not in finalizers:
            group = await self._patch_group(
                group, {"metadata": {"finalizers": [*finalizers, NODEGROUP_FINALIZER]}}
            )
        nodes = {str(n["metadata"]["name"]): n for n in self.nodes.values()}
        plan = plan_group(group_spec(group), nodes)
        for node_name, changes in sorted(plan.label_changes.items()):
            await self._patch_labels(nodes[node_name], changes)
        current = (group.get("status") or {}).get("nodeStatuses") or []
        if current != plan.node_statuses:
            await self.kube.patch(
                f"{NODEGROUPS_PATH}/{quote(name)}/status",
                {"status": {"nodeStatuses": plan.node_statuses}},
            )

    async def _release_all(self, name: str) -> None:
        for node in self.nodes.values():
            if node_labels(node).get(BELONGING_TO_LABEL) == name:
                await self._patch_labels(node, release_labels(node, name))

    async def _drop_finalizer(self, group: Obj) -> None:
        finalizers = list(group.get("metadata", {}).get("finalizers") or [])
        if NODEGROUP_FINALIZER in finalizers:
            finalizers.remove(NODEGROUP_FINALIZER)
            await self._patch_group(group, {"metadata": {"finalizers": finalizers}})

    async def _patch_group(self, group: Obj, patch: dict[str, Any]) -> Obj:
        patch["metadata"]["resourceVersion"] = group["metadata"]["resourceVersion"]
        try:
            return await self.kube.patch(f"{NODEGROUPS_PATH}/{quote(group['metadata']['name'])}", patch)
        except ApiError as exc:
            if exc.status == 404:
                return group
            raise

    async def _patch_labels(self, node: Obj, changes: dict[str, str | None]) -> None:
        if not changes:
            return
        name = str(node["metadata"]["name"])
        # The resourceVersion makes the patch conditional: two groups claiming one node cannot both win.
        patch = {"metadata": {"labels": changes, "resourceVersion": node["metadata"]["resourceVersion"]}}
        try:
            updated = await self.kube.patch(f"{NODES_PATH}/{quote(name)}", patch)
        except ApiError as exc:
            if exc.status == 404:
                return
            raise
        log.info("node %s labels %s", name, changes)
        # Keep the cache ahead of the watch so the rest of this pass plans on what it just wrote,
        # unless the watch already brought something newer.
        cached = self.nodes.store.get(name)
        expected = patch["metadata"]["resourceVersion"]
        if cached is not None and cached["metadata"].get("resourceVersion") == expected:
            self.nodes.store[name] = updated
