"""edged: runs the Pods bound to this node through the node's container runtime (CRI).

Pods come from the edge store, not from the cloud directly, so a node keeps running and restarting
its Pods while the cloud is away, and adopts its running containers after an edgecore restart.
Status goes up the channel as KubeEdge's edged sends it (``<ns>/podpatch/<name>``, a strategic merge
patch of the status); a Pod the API marked for deletion is stopped, then deleted (``<ns>/pod/<name>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from dmi.rpc import RpcError
from edgecore._router import ModuleRouter
from edgecore.edged._podspec import NODE_LABEL, POD_UID, Obj, References, referenced_names
from edgecore.edged._runtime import Runtime
from edgecore.edged._status import status_patch
from edgecore.edged._worker import PodWorker
from edgecore.metamanager import EdgeStore
from kubeshore import cgroups
from kubeshore.events import event_message, involved, new_event
from kubeshore.message import GROUP_META, OP_DELETE, OP_PATCH, SOURCE_EDGED, Message

log = logging.getLogger("edgecore.edged")

PODS = "core/v1/pods"
_CONFIGMAPS = "core/v1/configmaps"
_SECRETS = "core/v1/secrets"
_ORPHAN_SWEEP = 60.0  # seconds between sweeps for sandboxes of pods this node no longer has
# A removed sandbox's last processes (the shim reaping them) may outlive RemovePodSandbox by a moment.
_CGROUP_TRIES = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0)


class Edged:
    def __init__(
        self,
        *,
        node: str,
        store: EdgeStore,
        router: ModuleRouter,
        runtime_endpoint: str,
        root: Path,
        host_ip: str,
        cgroup_driver: str = "cgroupfs",
        cgroup_root: str = cgroups.DEFAULT_ROOT,
        runtime_timeout: float = 120.0,
        backoff_initial: float = 10.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.node = node
        self.store = store
        self.router = router
        self.runtime = Runtime(runtime_endpoint, timeout=runtime_timeout)
        self.root = root
        self.host_ip = host_ip
        self.cgroup_driver = cgroup_driver
        self.cgroup_root = cgroups.normalize_root(cgroup_root)
        self._cgroup_tasks: set[asyncio.Task[None]] = set()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.workers: dict[str, PodWorker] = {}
        self.runtime_version = ""
        self.runtime_error = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        store.add_watcher(self._on_change)
        router.on_cloud_state(self._cloud_state)

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tasks.append(asyncio.create_task(self._run(), name="edged"))

    async def _run(self) -> None:
        # Until the runtime answers, Pods wait (and the reason is logged once); then they run.
        delay = 1.0
        while True:
            try:
                v = await self.runtime.version()
                self.runtime_version = f"{v.runtime_name}://{v.runtime_version}"
                self.runtime_error = ""
                break
            except RpcError as exc:
                if not self.runtime_error:
                    log.warning("edged: container runtime %s not reachable: %s", self.runtime.endpoint, exc)
                self.runtime_error = str(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        log.info("edged: container runtime %s (%s)", self.runtime_version, self.runtime.endpoint)
        self._started = True
        for pod in await self.store.list_objects(PODS):
            if self._mine(pod):
                self._upsert(pod)
        while True:
            with contextlib.suppress(RpcError):
                await self.sweep_orphans()
            await asyncio.sleep(_ORPHAN_SWEEP)

    async def stop(self) -> None:
        # Containers keep running: edgecore restarting (or stopping) is no reason to stop workloads.
        for t in [*self._tasks, *self._cgroup_tasks]:
            t.cancel()
        for w in self.workers.values():
            w.stop_probers()
            if w.task is not None:
                w.task.cancel()
        tasks = [
            *self._tasks,
            *self._cgroup_tasks,
            *(w.task for w in self.workers.values() if w.task is not None),
        ]
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.runtime.close()

    # --- pods from the store ------------------------------------------------------------------
    def _mine(self, pod: Obj) -> bool:
        return bool((pod.get("spec") or {}).get("nodeName") == self.node)

    def _upsert(self, pod: Obj) -> None:
        uid = (pod.get("metadata") or {}).get("uid", "")
        if not uid:
            return
        w = self.workers.get(uid)
        if w is None:
            w = PodWorker(self, pod)
            self.workers[uid] = w
            task = w.start()
            task.add_done_callback(lambda _t: self._finished(uid))
        else:
            w.update(pod)

    def _finished(self, uid: str) -> None:
        w = self.workers.get(uid)
        if w is not None and w.task is not None and w.task.done():
            del self.workers[uid]

    def _on_change(self, change: Any) -> None:
        if not self._started:
            return
        if change.gvr == PODS:
            uid = (change.obj.get("metadata") or {}).get("uid", "")
            if change.type == "DELETED" or not self._mine(change.obj):
                w = self.workers.get(uid)
                if w is None:
                    # A delete that names no uid: find the worker by namespace and name.
                    md = change.obj.get("metadata") or {}
                    w = next(
                        (
                            x
                            for x in self.workers.values()
                            if (x.namespace, x.name) == (md.get("namespace"), md.get("name"))
                        ),
                        None,
                    )
                if w is not None:
                    w.update(None)
                return
            self._upsert(change.obj)
        elif change.gvr in (_CONFIGMAPS, _SECRETS):
            md = change.obj.get("metadata") or {}
            for w in self.workers.values():
                if w.namespace != md.get("namespace"):
                    continue
                cms, secrets = referenced_names(w.pod)
                if md.get("name") in (cms if change.gvr == _CONFIGMAPS else secrets):
                    w.wake.set()

    async def references(self, pod: Obj) -> References:
        ns = (pod.get("metadata") or {}).get("namespace", "default")
        cms, secrets = referenced_names(pod)
        refs = References()
        for name in cms:
            if (obj := await self.store.get(_CONFIGMAPS, ns, name)) is not None:
                refs.configmaps[name] = obj
        for name in secrets:
            if (obj := await self.store.get(_SECRETS, ns, name)) is not None:
                refs.secrets[name] = obj
        return refs

    async def sweep_orphans(self) -> None:
        """Stop and remove sandboxes of this node whose Pod the store no longer has."""
        wanted = {uid for uid, w in self.workers.items() if not w.deleted}
        removed: dict[str, str] = {}
        for s in await self.runtime.list_pod_sandboxes({NODE_LABEL: self.node}):
            uid = s.labels.get(POD_UID, "")
            if uid in wanted or uid in self.workers:
                continue
            log.info(
                "edged: removing sandbox %s of pod %s/%s (no longer on this node)",
                s.id[:12],
                s.metadata.namespace,
                s.metadata.name,
            )
            for c in await self.runtime.list_containers(s.id):
                with contextlib.suppress(RpcError):
                    await self.runtime.stop_container(c.id, 10)
            with contextlib.suppress(RpcError):
                await self.runtime.stop_pod_sandbox(s.id)
            with contextlib.suppress(RpcError):
                await self.runtime.remove_pod_sandbox(s.id)
            removed[uid] = f"{s.metadata.namespace}/{s.metadata.name}"
        for uid, key in removed.items():
            self.remove_pod_cgroup(uid, key)

    def remove_pod_cgroup(self, uid: str, key: str) -> None:
        """Remove the cgroup directories of a Pod whose sandboxes are gone, in every hierarchy, as the
        kubelet's pod container manager does (runc leaves a Pod's parents behind); in the background."""
        if not uid or self.cgroup_driver == "systemd":
            # systemd's slices are its units, stopped over D-Bus, not rmdir'd behind its back.
            return
        _, relative = cgroups.pod_cgroup(self.cgroup_root, self.cgroup_driver, uid)
        task = asyncio.create_task(self._remove_cgroup(relative, key), name=f"cgroup of {key}")
        self._cgroup_tasks.add(task)
        task.add_done_callback(self._cgroup_tasks.discard)

    async def _remove_cgroup(self, relative: str, key: str) -> None:
        left: list[str] = []
        for delay in _CGROUP_TRIES:
            await asyncio.sleep(delay)
            try:
                left = await asyncio.to_thread(cgroups.remove_tree, relative)
            except ValueError as exc:
                left = [str(exc)]
                break
            if not left:
                return
        # Once per pod, and never fatal: the directories are empty cgroups, a kill -9 run's clean-up
        # (``kubeshore down``, the tests' containerd fixture) removes the node's whole cgroup root.
        log.warning("edged: pod %s: cgroup not removed: %s", key, "; ".join(left[:3]))

    # --- up the channel -----------------------------------------------------------------------
    async def _cloud_state(self, connected: bool) -> None:
        if connected:
            for w in self.workers.values():
                w.dirty = True
                w.wake.set()

    async def send_status(self, worker: PodWorker, status: Obj) -> bool:
        patch = status_patch(worker.uid, status)
        msg = Message.new(
            source=SOURCE_EDGED,
            group=GROUP_META,
            operation=OP_PATCH,
            resource=f"{worker.namespace}/podpatch/{worker.name}",
            content=json.dumps(patch, separators=(",", ":")),
        )
        # Status is state, not history: offline, the newest is sent on reconnect instead of a backlog.
        return await self.router.to_cloud(msg, queue_offline=False)

    async def request_delete(self, worker: PodWorker) -> None:
        if worker._delete_requested:
            return
        msg = Message.new(
            source=SOURCE_EDGED,
            group=GROUP_META,
            operation=OP_DELETE,
            resource=f"{worker.namespace}/pod/{worker.name}",
            content={"gracePeriodSeconds": 0, "preconditions": {"uid": worker.uid}},
        )
        if await self.router.to_cloud(msg, queue_offline=True):
            worker._delete_requested = True

    def send_event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        body = new_event(
            involved({"apiVersion": "v1", "kind": "Pod", **pod}), type_, reason, message, "kubelet", self.node
        )
        task = asyncio.create_task(self.router.to_cloud(event_message(body), queue_offline=False))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def stats(self) -> dict[str, int]:
        return {"pods": len(self.workers)}
