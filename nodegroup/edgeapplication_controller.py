"""The EdgeApplication controller: applies what ``_templates.render`` generates, owned by the
EdgeApplication; removes what is no longer generated; reports every object and every problem.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from kubeclient import DEPLOYMENTS, EVENTS, ApiError, Informer, Kube, Obj, Resource, WorkQueue, wait_synced
from kubeshore import mergepatch
from nodegroup._naming import LAST_APPLIED_TEMPLATE_ANNOTATION, LAST_CONTAINED_RESOURCES_ANNOTATION
from nodegroup._templates import Problem, render

log = logging.getLogger(__name__)

API_VERSION = "apps.kubeedge.io/v1alpha1"
EDGEAPPS = Resource("apps.kubeedge.io", "v1alpha1", "edgeapplications", "EdgeApplication", True)
AVAILABLE, PROCESSING = "Available", "Processing"
COMPONENT = "edgeapplication-controller"
RESYNC_SECONDS = 60.0


@dataclass(frozen=True, order=True)
class ResourceInfo:
    """One generated object, as KubeEdge records it in ``last-contained-resources``."""

    ordinal: int
    group: str
    version: str
    kind: str
    namespace: str
    name: str

    def as_json(self) -> dict[str, Any]:
        return {
            "ordinal": self.ordinal,
            "group": self.group,
            "version": self.version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _parse_contained(text: str | None) -> list[ResourceInfo]:
    if not text:
        return []
    try:
        items = json.loads(text)
        return [
            ResourceInfo(
                ordinal=int(i.get("ordinal", 0)),
                group=str(i.get("group", "")),
                version=str(i.get("version", "")),
                kind=str(i.get("kind", "")),
                namespace=str(i.get("namespace", "")),
                name=str(i.get("name", "")),
            )
            for i in items
        ]
    except (ValueError, TypeError, AttributeError):
        log.warning("ignoring unreadable %s annotation", LAST_CONTAINED_RESOURCES_ANNOTATION)
        return []


def _owner_reference(edge_app: Obj) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeApplication",
        "name": edge_app["metadata"]["name"],
        "uid": edge_app["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _owned_by(obj: Obj, edge_app: Obj) -> bool:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "EdgeApplication" and ref.get("name") == edge_app["metadata"]["name"]:
            return True
    return False


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EdgeApplicationController:
    def __init__(self, kube: Kube, resync_seconds: float = RESYNC_SECONDS) -> None:
        self.kube = kube
        self.edge_apps = Informer(kube, EDGEAPPS, self._on_edge_app)
        self.deployments = Informer(kube, DEPLOYMENTS, self._on_deployment)
        self.queue = WorkQueue("edgeapplication", self.reconcile)
        self.resync_seconds = resync_seconds
        # Final state of deleted EdgeApplications, so their objects go even without a garbage collector.
        self._deleted: dict[str, Obj] = {}
        self._reported: dict[str, frozenset[str]] = {}

    async def _on_edge_app(self, event: str, obj: Obj, old: Obj | None) -> None:
        key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
        if event == "DELETED":
            self._deleted[key] = obj
        self.queue.add(key)

    async def _on_deployment(self, event: str, obj: Obj, old: Obj | None) -> None:
        for version in (old, obj):
            if version is None:
                continue
            for ref in version.get("metadata", {}).get("ownerReferences") or []:
                if ref.get("kind") == "EdgeApplication" and ref.get("apiVersion", "").startswith(
                    "apps.kubeedge.io/"
                ):
                    self.queue.add(f"{version['metadata'].get('namespace')}/{ref.get('name')}")

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self.edge_apps.run(stop)),
            asyncio.create_task(self.deployments.run(stop)),
        ]
        try:
            await wait_synced(stop, self.edge_apps, self.deployments)
            if stop.is_set():
                return
            tasks.append(asyncio.create_task(self._resync(stop)))
            await self.queue.run(stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _resync(self, stop: asyncio.Event) -> None:
        # Brings back generated objects someone deleted by hand, as a level-triggered controller should.
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.resync_seconds)
            except TimeoutError:
                for obj in self.edge_apps.values():
                    self.queue.add(f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}")

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        edge_app = self.edge_apps.get(name, namespace)
        if edge_app is None:
            deleted = self._deleted.pop(key, None)
            self._reported.pop(key, None)
            if deleted is not None:
                await self._delete_all(deleted)
            return
        if edge_app["metadata"].get("deletionTimestamp"):
            return
        rendered = render(edge_app)
        problems = list(rendered.problems)
        namespace = str(edge_app["metadata"].get("namespace") or "default")
        applied: list[ResourceInfo] = []
        resources: dict[ResourceInfo, Resource] = {}
        for generated in rendered.generated:
            manifest = generated.manifest
            metadata = manifest["metadata"]
            api_version, kind = manifest["apiVersion"], manifest["kind"]
            resource = await self.kube.resource(api_version, kind)
            if resource is None:
                problems.append(
                    Problem(
                        generated.ordinal,
                        f"manifest {generated.ordinal}: the API server does not serve kind {kind!r} "
                        f"in {api_version!r}",
                    )
                )
                continue
            if resource.namespaced:
                if metadata.get("namespace") != namespace:
                    problems.append(
                        Problem(
                            generated.ordinal,
                            f"{kind} {metadata['name']}: namespace {metadata.get('namespace')!r} differs "
                            f"from the EdgeApplication's {namespace!r}; objects it makes live there",
                            metadata["name"],
                        )
                    )
                    continue
                refs = [r for r in metadata.get("ownerReferences") or [] if not r.get("controller")]
                metadata["ownerReferences"] = [*refs, _owner_reference(edge_app)]
            else:
                # A namespaced owner cannot own a cluster-scoped object; deletion is done by this controller.
                metadata.pop("namespace", None)
            info = ResourceInfo(
                generated.ordinal,
                resource.group,
                resource.version,
                kind,
                metadata.get("namespace", ""),
                metadata["name"],
            )
            try:
                await self._apply(edge_app, resource, manifest)
            except _NotOurs as exc:
                problems.append(Problem(generated.ordinal, str(exc), metadata["name"]))
                continue
            except ApiError as exc:
                problems.append(
                    Problem(
                        generated.ordinal,
                        f"{kind} {metadata['name']}: {exc.message or exc}",
                        metadata["name"],
                    )
                )
                continue
            applied.append(info)
            resources[info] = resource

        previous = _parse_contained(
            (edge_app["metadata"].get("annotations") or {}).get(LAST_CONTAINED_RESOURCES_ANNOTATION)
        )
        # Keep what a failing manifest or target made last time: bad input must not delete running work.
        kept = [
            p
            for p in previous
            if p not in applied
            and any(pr.ordinal == p.ordinal and (pr.name is None or pr.name == p.name) for pr in problems)
        ]
        contained = sorted(set(applied) | set(kept))
        for info in previous:
            if info not in contained:
                await self._delete(info)

        for info in kept:
            kept_resource = await self.kube.resource(info.api_version, info.kind)
            if kept_resource is not None:
                resources[info] = kept_resource
        await self._record(edge_app, contained, problems, resources)

    async def _apply(self, edge_app: Obj, resource: Resource, manifest: Obj) -> None:
        metadata = manifest["metadata"]
        path = resource.item(metadata["name"], metadata.get("namespace"))
        template_json = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
        desired = json.loads(template_json)
        desired["metadata"].setdefault("annotations", {})[LAST_APPLIED_TEMPLATE_ANNOTATION] = template_json
        current = await self.kube.aget_or_none(path)
        if current is None:
            try:
                await self.kube.acreate(resource.collection(metadata.get("namespace")), desired)
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise
                current = await self.kube.aget(path)
        if resource.namespaced and not _owned_by(current, edge_app):
            raise _NotOurs(
                f"{manifest['kind']} {metadata['name']} already exists and is not owned by EdgeApplication "
                f"{edge_app['metadata']['name']}; it is left as it is"
            )
        annotations = current.get("metadata", {}).get("annotations") or {}
        last = annotations.get(LAST_APPLIED_TEMPLATE_ANNOTATION)
        if last == template_json:
            return
        try:
            last_applied = json.loads(last) if last else {}
        except ValueError:
            last_applied = {}
        patch = mergepatch.create(last_applied, manifest)
        patch.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED_TEMPLATE_ANNOTATION] = (
            template_json
        )
        await self.kube.apatch(path, patch)

    async def _delete(self, info: ResourceInfo) -> None:
        resource = await self.kube.resource(info.api_version, info.kind)
        if resource is None:
            return
        if await self.kube.adelete(resource.item(info.name, info.namespace or None)):
            log.info("deleted %s %s/%s", info.kind, info.namespace, info.name)

    async def _delete_all(self, edge_app: Obj) -> None:
        annotations = edge_app["metadata"].get("annotations") or {}
        for info in _parse_contained(annotations.get(LAST_CONTAINED_RESOURCES_ANNOTATION)):
            await self._delete(info)

    # -- status and events ------------------------------------------------------------------
    def _condition(self, info: ResourceInfo) -> str:
        if info.kind != "Deployment" or info.group != "apps":
            return AVAILABLE
        deployment = self.deployments.get(info.name, info.namespace)
        if deployment is None:
            return PROCESSING
        wanted = (deployment.get("spec") or {}).get("replicas", 1)
        ready = (deployment.get("status") or {}).get("readyReplicas", 0) or 0
        return AVAILABLE if ready == wanted else PROCESSING

    async def _record(
        self,
        edge_app: Obj,
        contained: list[ResourceInfo],
        problems: list[Problem],
        resources: dict[ResourceInfo, Resource],
    ) -> None:
        name = edge_app["metadata"]["name"]
        namespace = edge_app["metadata"].get("namespace") or "default"
        path = EDGEAPPS.item(name, namespace)
        annotation = json.dumps([c.as_json() for c in contained], separators=(",", ":"))
        annotations = edge_app["metadata"].get("annotations") or {}
        if annotations.get(LAST_CONTAINED_RESOURCES_ANNOTATION) != annotation:
            await self.kube.apatch(
                path, {"metadata": {"annotations": {LAST_CONTAINED_RESOURCES_ANNOTATION: annotation}}}
            )

        plurals = {info: resource.plural for info, resource in resources.items()}
        entries: list[dict[str, Any]] = []
        for info in contained:
            entries.append(
                {
                    "identifier": {
                        "ordinal": info.ordinal,
                        "group": info.group,
                        "version": info.version,
                        "kind": info.kind,
                        "resource": plurals.get(info, ""),
                        "namespace": info.namespace,
                        "name": info.name,
                    },
                    "conditions": self._condition(info),
                }
            )
        covered = {c.ordinal for c in contained}
        for ordinal in sorted({p.ordinal for p in problems} - covered):
            entries.append({"identifier": {"ordinal": ordinal}, "conditions": PROCESSING})
        entries.sort(key=lambda e: (e["identifier"]["ordinal"], e["identifier"].get("name", "")))
        current = edge_app.get("status") or {}
        conditions = [_applied_condition(problems, current.get("conditions") or [])]
        if current.get("workloadStatus") != entries or current.get("conditions") != conditions:
            await self.kube.apatch(
                f"{path}/status", {"status": {"workloadStatus": entries, "conditions": conditions}}
            )

        messages = frozenset(p.message for p in problems)
        key = f"{namespace}/{name}"
        if messages and messages != self._reported.get(key):
            for message in sorted(messages - self._reported.get(key, frozenset())):
                log.warning("EdgeApplication %s: %s", key, message)
                await self._event(edge_app, "InvalidWorkload", message)
        self._reported[key] = messages

    async def _event(self, edge_app: Obj, reason: str, message: str) -> None:
        metadata = edge_app["metadata"]
        namespace = metadata.get("namespace") or "default"
        digest = hashlib.sha256(f"{metadata.get('uid')}{message}".encode()).hexdigest()[:10]
        now = _now()
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata['name']}.{digest}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": "EdgeApplication",
                "name": metadata["name"],
                "namespace": namespace,
                "uid": metadata.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        collection = EVENTS.collection(namespace)
        try:
            await self.kube.acreate(collection, event)
        except ApiError as exc:
            if exc.status != 409:
                log.warning("cannot record event for %s: %s", metadata["name"], exc)
                return
            existing = await self.kube.aget_or_none(f"{collection}/{event['metadata']['name']}")
            count = int((existing or {}).get("count") or 1) + 1
            await self.kube.apatch(
                f"{collection}/{event['metadata']['name']}", {"count": count, "lastTimestamp": now}
            )


def _applied_condition(problems: list[Problem], previous: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``Applied`` condition: False with every problem in its message, or True.

    KubeEdge's status has no place for errors; this standard condition list is kubeshore's addition.
    """
    messages = sorted({p.message for p in problems})
    condition: dict[str, Any] = {
        "type": "Applied",
        "status": "False" if messages else "True",
        "reason": "InvalidWorkload" if messages else "Applied",
        "message": "; ".join(messages)[:4096] if messages else "every manifest was applied to every target",
    }
    before = next((c for c in previous if c.get("type") == "Applied"), None)
    if (
        before is not None
        and before.get("status") == condition["status"]
        and before.get("lastTransitionTime")
    ):
        condition["lastTransitionTime"] = before["lastTransitionTime"]
    else:
        condition["lastTransitionTime"] = _now()
    return condition


class _NotOurs(Exception):
    pass


__all__ = ["EdgeApplicationController", "ResourceInfo"]
