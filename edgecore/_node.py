"""An edge node: store, module router, metamanager, node status and EdgeHub, wired together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from edgecore._devices import DeviceModule
from edgecore._freememory import release_periodically
from edgecore._nodestatus import NodeStatusReporter
from edgecore._router import ModuleRouter
from edgecore.config import EdgeCoreConfig
from edgecore.edgehub import Address, EdgeHub
from edgecore.metamanager import EdgeStore, MetaManager
from kubeshore.observability import ObservabilityServer

log = logging.getLogger("edgecore")

_RELEASE_MEMORY_EVERY = 10.0  # seconds; a trim takes ~2 ms


class EdgeNode:
    def __init__(self, cfg: EdgeCoreConfig) -> None:
        self.cfg = cfg
        self.router = ModuleRouter()
        self.store = EdgeStore(cfg.database.path)
        self.metamanager = MetaManager(self.store, self.router)
        self.hub = EdgeHub(cfg, self.router, self.store)
        self.status = NodeStatusReporter(
            cfg.node_name,
            Address.parse(cfg.edge_hub.server).host,
            self.router,
            cfg.node_status_check_period,
            metaserver_port=self._metaserver_port,
            report_period=cfg.node_status_report_period,
            lease_renew_period=cfg.lease_renew_period,
        )
        self.devices = DeviceModule(cfg, self.router, self.store)
        self.edged: Any = None
        if cfg.edged.enable:
            # Imported only when enabled: the CRI messages cost memory a device-only node does not need.
            from edgecore._nodestatus import internal_ip
            from edgecore.edged import Edged

            e = cfg.edged
            self.edged = Edged(
                node=cfg.node_name,
                store=self.store,
                router=self.router,
                runtime_endpoint=e.tailored_kubelet_config.container_runtime_endpoint,
                root=e.root_directory or cfg.data_dir / "edged",
                host_ip=internal_ip(Address.parse(cfg.edge_hub.server).host),
                cgroup_driver=e.tailored_kubelet_config.cgroup_driver,
                cgroup_root=e.tailored_kubelet_config.cgroup_root,
                runtime_timeout=e.tailored_kubelet_config.runtime_request_timeout,
                backoff_initial=e.restart_backoff_initial,
                backoff_max=e.restart_backoff_max,
            )
        if self.edged is not None:
            edged = self.edged
            self.status.runtime = lambda: (edged.runtime_version, edged.runtime_error)
        self.metaserver: Any = None
        self.observability: ObservabilityServer | None = None
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self.cfg.meta_server.enable:
            # Imported only when enabled: kubeapi brings aiohttp.
            from edgecore.metamanager.metaserver import MetaServer

            ms = self.cfg.meta_server
            token_file = ms.token_file or self.cfg.data_dir / "metaserver.token"
            self.metaserver = MetaServer(self.store, ms.address, ms.port, token_file=token_file)
            await self.metaserver.start()
        await self.devices.start()
        if self.edged is not None:
            await self.edged.start()
        if self.cfg.metrics.enable:
            from edgecore._metrics import node_health, node_registry

            m = self.cfg.metrics
            self.observability = ObservabilityServer(
                node_registry(self), node_health(self), m.address, m.port
            )
            await self.observability.start()
        self._tasks = [
            asyncio.create_task(self.metamanager.run(), name="metamanager"),
            asyncio.create_task(self.hub.run(), name="edgehub"),
            asyncio.create_task(self.status.run(), name="nodestatus"),
            asyncio.create_task(release_periodically(_RELEASE_MEMORY_EVERY), name="free-memory"),
        ]
        self.started = True
        log.info("edgecore %s started (store %s)", self.cfg.node_name, self.cfg.database.path)

    def _metaserver_port(self) -> int | None:
        if self.metaserver is not None:
            return int(self.metaserver.port)
        return self.cfg.meta_server.port if self.cfg.meta_server.enable else None

    def ports(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.metaserver is not None:
            out["metaServerPort"] = self.metaserver.port
        if self.observability is not None:
            out["metricsPort"] = self.observability.port
        return out

    async def stop(self) -> None:
        self.started = False
        if self.observability is not None:
            await self.observability.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.metaserver is not None:
            await self.metaserver.stop()
        await self.devices.stop()
        if self.edged is not None:
            await self.edged.stop()
        self.store.close()
