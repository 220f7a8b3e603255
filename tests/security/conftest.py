from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from channel._helpers import Cloud, cloud_config
from channel.memkube import MemoryKube

from cloudcore._app import CloudCore


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    kube = MemoryKube()
    core = CloudCore(cloud_config(), kube)
    await core.start()
    try:
        yield Cloud(kube, core)
    finally:
        await core.stop()
        kube.close()
