from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from _apiserver import embedded_kube

from cloudcore._app import CloudCore
from edgecore._node import EdgeNode
from edgecore.config import EdgeCoreConfig

from ._helpers import Cloud, cloud_config


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    with embedded_kube() as kube:
        core = CloudCore(cloud_config(), kube)
        await core.start()
        try:
            yield Cloud(kube, core)
        finally:
            await core.stop()


@pytest.fixture
async def edges() -> AsyncIterator[Callable[[EdgeCoreConfig], Awaitable[EdgeNode]]]:
    started: list[EdgeNode] = []

    async def start(cfg: EdgeCoreConfig) -> EdgeNode:
        node = EdgeNode(cfg)
        await node.start()
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop()
