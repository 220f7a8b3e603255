"""The edge's Node, kept the way KubeEdge's edged (a kubelet) keeps it, through the cloud channel:

* on every connect the Node is registered: ``insert`` on ``default/node/<name>`` with the whole Node
  (labels, the MetaServer port annotation, status with a Ready condition); when it already exists,
  ``update`` on the same resource merges our labels and annotations into it;
* its status (addresses, capacity, node info, conditions) goes up as a strategic-merge patch of the
  status subresource, ``patch`` on ``default/nodepatch/<name>``: after registering, when it changes
  (checked every ``nodeStatusCheckPeriod``) and at least every ``nodeStatusReportPeriod``;
* its Lease ``kube-node-lease/<name>`` is created (``insert``) and renewed (``update``, with the
  resourceVersion the cloud last answered) every ``leaseRenewPeriod``, so that the cluster's node
  lifecycle controller (40 s grace) sees a healthy node between status reports.

Each request waits for the cloud's ``response`` (content ``{"Object": ..., "Err": ...}``, KubeEdge's
ObjectResp); requests are never queued while offline, they are regenerated on the next connect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import platform
import socket
import time
from collections.abc import Callable
from typing import Any

from edgecore._router import ModuleRouter
from kubeshore.message import GROUP_META, OP_INSERT, OP_PATCH, OP_QUERY, OP_UPDATE, SOURCE_EDGED, Message

log = logging.getLogger(__name__)

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}

# KubeEdge's edged registers Nodes in the namespace "default" of its resource strings.
NODE_NAMESPACE = "default"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40  # seconds, as the kubelet's nodeLeaseDurationSeconds
METASERVER_PORT_ANNOTATION = "kubeshore.io/metaserver-port"
_ANSWER_TIMEOUT = 10.0


def _memory_kib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def internal_ip(towards: str) -> str:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((towards, 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_status(cloud_host: str, node: str) -> dict[str, Any]:
    """What this machine is: addresses, capacity and node info (no conditions). Its Hostname address is
    the node name, as the kubelet's under KubeEdge (its hostname override is the node name)."""
    hostname = node
    mem = _memory_kib()
    cpus = str(os.cpu_count() or 1)
    resources = {"cpu": cpus, "memory": f"{mem}Ki", "pods": "110"}
    return {
        "addresses": [
            {"type": "InternalIP", "address": internal_ip(cloud_host)},
            {"type": "Hostname", "address": hostname},
        ],
        "capacity": resources,
        "allocatable": resources,
        "nodeInfo": {
            "architecture": _ARCH.get(platform.machine(), platform.machine()),
            "operatingSystem": platform.system().lower(),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "kubeletVersion": "v1.23.0-kubeshore",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def answer(msg: Message | None) -> tuple[dict[str, Any] | None, str | None]:
    """(object, error) from a cloud answer: KubeEdge's ObjectResp ``{"Object", "Err"}`` (Err holds a
    Kubernetes Status as ``ErrStatus``) or a plain ``"OK"``; error None when it succeeded."""
    if msg is None:
        return None, "no answer from the cloud"
    data = msg.content_data()
    if data == "OK":
        return None, None
    if not isinstance(data, dict):
        return None, f"unexpected answer {str(data)[:200]!r}"
    err = data.get("Err") or data.get("err")
    obj = data.get("Object") or data.get("object")
    if isinstance(err, dict) and err:
        status = err.get("ErrStatus") or err
        reason = status.get("reason") or status.get("message") or json.dumps(status)[:200]
        return obj if isinstance(obj, dict) else None, str(reason)
    if isinstance(err, str) and err:
        return None, err
    return obj if isinstance(obj, dict) else None, None


class NodeStatusReporter:
    def __init__(
        self,
        node: str,
        cloud_host: str,
        router: ModuleRouter,
        check_period: float,
        metaserver_port: Callable[[], int | None] | None = None,
        *,
        report_period: float = 300.0,
        lease_renew_period: float = 10.0,
        runtime: Callable[[], tuple[str, str]] | None = None,
    ) -> None:
        self.node = node
        # edged's container runtime: (version, why not reachable); None when edged is off.
        self.runtime = runtime
        # Where this node's MetaServer listens, so the cloud can point default/kubernetes at it.
        self.metaserver_port = metaserver_port or (lambda: None)
        self.cloud_host = cloud_host
        self.router = router
        self.check_period = check_period
        self.report_period = report_period
        self.lease_renew_period = lease_renew_period
        self.last_sent: dict[str, Any] | None = None
        self.last_report = 0.0
        self.registered = False
        self.lease_rv: str | None = None
        self.lease_renewals = 0
        self._node_uid: str | None = None
        self._transition = _now()
        self._ready = "True"
        self._session: asyncio.Task[None] | None = None
        router.on_cloud_state(self._cloud_state)

    # Messages ----------------------------------------------------------------------------------
    def _msg(self, operation: str, resource: str, content: Any) -> Message:
        return Message.new(
            source=SOURCE_EDGED, group=GROUP_META, operation=operation, resource=resource, content=content
        )

    def _labels(self, status: dict[str, Any]) -> dict[str, str]:
        info = status.get("nodeInfo") or {}
        return {
            "kubernetes.io/hostname": self.node,
            "kubernetes.io/arch": str(info.get("architecture", "")),
            "kubernetes.io/os": str(info.get("operatingSystem", "")),
            "node-role.kubernetes.io/edge": "",
            "node-role.kubernetes.io/agent": "",
        }

    def _annotations(self) -> dict[str, str]:
        port = self.metaserver_port()
        return {METASERVER_PORT_ANNOTATION: str(port)} if port else {}

    def _conditions(self) -> list[dict[str, Any]]:
        now = _now()
        status, reason, message = "True", "EdgeReady", "edge is posting ready status"
        if self.runtime is not None:
            version, error = self.runtime()
            if not version:
                # As the kubelet: not Ready until the container runtime answers.
                status, reason = "False", "KubeletNotReady"
                message = f"container runtime is down: {error or 'not reached yet'}"
        if status != self._ready:
            self._ready, self._transition = status, now
        return [
            {
                "type": "Ready",
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._transition,
            }
        ]

    def node_object(self, status: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": self._labels(status),
                "annotations": self._annotations(),
            },
            "status": {**status, "conditions": self._conditions()},
        }

    def lease_object(self) -> dict[str, Any]:
        md: dict[str, Any] = {"name": self.node, "namespace": LEASE_NAMESPACE}
        if self.lease_rv:
            md["resourceVersion"] = self.lease_rv
        else:
            md["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self._node_uid or ""}
            ]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": md,
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": _micro_now(),
            },
        }

    # Steps -------------------------------------------------------------------------------------
    async def register(self, status: dict[str, Any]) -> bool:
        """Insert the Node; if it exists, merge our labels and annotations into it."""
        resource = f"{NODE_NAMESPACE}/node/{self.node}"
        node = self.node_object(status)
        obj, err = answer(await self.router.request(self._msg(OP_INSERT, resource, node), _ANSWER_TIMEOUT))
        if err is not None and "exist" not in err.lower():
            log.warning("registering node %s failed: %s", self.node, err)
            return False
        if err is not None:
            update = {"apiVersion": "v1", "kind": "Node", "metadata": dict(node["metadata"])}
            reply = await self.router.request(self._msg(OP_UPDATE, resource, update), _ANSWER_TIMEOUT)
            _, uerr = answer(reply)
            if uerr is not None:
                log.warning("updating node %s failed: %s", self.node, uerr)
            obj = None
        if obj is not None:
            self._node_uid = (obj.get("metadata") or {}).get("uid") or self._node_uid
        if self._node_uid is None:
            queried, _ = answer(
                await self.router.request(self._msg(OP_QUERY, resource, None), _ANSWER_TIMEOUT)
            )
            if queried is not None:
                self._node_uid = (queried.get("metadata") or {}).get("uid")
        self.registered = True
        log.info("node %s registered", self.node)
        return True

    async def report(self, *, only_if_changed: bool) -> None:
        status = await asyncio.to_thread(node_status, self.cloud_host, self.node)
        if self.runtime is not None:
            status["nodeInfo"]["containerRuntimeVersion"] = self.runtime()[0]
        due = time.monotonic() - self.last_report >= self.report_period
        if not self.registered:
            if not await self.register(status):
                return
        elif only_if_changed and status == self.last_sent and not due:
            return
        patch = json.dumps({"status": {**status, "conditions": self._conditions()}})
        reply = await self.router.request(
            self._msg(OP_PATCH, f"{NODE_NAMESPACE}/nodepatch/{self.node}", patch), _ANSWER_TIMEOUT
        )
        _, err = answer(reply)
        if err is not None:
            log.warning("node %s: status patch failed: %s", self.node, err)
            if "not found" in err.lower():
                self.registered = False
            return
        self.last_sent = status
        self.last_report = time.monotonic()

    async def renew_lease(self) -> None:
        resource = f"{LEASE_NAMESPACE}/lease/{self.node}"
        if self.lease_rv is None:
            obj, err = answer(await self.router.request(self._msg(OP_QUERY, resource, None), _ANSWER_TIMEOUT))
            if err is None and obj is not None:
                self.lease_rv = (obj.get("metadata") or {}).get("resourceVersion")
        op = OP_UPDATE if self.lease_rv else OP_INSERT
        obj, err = answer(
            await self.router.request(self._msg(op, resource, self.lease_object()), _ANSWER_TIMEOUT)
        )
        if err is not None or obj is None:
            log.warning("node %s: lease %s failed: %s", self.node, op, err or "no object in the answer")
            self.lease_rv = None
            return
        self.lease_rv = (obj.get("metadata") or {}).get("resourceVersion")
        self.lease_renewals += 1

    # Loops -------------------------------------------------------------------------------------
    async def _while_connected(self) -> None:
        self.registered = False
        try:
            await self.report(only_if_changed=False)
        except Exception:
            log.exception("node %s: registering and reporting status failed", self.node)
        while True:
            try:
                await self.renew_lease()
            except Exception:
                log.exception("node %s: lease renewal failed", self.node)
            await asyncio.sleep(self.lease_renew_period)

    async def _cloud_state(self, connected: bool) -> None:
        if self._session is not None:
            self._session.cancel()
            self._session = None
        if connected:
            self._session = asyncio.create_task(self._while_connected(), name="node-upkeep")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_period)
            if self._session is not None:
                try:
                    await self.report(only_if_changed=True)
                except Exception:
                    log.exception("node %s: reporting status failed", self.node)
