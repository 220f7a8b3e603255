"""What the edge tells cloudcore about its node: addresses, capacity and node info.

Sent on every connect and again only when it changes, so an idle node sends nothing but pings.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
from collections.abc import Callable
from typing import Any

from edgecore._router import ModuleRouter
from kubeshore.message import GROUP_RESOURCE, NULL_NAMESPACE, OP_UPDATE, RT_NODESTATUS, SOURCE_EDGED, Message

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


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


def node_status(cloud_host: str) -> dict[str, Any]:
    hostname = socket.gethostname()
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


class NodeStatusReporter:
    def __init__(
        self,
        node: str,
        cloud_host: str,
        router: ModuleRouter,
        check_period: float,
        metaserver_port: Callable[[], int | None] | None = None,
    ) -> None:
        self.node = node
        # Where this node's MetaServer listens, so the cloud can point default/kubernetes at it.
        self.metaserver_port = metaserver_port or (lambda: None)
        self.cloud_host = cloud_host
        self.router = router
        self.check_period = check_period
        self.last_sent: dict[str, Any] | None = None
        router.on_cloud_state(self._cloud_state)

    def message(self, status: dict[str, Any]) -> Message:
        content: dict[str, Any] = {"status": status}
        port = self.metaserver_port()
        if port:
            content["metaServerPort"] = port
        return Message.new(
            source=SOURCE_EDGED,
            group=GROUP_RESOURCE,
            operation=OP_UPDATE,
            resource=f"{NULL_NAMESPACE}/{RT_NODESTATUS}/{self.node}",
            content=content,
        )

    async def report(self, *, only_if_changed: bool) -> None:
        status = await asyncio.to_thread(node_status, self.cloud_host)
        if only_if_changed and status == self.last_sent:
            return
        if await self.router.to_cloud(self.message(status), queue_offline=False):
            self.last_sent = status

    async def _cloud_state(self, connected: bool) -> None:
        if connected:
            await self.report(only_if_changed=False)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.check_period)
            await self.report(only_if_changed=True)
