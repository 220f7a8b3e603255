"""HTTP push (``pushMethod.http``): one JSON ``POST`` per reading.

KubeEdge's template posts form data ``<property>=<value>&time=...``; kubeshore posts the same JSON
object as the MQTT sink, ``Content-Type: application/json``.
"""

from __future__ import annotations

import aiohttp

from mappers.sdk._types import HttpPush
from mappers.sdk.sinks._buffer import Item, SinkBackend


def push_url(target: HttpPush) -> str:
    host = target.host_name if "://" in target.host_name else f"http://{target.host_name}"
    path = target.request_path if target.request_path.startswith("/") else f"/{target.request_path}"
    return f"{host.rstrip('/')}:{target.port}{path}"


class HttpSink(SinkBackend):
    def __init__(self, base: str) -> None:
        self.label = f"http {base}"
        self._session: aiohttp.ClientSession | None = None

    async def send(self, batch: list[Item]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        for target, reading in batch:
            assert isinstance(target, HttpPush)
            timeout = aiohttp.ClientTimeout(total=(target.timeout_ms or 5000) / 1000)
            async with self._session.post(push_url(target), json=reading.as_json(), timeout=timeout) as resp:
                if resp.status >= 300:
                    raise ConnectionError(f"{push_url(target)} answered {resp.status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
