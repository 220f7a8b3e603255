"""EndpointSlice controller: for each Service with a selector, one EndpointSlice (IPv4, up to 1,000
endpoints) of the Pods it selects that have an IP, with ready/serving/terminating conditions, nodeName
and targetRef, labelled and owned as kube-controller-manager's are. The node-group filter
(``nodegroup.endpointfilter``) then gives each edge node its own group's endpoints."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cloudcore.workloads._common import (
    Obj,
    key_of,
    owned_by,
    owner_reference,
    pod_ready,
    split_key,
    terminating,
)
from kubeapi.selectors import LabelSelector
from kubeclient import ENDPOINTSLICES, PODS, SERVICES, ApiError, Informer, Kube, WorkQueue, run_controller

log = logging.getLogger("cloudcore.workloads")

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
_MAX_ENDPOINTS = 1000


def _target_port(port: Obj, pod: Obj) -> int | None:
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == port.get("protocol", "TCP"):
                return int(p.get("containerPort", 0))
    return None


def desired_slice(service: Obj, pods: list[Obj]) -> Obj:
    spec = service.get("spec") or {}
    md = service.get("metadata") or {}
    selector = LabelSelector.from_match({"matchLabels": spec.get("selector") or {}})
    endpoints = []
    chosen = []
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        pmd = pod.get("metadata") or {}
        st = pod.get("status") or {}
        if pmd.get("namespace") != md.get("namespace") or not selector.matches(pmd.get("labels") or {}):
            continue
        if not st.get("podIP") or st.get("phase") in ("Succeeded", "Failed"):
            continue
        ready = pod_ready(pod) and not terminating(pod)
        endpoints.append(
            {
                "addresses": [st["podIP"]],
                "conditions": {"ready": ready, "serving": pod_ready(pod), "terminating": terminating(pod)},
                "nodeName": (pod.get("spec") or {}).get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": pmd.get("namespace"),
                    "name": pmd.get("name"),
                    "uid": pmd.get("uid"),
                },
            }
        )
        chosen.append(pod)
        if len(endpoints) >= _MAX_ENDPOINTS:
            break
    ports = []
    for port in spec.get("ports") or []:
        resolved = next((t for t in (_target_port(port, p) for p in chosen) if t is not None), None)
        if resolved is None and chosen:
            continue
        out = {"name": port.get("name", ""), "protocol": port.get("protocol", "TCP"), "port": resolved}
        if port.get("appProtocol"):
            out["appProtocol"] = port["appProtocol"]
        ports.append(out)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{md.get('name')}-",
            "namespace": md.get("namespace"),
            "labels": {SERVICE_NAME: md.get("name"), MANAGED_BY: CONTROLLER},
            "ownerReferences": [owner_reference({"apiVersion": "v1", "kind": "Service", **service})],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


class EndpointSliceController:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.services = Informer(kube, SERVICES, self._on_service)
        self.pods = Informer(kube, PODS, self._on_pod)
        self.slices = Informer(
            kube, ENDPOINTSLICES, self._on_slice, label_selector=f"{MANAGED_BY}={CONTROLLER}"
        )
        self.queue = WorkQueue("endpointslice", self.reconcile)

    async def _on_service(self, event: str, obj: Obj, old: Obj | None) -> None:
        self.queue.add(key_of(obj))

    async def _on_pod(self, event: str, obj: Obj, old: Obj | None) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        labels = [(obj.get("metadata") or {}).get("labels") or {}]
        if old is not None:
            labels.append((old.get("metadata") or {}).get("labels") or {})
        for svc in self.services.values():
            smd = svc.get("metadata") or {}
            sel = (svc.get("spec") or {}).get("selector")
            if smd.get("namespace") == ns and sel and any(sel.items() <= lab.items() for lab in labels):
                self.queue.add(key_of(svc))

    async def _on_slice(self, event: str, obj: Obj, old: Obj | None) -> None:
        svc = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME)
        if svc:
            self.queue.add(f"{(obj.get('metadata') or {}).get('namespace')}/{svc}")

    async def run(self, stop: asyncio.Event) -> None:
        await run_controller(
            stop,
            self.queue,
            (self.services, self.pods, self.slices),
            lambda: [key_of(s) for s in self.services.values()],
        )

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(name, ns)
        existing = [
            s
            for s in self.slices.values()
            if (s.get("metadata") or {}).get("namespace") == ns
            and ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME) == name
        ]
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            return  # gone (its slices follow by garbage collection) or managed by hand
        existing = [s for s in existing if owned_by(s, svc)]
        want = desired_slice(svc, self.pods.values())
        if not existing:
            await self._call(self.kube.create, ENDPOINTSLICES, want, ns)
            return
        keep, extra = existing[0], existing[1:]
        for s in extra:
            await self._call(self.kube.delete, ENDPOINTSLICES, s["metadata"]["name"], ns)
        if keep.get("endpoints") != want["endpoints"] or keep.get("ports") != want["ports"]:
            body = dict(keep)
            body["endpoints"] = want["endpoints"]
            body["ports"] = want["ports"]
            await self._call(self.kube.replace, ENDPOINTSLICES, body, ns)

    async def _call(self, fn: Any, *args: Any) -> None:
        try:
            await self.kube.run(fn, *args)
        except ApiError as exc:
            if exc.status not in (404, 409):
                log.warning("endpointslice: %s", exc)
