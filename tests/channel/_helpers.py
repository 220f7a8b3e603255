from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _apiserver import EmbeddedKube

from cloudcore._app import CloudCore
from cloudcore.config import CloudCoreConfig
from edgecore.config import EdgeCoreConfig
from edgecore.join import main as join_main
from kubeshore.config import load_config


async def eventually(check: Callable[[], Any], within: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {last!r})")
        await asyncio.sleep(interval)


class Cloud:
    def __init__(self, kube: EmbeddedKube, core: CloudCore) -> None:
        self.kube = kube
        self.core = core

    @property
    def ws_port(self) -> int:
        assert self.core.hub is not None
        return self.core.hub.port

    @property
    def https_port(self) -> int:
        assert self.core.certs is not None
        return self.core.certs.port


def cloud_config(**overrides: Any) -> CloudCoreConfig:
    base: dict[str, Any] = {
        "kubeconfig": "unused-in-process",
        "bind": "127.0.0.1",
        "websocketPort": 0,
        "httpsPort": 0,
        "metricsPort": 0,
        "nodeGracePeriod": 2.0,
        "keepaliveTimeout": 3.0,
        "nodeStatusUpdatePeriod": 1.0,
        "ackTimeout": 1.0,
        "syncFlushInterval": 0.05,
        "resyncPeriod": 30.0,
    }
    base.update(overrides)
    return CloudCoreConfig.model_validate(base)


async def join(cloud: Cloud, name: str, data_dir: Path, token: str | None = None) -> int:
    args = ["--cloudcore", f"127.0.0.1:{cloud.ws_port}", "--https-port", str(cloud.https_port)]
    args += ["--token", token or cloud.core.token, "--node-name", name, "--data-dir", str(data_dir)]
    return await asyncio.to_thread(join_main, args)


def edge_config(data_dir: Path) -> EdgeCoreConfig:
    cfg = load_config(EdgeCoreConfig, data_dir / "edgecore.yaml")
    cfg.meta_server.enable = False
    cfg.metrics.port = 0
    cfg.edge_hub.heartbeat = 0.5
    cfg.edge_hub.reconnect_initial = 0.1
    cfg.edge_hub.reconnect_max = 0.5
    return cfg
