"""Redis sink (``pushMethod.dbMethod.redis``) in KubeEdge's layout.

``ZADD <deviceName> <timestamp ms> <JSON reading>``; the password comes from the ``PASSWORD``
environment variable as in KubeEdge's template.
"""

from __future__ import annotations

import json
import os

from redis import asyncio as aioredis

from mappers.sdk._types import RedisPush
from mappers.sdk.sinks._buffer import Item, SinkBackend


class RedisSink(SinkBackend):
    def __init__(self, target: RedisPush) -> None:
        host, _, port = target.addr.rpartition(":")
        self.label = f"redis {target.addr}/{target.db}"
        self._client = aioredis.Redis(
            host=host or "127.0.0.1",
            port=int(port or 6379),
            db=target.db,
            password=os.environ.get("PASSWORD") or None,
            socket_connect_timeout=2,
            socket_timeout=5,
        )

    async def send(self, batch: list[Item]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for _, reading in batch:
            pipe.zadd(reading.device, {json.dumps(reading.as_json()): reading.timestamp_ms})
        await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()
