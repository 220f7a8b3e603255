"""The container runtime, spoken to through CRI v1 (containerd's ``RuntimeService`` and ``ImageService``).

Calls go through ``dmi.rpc.Channel``, the edge's one gRPC client: containerd speaks gRPC over a Unix
socket exactly as a mapper does, so edgecore needs no second gRPC stack for it.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

from cri.v1 import api_pb2 as cri
from dmi.rpc import Channel, RpcError, StatusCode

R = TypeVar("R", bound=Message)

_RUNTIME = "/runtime.v1.RuntimeService/"
_IMAGES = "/runtime.v1.ImageService/"


def socket_path(endpoint: str) -> str:
    """``unix:///run/containerd/containerd.sock`` -> ``/run/containerd/containerd.sock``."""
    if endpoint.startswith("unix://"):
        return endpoint[len("unix://") :]
    if "://" in endpoint:
        raise ValueError(f"container runtime endpoint {endpoint!r}: only unix:// sockets are supported")
    return endpoint


class Runtime:
    """A CRI client; every method raises :class:`dmi.rpc.RpcError` on failure."""

    def __init__(self, endpoint: str, *, timeout: float = 120.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = Channel(socket_path(endpoint), max_message_size=16 << 20)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, path: str, request: Message, response: type[R], deadline: float | None = None) -> R:
        return await self._channel.unary(path, request, response, timeout=deadline or self.timeout)

    async def version(self) -> cri.VersionResponse:
        return await self._call(_RUNTIME + "Version", cri.VersionRequest(), cri.VersionResponse, 10.0)

    async def run_pod_sandbox(self, config: cri.PodSandboxConfig) -> str:
        req = cri.RunPodSandboxRequest(config=config)
        return (await self._call(_RUNTIME + "RunPodSandbox", req, cri.RunPodSandboxResponse)).pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        req = cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call(_RUNTIME + "StopPodSandbox", req, cri.StopPodSandboxResponse)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        req = cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id)
        await self._call(_RUNTIME + "RemovePodSandbox", req, cri.RemovePodSandboxResponse)

    async def pod_sandbox_status(self, sandbox_id: str) -> cri.PodSandboxStatus:
        req = cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        return (await self._call(_RUNTIME + "PodSandboxStatus", req, cri.PodSandboxStatusResponse)).status

    async def list_pod_sandboxes(self, labels: dict[str, str] | None = None) -> list[cri.PodSandbox]:
        req = cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=labels or {}))
        return list((await self._call(_RUNTIME + "ListPodSandbox", req, cri.ListPodSandboxResponse)).items)

    async def create_container(
        self, sandbox_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig
    ) -> str:
        req = cri.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
        return (await self._call(_RUNTIME + "CreateContainer", req, cri.CreateContainerResponse)).container_id

    async def start_container(self, container_id: str) -> None:
        req = cri.StartContainerRequest(container_id=container_id)
        await self._call(_RUNTIME + "StartContainer", req, cri.StartContainerResponse)

    async def stop_container(self, container_id: str, grace_seconds: int) -> None:
        req = cri.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        await self._call(
            _RUNTIME + "StopContainer", req, cri.StopContainerResponse, grace_seconds + self.timeout
        )

    async def remove_container(self, container_id: str) -> None:
        req = cri.RemoveContainerRequest(container_id=container_id)
        await self._call(_RUNTIME + "RemoveContainer", req, cri.RemoveContainerResponse)

    async def list_containers(self, sandbox_id: str | None = None) -> list[cri.Container]:
        flt = cri.ContainerFilter(pod_sandbox_id=sandbox_id or "")
        req = cri.ListContainersRequest(filter=flt)
        return list(
            (await self._call(_RUNTIME + "ListContainers", req, cri.ListContainersResponse)).containers
        )

    async def container_status(self, container_id: str) -> cri.ContainerStatus:
        req = cri.ContainerStatusRequest(container_id=container_id)
        return (await self._call(_RUNTIME + "ContainerStatus", req, cri.ContainerStatusResponse)).status

    async def exec_sync(self, container_id: str, cmd: list[str], seconds: int) -> cri.ExecSyncResponse:
        req = cri.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=seconds)
        return await self._call(_RUNTIME + "ExecSync", req, cri.ExecSyncResponse, seconds + 10.0)

    async def image_present(self, image: str) -> bool:
        req = cri.ImageStatusRequest(image=cri.ImageSpec(image=image))
        resp = await self._call(_IMAGES + "ImageStatus", req, cri.ImageStatusResponse, 30.0)
        return bool(resp.image.id)

    async def pull_image(self, image: str) -> str:
        req = cri.PullImageRequest(image=cri.ImageSpec(image=image))
        return (await self._call(_IMAGES + "PullImage", req, cri.PullImageResponse)).image_ref


def is_not_found(exc: RpcError) -> bool:
    return exc.code == StatusCode.NOT_FOUND
