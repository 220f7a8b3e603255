"""Wiring of one mapper process: driver + device runtime + DMI server/client + reporter + sinks + REST.

``run(Driver, config)`` is all a mapper's ``main`` needs; ``MapperApp`` lets tests and embedders
start and stop the same thing inside a running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from mappers.sdk._device import RuntimeSettings
from mappers.sdk._dmi_client import DmiClient, MapperIdentity
from mappers.sdk._dmi_server import DmiServer
from mappers.sdk._mapper import Mapper
from mappers.sdk._report import Reporter
from mappers.sdk._types import DeviceConfig, DeviceModel
from mappers.sdk.config import MapperConfig
from mappers.sdk.driver import Driver
from mappers.sdk.rest import RestApi
from mappers.sdk.sinks import SinkHub

log = logging.getLogger("mappers")


class MapperApp:
    def __init__(self, driver_cls: type[Driver], config: MapperConfig) -> None:
        protocol = config.common.protocol or driver_cls.protocol
        if not protocol:
            raise ValueError(
                f"{driver_cls.__name__} sets no protocol and the configuration has no common.protocol"
            )
        if config.common.protocol and driver_cls.protocol and config.common.protocol != driver_cls.protocol:
            log.warning(
                "common.protocol %r overrides the driver's protocol %r",
                config.common.protocol,
                driver_cls.protocol,
            )
        self.config = config
        self.protocol = protocol
        self.name = config.common.name or f"{protocol}-mapper"
        self.socket_path = config.mapper_socket(self.name)
        rt = config.runtime
        settings = RuntimeSettings(
            read_timeout_s=rt.read_timeout_ms / 1000,
            open_timeout_s=rt.open_timeout_ms / 1000,
            reconnect_min_s=rt.reconnect_min_ms / 1000,
            reconnect_max_s=rt.reconnect_max_ms / 1000,
        )
        self.client = DmiClient(
            config.edgecore_socket(),
            MapperIdentity(
                self.name, config.common.version, config.common.api_version, protocol, self.socket_path
            ),
            timeout_s=rt.edgecore_timeout_ms / 1000,
            retry_max_s=rt.register_retry_max_ms / 1000,
        )
        self.reporter = Reporter(
            self.client.report_status,
            self.client.report_state,
            self.client.report_failed,
            window_s=rt.report_batch_window_ms / 1000,
            concurrency=rt.report_concurrency,
        )
        self.sinks = SinkHub(capacity=config.sinks.buffer, mqtt=config.sinks.mqtt)
        driver_class = driver_cls if driver_cls.protocol == protocol else _with_protocol(driver_cls, protocol)
        self.mapper = Mapper(
            driver_class,
            settings=settings,
            sinks=self.sinks,
            reporter=self.reporter,
            driver_options=config.driver,
        )
        self.server = DmiServer(self.mapper, self.socket_path)
        token = b""
        if config.rest.token_file:
            token = Path(config.rest.token_file).read_bytes().strip()
            if not token:
                raise ValueError(f"rest.token_file {config.rest.token_file} is empty")
        self.rest = RestApi(self.mapper, self._health, token=token, readiness=self.client.not_ready)
        self.rest_port = 0
        self._tasks: list[asyncio.Task[None]] = []

    def _health(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "registered": self.client.registered.is_set(),
            "registrations": self.client.registrations,
            "pendingReports": self.reporter.pending,
            "sinks": {
                s.backend.label: {"up": s.up, "buffered": s.buffered, "dropped": s.dropped, "sent": s.sent}
                for s in self.sinks.sinks()
            },
        }

    async def _on_registered(self, models: list[DeviceModel], devices: list[DeviceConfig]) -> None:
        mine = [d for d in devices if not d.protocol_name or d.protocol_name == self.protocol]
        await self.mapper.reconcile(models, mine)
        self.reporter.resend_states(list(self.mapper.devices.values()))
        self.reporter.ready.set()

    def _on_lost(self) -> None:
        self.reporter.ready.clear()

    async def start(self) -> None:
        sqlite = self.config.sinks.sqlite
        if sqlite is not None:
            from mappers.sdk.sinks.sqlite import SqliteSink

            self.sinks.add_local(SqliteSink(sqlite.path, retention_s=sqlite.retention_hours * 3600))
        await self.server.start()
        if self.config.rest.enabled:
            self.rest_port = await self.rest.start(self.config.rest.host, self.config.rest_port())
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.reporter.run(), name="reporter"),
            loop.create_task(
                self.client.run(self._on_registered, on_lost=self._on_lost), name="registration"
            ),
        ]
        log.info("mapper %s (protocol %s) started", self.name, self.protocol)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.rest.stop()
        await self.server.stop()
        await self.mapper.close()
        await self.client.close()
        log.info("mapper %s stopped", self.name)

    async def serve(self) -> None:
        """Start, run until SIGINT/SIGTERM, stop."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def _with_protocol(driver_cls: type[Driver], protocol: str) -> type[Driver]:
    return type(driver_cls.__name__, (driver_cls,), {"protocol": protocol})


def run(
    driver_cls: type[Driver], config: MapperConfig | None = None, *, log_format: str | None = None
) -> None:
    """Run a mapper until SIGINT/SIGTERM: ``run(MyDriver)`` in a mapper's ``__main__``."""
    from kubeshore.logs import setup_logging

    cfg = config or MapperConfig()
    setup_logging(cfg.log_level, log_format)
    asyncio.run(MapperApp(driver_cls, cfg).serve())
