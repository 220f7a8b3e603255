"""One worker per Pod: makes the runtime match the Pod (sandbox, init containers, containers,
restarts with back-off, probes) and reports what it sees, as the kubelet's pod worker does.

The worker is level-based: each pass lists what the runtime has for the Pod (by the Pod's uid label)
and acts on the difference, so a restarted edgecore adopts running containers instead of starting
them again, and a container that died while edgecore was down is restarted with its restart count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

from cri.v1 import api_pb2 as cri
from dmi.rpc import RpcError
from edgecore.edged import _podspec, _volumes
from edgecore.edged._podspec import NODE_LABEL, POD_UID, Obj, SpecError
from edgecore.edged._probes import ContainerProber
from edgecore.edged._status import Observed, PodObservation, now, pod_status, rfc3339, without_times
from kubeshore.backoff import exponential
from kubeshore.events import NORMAL, WARNING

if TYPE_CHECKING:
    from edgecore.edged._edged import Edged

log = logging.getLogger("edgecore.edged")

_RESYNC = 1.0  # seconds between passes when nothing wakes the worker: how soon an exit is seen


def _default_pull_policy(image: str) -> str:
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return "IfNotPresent"
    return "Always" if ":" not in tail or tail.endswith(":latest") else "IfNotPresent"


class PodWorker:
    def __init__(self, edged: Edged, pod: Obj) -> None:
        self.edged = edged
        self.pod = pod
        meta = pod.get("metadata") or {}
        self.uid: str = meta.get("uid", "")
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta.get("name", "")
        self.deleted = False
        self.wake = asyncio.Event()
        self.dirty = True  # status must be sent (again)
        self.last_status: Obj | None = None
        self.sent_status: Obj | None = None
        self._statuses: dict[str, cri.ContainerStatus] = {}
        self._probers: dict[str, ContainerProber] = {}
        self._waiting: dict[str, tuple[str, str]] = {}
        self._pull_backoff: dict[str, float] = {}
        self._events_sent: dict[tuple[str, str], float] = {}
        self._start_time: str | None = None
        self._killed = False
        self._delete_requested = False
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def pod_dir(self) -> Any:
        return self.edged.root / "pods" / self.uid

    def update(self, pod: Obj | None) -> None:
        if pod is None:
            self.deleted = True
        else:
            self.pod = pod
        self.wake.set()

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.run(), name=f"pod {self.key}")
        return self.task

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                if await self.sync():
                    return
            except asyncio.CancelledError:
                raise
            except RpcError as exc:
                log.warning("pod %s: runtime: %s", self.key, exc)
            except Exception:
                log.exception("pod %s: sync failed", self.key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), _RESYNC)

    def stop_probers(self) -> None:
        for p in self._probers.values():
            p.stop()
        self._probers.clear()

    # --- events -------------------------------------------------------------------------------
    def event(self, type_: str, reason: str, message: str) -> None:
        # The kubelet aggregates repeats; a node on a slow link sends one per reason and message per minute.
        k = (reason, message)
        t = time.monotonic()
        if t - self._events_sent.get(k, -1e9) < 60.0:
            return
        self._events_sent[k] = t
        self.edged.send_event(self.pod, type_, reason, message)

    # --- one pass -----------------------------------------------------------------------------
    async def sync(self) -> bool:
        rt = self.edged.runtime
        meta = self.pod.get("metadata") or {}
        if self.deleted or meta.get("deletionTimestamp"):
            await self.kill()
            if self.deleted:
                return True
            await self.report()
            await self.edged.request_delete(self)
            return False
        spec = self.pod.get("spec") or {}
        refs = await self.edged.references(self.pod)
        sandbox_id, sandbox_cfg = await self._sandbox(refs)
        if sandbox_id is None or sandbox_cfg is None:
            await self.report()
            return False
        pod_ip = self.edged.host_ip
        if not spec.get("hostNetwork"):
            st = await rt.pod_sandbox_status(sandbox_id)
            pod_ip = st.network.ip or ""
        if self._start_time is None:
            self._start_time = now()
        # ConfigMap and Secret updates reach mounted volumes (and the downward API its pod IP).
        try:
            _volumes.prepare(self.pod, self.pod_dir, refs, self.edged.host_ip, pod_ip)
        except SpecError as exc:
            log.warning("pod %s: volumes: %s", self.key, exc)
        containers = await rt.list_containers(sandbox_id)
        by_name: dict[str, list[cri.Container]] = {}
        for c in containers:
            by_name.setdefault(c.metadata.name, []).append(c)
        for instances in by_name.values():
            instances.sort(key=lambda c: c.metadata.attempt, reverse=True)
        obs = PodObservation(
            pod=self.pod, host_ip=self.edged.host_ip, pod_ip=pod_ip, start_time=self._start_time
        )
        policy = spec.get("restartPolicy") or "Always"
        # Init containers, one after another; regular containers only once all have succeeded.
        init_done = True
        for c in spec.get("initContainers") or []:
            o = await self._observe(c, by_name.get(c.get("name", ""), []))
            obs.init.append(o)
            if not init_done:
                continue
            cur = o.current
            if cur is None:
                init_done = False
                await self._start(sandbox_id, sandbox_cfg, c, 0, refs, pod_ip, init=True, obs=o)
            elif cur.state != cri.CONTAINER_EXITED:
                init_done = False
            elif cur.exit_code != 0:
                init_done = False
                if policy == "Never":
                    obs.init_failed = True
                else:
                    await self._restart(sandbox_id, sandbox_cfg, c, cur, refs, pod_ip, init=True, obs=o)
        for c in spec.get("containers") or []:
            o = await self._observe(c, by_name.get(c.get("name", ""), []))
            obs.containers.append(o)
            if not init_done or obs.init_failed:
                continue
            cur = o.current
            if cur is None:
                await self._start(sandbox_id, sandbox_cfg, c, 0, refs, pod_ip, init=False, obs=o)
                continue
            if cur.state == cri.CONTAINER_RUNNING:
                await self._watch_probes(c, cur, pod_ip, o)
            elif cur.state == cri.CONTAINER_EXITED:
                again = policy == "Always" or (policy == "OnFailure" and cur.exit_code != 0)
                if again:
                    await self._restart(sandbox_id, sandbox_cfg, c, cur, refs, pod_ip, init=False, obs=o)
        if obs.containers and all(
            o.current is not None and o.current.state == cri.CONTAINER_EXITED for o in obs.containers
        ):
            codes = [o.current.exit_code for o in obs.containers if o.current is not None]
            if policy == "Never" or (policy == "OnFailure" and all(code == 0 for code in codes)):
                obs.terminal = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        await self._prune(by_name)
        self.last_status = pod_status(obs, self.last_status)
        await self.report()
        return False

    async def _sandbox(self, refs: _podspec.References) -> tuple[str | None, cri.PodSandboxConfig | None]:
        rt = self.edged.runtime
        sandboxes = await rt.list_pod_sandboxes({POD_UID: self.uid, NODE_LABEL: self.edged.node})
        sandboxes.sort(key=lambda s: s.metadata.attempt, reverse=True)
        ready = [s for s in sandboxes if s.state == cri.SANDBOX_READY]
        if ready:
            for s in ready[1:]:
                await self._remove_sandbox(s.id)
            cfg = _podspec.sandbox_config(
                self.pod,
                self.edged.node,
                ready[0].metadata.attempt,
                self.pod_dir / "logs",
                self.edged.cgroup_driver,
                self.edged.cgroup_root,
            )
            return ready[0].id, cfg
        # No running sandbox: a new one, and its containers start again (their restart counts go on).
        attempt = sandboxes[0].metadata.attempt + 1 if sandboxes else 0
        for s in sandboxes:
            await self._remove_sandbox(s.id)
        try:
            _volumes.prepare(self.pod, self.pod_dir, refs, self.edged.host_ip)
        except SpecError as exc:
            self._set_all_waiting("CreateContainerConfigError", str(exc))
            self.event(WARNING, "Failed", f"Error: {exc}")
            return None, None
        (self.pod_dir / "logs").mkdir(parents=True, exist_ok=True)
        cfg = _podspec.sandbox_config(
            self.pod,
            self.edged.node,
            attempt,
            self.pod_dir / "logs",
            self.edged.cgroup_driver,
            self.edged.cgroup_root,
        )
        try:
            sandbox_id = await rt.run_pod_sandbox(cfg)
        except RpcError as exc:
            message = f"Failed to create pod sandbox: {exc.details or exc}"
            self._set_all_waiting("ContainerCreating", message)
            self.event(WARNING, "FailedCreatePodSandBox", message)
            self.last_status = pod_status(
                PodObservation(pod=self.pod, host_ip=self.edged.host_ip, sandbox_error=("", "")),
                self.last_status,
            )
            self.last_status.pop("reason", None)
            self.last_status.pop("message", None)
            return None, None
        self.stop_probers()
        self._statuses.clear()
        return sandbox_id, cfg

    def _set_all_waiting(self, reason: str, message: str) -> None:
        spec = self.pod.get("spec") or {}
        obs = PodObservation(pod=self.pod, host_ip=self.edged.host_ip, start_time=self._start_time)
        for c in spec.get("initContainers") or []:
            obs.init.append(Observed(c.get("name", ""), c.get("image", ""), waiting=(reason, message)))
        for c in spec.get("containers") or []:
            obs.containers.append(Observed(c.get("name", ""), c.get("image", ""), waiting=(reason, message)))
        self.last_status = pod_status(obs, self.last_status)

    async def _status_of(self, c: cri.Container) -> cri.ContainerStatus:
        cached = self._statuses.get(c.id)
        if cached is None or cached.state != c.state:
            cached = await self.edged.runtime.container_status(c.id)
            self._statuses[c.id] = cached
        return cached

    async def _observe(self, spec: Obj, instances: list[cri.Container]) -> Observed:
        name = spec.get("name", "")
        o = Observed(name=name, image=spec.get("image", ""))
        if instances:
            o.current = await self._status_of(instances[0])
        if len(instances) > 1:
            o.previous = await self._status_of(instances[1])
        o.waiting = self._waiting.get(name)
        if o.current is not None and o.current.state == cri.CONTAINER_RUNNING:
            o.waiting = None
            prober = self._probers.get(o.current.id)
            o.started = prober.started if prober else True
            o.ready = prober.ready if prober else True
        return o

    async def _watch_probes(self, spec: Obj, cur: cri.ContainerStatus, pod_ip: str, o: Observed) -> None:
        prober = self._probers.get(cur.id)
        if prober is None:
            if not any(spec.get(f"{k}Probe") for k in ("startup", "liveness", "readiness")):
                return
            prober = ContainerProber(self.edged.runtime, spec, cur.id, pod_ip or "127.0.0.1", self.wake.set)
            self._probers[cur.id] = prober
            o.ready = prober.ready
            o.started = prober.started
            return
        if not prober.live:
            message = prober.failure_message()
            self.event(WARNING, "Unhealthy", message)
            self.event(
                NORMAL, "Killing", f"Container {spec.get('name')} failed liveness probe, will be restarted"
            )
            prober.stop()
            del self._probers[cur.id]
            await self.edged.runtime.stop_container(cur.id, self._grace())
            self._statuses.pop(cur.id, None)

    def _grace(self) -> int:
        meta = self.pod.get("metadata") or {}
        spec = self.pod.get("spec") or {}
        g = meta.get("deletionGracePeriodSeconds")
        if g is None:
            g = spec.get("terminationGracePeriodSeconds", 30)
        return max(0, int(g))

    def _backoff(self, attempt: int) -> float:
        # The kubelet restarts at once after the first exit, then waits 10 s, 20 s, ... up to 300 s.
        if attempt <= 0:
            return 0.0
        return exponential(attempt - 1, self.edged.backoff_initial, self.edged.backoff_max)

    async def _restart(
        self,
        sandbox_id: str,
        sandbox_cfg: cri.PodSandboxConfig,
        spec: Obj,
        cur: cri.ContainerStatus,
        refs: _podspec.References,
        pod_ip: str,
        *,
        init: bool,
        obs: Observed,
    ) -> None:
        attempt = cur.metadata.attempt
        delay = self._backoff(attempt)
        finished = cur.finished_at / 1e9 if cur.finished_at else 0.0
        if time.time() - finished < delay:
            name = spec.get("name", "")
            message = (
                f"back-off {int(delay)}s restarting failed container={name} "
                f"pod={self.name}_{self.namespace}({self.uid})"
            )
            self._waiting[name] = ("CrashLoopBackOff", message)
            obs.waiting = self._waiting[name]
            self.event(WARNING, "BackOff", "Back-off restarting failed container " + name)
            return
        await self._start(sandbox_id, sandbox_cfg, spec, attempt + 1, refs, pod_ip, init=init, obs=obs)

    async def _start(
        self,
        sandbox_id: str,
        sandbox_cfg: cri.PodSandboxConfig,
        spec: Obj,
        attempt: int,
        refs: _podspec.References,
        pod_ip: str,
        *,
        init: bool,
        obs: Observed,
    ) -> None:
        rt = self.edged.runtime
        name = spec.get("name", "")
        image = spec.get("image", "")
        policy = spec.get("imagePullPolicy") or _default_pull_policy(image)

        def waiting(reason: str, message: str) -> None:
            self._waiting[name] = (reason, message)
            obs.waiting = (reason, message)

        present = await rt.image_present(image)
        if policy == "Never" and not present:
            message = f'Container image "{image}" is not present with pull policy of Never'
            waiting("ErrImageNeverPull", message)
            self.event(WARNING, "ErrImageNeverPull", message)
            return
        if policy == "Always" or not present:
            if time.monotonic() < self._pull_backoff.get(image, 0.0):
                waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
                return
            self.event(NORMAL, "Pulling", f'Pulling image "{image}"')
            try:
                await rt.pull_image(image)
            except RpcError as exc:
                message = f'Failed to pull image "{image}": {exc.details or exc}'
                waiting("ErrImagePull", message)
                self.event(WARNING, "Failed", message)
                self._pull_backoff[image] = time.monotonic() + 10.0
                return
        try:
            env = _podspec.environment(self.pod, spec, refs, self.edged.host_ip, pod_ip)
            cfg = _podspec.container_config(self.pod, spec, attempt, env, self.pod_dir, init=init)
        except SpecError as exc:
            waiting("CreateContainerConfigError", str(exc))
            self.event(WARNING, "Failed", f"Error: {exc}")
            return
        try:
            container_id = await rt.create_container(sandbox_id, cfg, sandbox_cfg)
        except RpcError as exc:
            waiting("CreateContainerError", exc.details or str(exc))
            self.event(WARNING, "Failed", f"Error: {exc.details or exc}")
            return
        try:
            await rt.start_container(container_id)
        except RpcError as exc:
            waiting("RunContainerError", exc.details or str(exc))
            self.event(WARNING, "Failed", f"Error: {exc.details or exc}")
            return
        self._waiting.pop(name, None)
        obs.waiting = None
        obs.current = await rt.container_status(container_id)
        self._statuses[container_id] = obs.current
        self.event(NORMAL, "Started", f"Started container {name}")

    async def _prune(self, by_name: dict[str, list[cri.Container]]) -> None:
        # Keep the newest exited instance of each container (its lastState), as maxPerPodContainerCount 1.
        for instances in by_name.values():
            for old in instances[2:]:
                if old.state == cri.CONTAINER_EXITED:
                    with contextlib.suppress(RpcError):
                        await self.edged.runtime.remove_container(old.id)
                    self._statuses.pop(old.id, None)

    async def _remove_sandbox(self, sandbox_id: str) -> None:
        rt = self.edged.runtime
        with contextlib.suppress(RpcError):
            await rt.stop_pod_sandbox(sandbox_id)
        with contextlib.suppress(RpcError):
            await rt.remove_pod_sandbox(sandbox_id)

    async def kill(self) -> None:
        """Stop every container (with the grace period), then the sandbox; remove them and the pod's files."""
        if self._killed:
            return
        self.stop_probers()
        rt = self.edged.runtime
        grace = self._grace()
        sandboxes = await rt.list_pod_sandboxes({POD_UID: self.uid, NODE_LABEL: self.edged.node})
        for s in sandboxes:
            running = [c for c in await rt.list_containers(s.id) if c.state == cri.CONTAINER_RUNNING]
            await asyncio.gather(*(rt.stop_container(c.id, grace) for c in running), return_exceptions=True)
        obs = PodObservation(pod=self.pod, host_ip=self.edged.host_ip, start_time=self._start_time)
        for s in sandboxes:
            for c in await rt.list_containers(s.id):
                with contextlib.suppress(RpcError):
                    st = await rt.container_status(c.id)
                    obs.containers.append(Observed(c.metadata.name, c.image.image, current=st))
            await self._remove_sandbox(s.id)
        if obs.containers:
            self.last_status = pod_status(obs, self.last_status)
        shutil.rmtree(self.pod_dir, ignore_errors=True)
        self._killed = True
        self.edged.remove_pod_cgroup(self.uid, self.key)
        if sandboxes:
            self.event(NORMAL, "Killing", "Stopped all containers of the pod")
            log.info("pod %s: stopped and removed", self.key)

    async def report(self) -> None:
        if self.last_status is None or self.deleted:
            return
        if (
            not self.dirty
            and self.sent_status is not None
            and without_times(self.sent_status) == without_times(self.last_status)
        ):
            return
        if await self.edged.send_status(self, self.last_status):
            self.sent_status = self.last_status
            self.dirty = False


__all__ = ["PodWorker", "rfc3339"]
