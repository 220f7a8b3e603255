"""The NodeGroup controller: labels member nodes, reports their readiness, cleans up on deletion."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubeclient import NODES, PODS, ApiError, Informer, Kube, Obj, Resource, WorkQueue, wait_synced
from nodegroup._membership import GroupSpec, groups_for_node, node_labels, plan_group, release_labels
from nodegroup._naming import BELONGING_TO_LABEL, NODEGROUP_FINALIZER

log = logging.getLogger(__name__)

NODEGROUPS = Resource("apps.kubeedge.io", "v1alpha1", "nodegroups", "NodeGroup", False)


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
        self.nodes = Informer(kube, NODES, self._on_node)
        self.groups = Informer(kube, NODEGROUPS, self._on_group)
        self.queue = WorkQueue("nodegroup", self.reconcile)

    async def _on_node(self, event: str, obj: Obj, old: Obj | None) -> None:
        specs = [group_spec(g) for g in self.groups.values()]
        for node in (old, obj):
            if node is not None:
                for name in groups_for_node(node, specs):
                    self.queue.add(name)

    async def _on_group(self, event: str, obj: Obj, old: Obj | None) -> None:
        self.queue.add(str(obj["metadata"]["name"]))

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self.nodes.run(stop)), asyncio.create_task(self.groups.run(stop))]
        try:
            await wait_synced(stop, self.nodes, self.groups)
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
        await self._apply_labels(nodes, plan.label_changes)
        for node_name, changes in plan.label_changes.items():
            if changes.get(BELONGING_TO_LABEL, "") is None:
                await self._evict_group_pods(node_name, name)
        current = (group.get("status") or {}).get("nodeStatuses") or []
        if current != plan.node_statuses:
            await self.kube.apatch(
                NODEGROUPS.item(name, sub="status"),
                {"status": {"nodeStatuses": plan.node_statuses}},
            )

    async def _apply_labels(self, nodes: dict[str, Obj], changes: dict[str, dict[str, str | None]]) -> None:
        # Independent nodes, so patch them side by side; the first failure is re-raised for a retry.
        results = await asyncio.gather(
            *(self._patch_labels(nodes[name], change) for name, change in sorted(changes.items())),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _release_all(self, name: str) -> None:
        nodes = {str(n["metadata"]["name"]): n for n in self.nodes.values()}
        leaving = {
            node_name: release_labels(node, name)
            for node_name, node in nodes.items()
            if node_labels(node).get(BELONGING_TO_LABEL) == name
        }
        await self._apply_labels(nodes, leaving)
        for node_name in leaving:
            await self._evict_group_pods(node_name, name)

    async def _evict_group_pods(self, node_name: str, group: str) -> None:
        """Delete the pods on a node that left ``group`` and were placed there for that group.

        As KubeEdge does: their controllers recreate them on the group's remaining nodes.
        """
        query = [("fieldSelector", f"spec.nodeName={node_name}")]
        try:
            pods = (await self.kube.arequest("GET", PODS.collection(), query=query)).get("items") or []
        except ApiError as exc:
            if exc.status != 400:
                raise
            everything = (await self.kube.arequest("GET", PODS.collection())).get("items") or []
            pods = [p for p in everything if (p.get("spec") or {}).get("nodeName") == node_name]
        for pod in pods:
            selector = (pod.get("spec") or {}).get("nodeSelector") or {}
            if selector.get(BELONGING_TO_LABEL) != group:
                continue
            metadata = pod["metadata"]
            path = PODS.item(metadata["name"], metadata["namespace"])
            if await self.kube.adelete(path):
                log.info(
                    "node %s left group %s: deleted pod %s/%s",
                    node_name,
                    group,
                    metadata["namespace"],
                    metadata["name"],
                )

    async def _drop_finalizer(self, group: Obj) -> None:
        finalizers = list(group.get("metadata", {}).get("finalizers") or [])
        if NODEGROUP_FINALIZER in finalizers:
            finalizers.remove(NODEGROUP_FINALIZER)
            await self._patch_group(group, {"metadata": {"finalizers": finalizers}})

    async def _patch_group(self, group: Obj, patch: dict[str, Any]) -> Obj:
        patch["metadata"]["resourceVersion"] = group["metadata"]["resourceVersion"]
        try:
            return await self.kube.apatch(NODEGROUPS.item(group["metadata"]["name"]), patch)
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
            updated = await self.kube.apatch(NODES.item(name), patch)
        except ApiError as exc:
            if exc.status == 404:
                return
            if exc.status == 409:
                # Changed since the cache saw it (heartbeats do that often): plan again on the
                # fresh node rather than wait for the watch to bring it.
                fresh = await self.kube.aget_or_none(NODES.item(name))
                if fresh is not None:
                    self.nodes.cache[("", name)] = fresh
            raise
        log.info("node %s labels %s", name, changes)
        # Keep the cache ahead of the watch so the rest of this pass plans on what it just wrote,
        # unless the watch already brought something newer.
        cached = self.nodes.get(name)
        expected = patch["metadata"]["resourceVersion"]
        if cached is not None and cached["metadata"].get("resourceVersion") == expected:
            self.nodes.cache[("", name)] = updated
