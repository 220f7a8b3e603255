"""The embedded API server: SQLite store + kubeapi + controllers + TLS, in one object."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from cloudcore.apiserver._admission import DeviceAdmission
from cloudcore.apiserver._controllers import Controllers
from cloudcore.apiserver._security import Credentials
from cloudcore.apiserver._store import SQLiteStore
from kubeapi.builtins import builtin_types
from kubeapi.errors import APIError
from kubeapi.objects import ObjectService
from kubeapi.resources import Registry
from kubeapi.server import Authorizer, KubeAPI
from kubeshore import filemodes

# What the server keeps in its data directory (docs/apiserver.md), all owner-only.
DATA_FILES = ("apiserver.db", "apiserver.db-wal", "apiserver.db-shm", "pki", "admin.kubeconfig")

log = logging.getLogger(__name__)

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBERNETES_SERVICE_IP = "10.96.0.1"


class EmbeddedAPIServer:
    """``async with EmbeddedAPIServer(data_dir) as server:`` serves HTTPS until the block ends.

    ``server.kubeconfig`` is the admin kubeconfig (also written to ``data_dir/admin.kubeconfig``),
    ``server.port`` the port actually bound (``port=0`` picks a free one).
    """

    def __init__(
        self,
        data_dir: str | Path,
        bind: str = "127.0.0.1",
        port: int = 6443,
        *,
        authorize: Authorizer | None = None,
        bookmark_interval: float = 30.0,
        event_log_size: int = 50_000,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.bind = bind
        self.requested_port = port
        self.port = 0
        self.registry = Registry()
        self.registry.add(*builtin_types())
        self.store = SQLiteStore(self.data_dir / "apiserver.db", self.registry, event_log_size=event_log_size)
        admission = DeviceAdmission(self.registry)
        self.service = ObjectService(self.store, self.registry, admit=admission)
        admission.service = self.service
        self.controllers = Controllers(self.store, self.registry, self.service)
        self._authorize = authorize
        self._bookmark_interval = bookmark_interval
        self._runner: web.AppRunner | None = None
        self.api: KubeAPI | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "", "::") else self.bind
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    async def __aenter__(self) -> EmbeddedAPIServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        # The store holds every Secret, kubeedge/casecret (the edge CA key) among them.
        filemodes.secure_data_dir(self.data_dir, DATA_FILES)
        credentials = await asyncio.to_thread(Credentials, self.data_dir / "pki")
        ssl_context = await asyncio.to_thread(credentials.server_context, self.bind)
        await self.store.open()
        await self.controllers.start()
        self.api = KubeAPI(
            self.store,
            self.registry,
            service=self.service,
            authenticate=credentials.authenticate,
            authorize=self._authorize,
            bookmark_interval=self._bookmark_interval,
        )
        self._runner = web.AppRunner(
            self.api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.bind else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.bind, self.requested_port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=ssl_context)
        await site.start()
        await self._bootstrap()
        credentials.kubeconfig(self.url).write(self.kubeconfig)
        log.info("serving on %s (kubeconfig %s)", self.url, self.kubeconfig)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.controllers.stop()
        await self.store.close()

    async def _ensure(
        self, group: str, version: str, plural: str, namespace: str, obj: dict[str, Any]
    ) -> None:
        resource = self.registry.get(group, version, plural)
        assert resource is not None
        current = await self.store.get(resource, namespace, obj["metadata"]["name"])
        if current is None:
            try:
                await self.service.create(resource, namespace, obj)
            except APIError as exc:
                if exc.code != 409:
                    raise
            return
        merged = current.object()
        changed = False
        for key, value in obj.items():
            if key != "metadata" and merged.get(key) != value:
                merged[key] = value
                changed = True
        if changed:
            await self.service.update(resource, namespace, obj["metadata"]["name"], merged)

    async def _bootstrap(self) -> None:
        for name in BOOTSTRAP_NAMESPACES:
            await self._ensure("", "v1", "namespaces", "", {"metadata": {"name": name}})
        address = "127.0.0.1" if self.bind in ("0.0.0.0", "", "::") else self.bind
        labels = {"component": "apiserver", "provider": "kubernetes"}
        await self._ensure(
            "",
            "v1",
            "services",
            "default",
            {
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": KUBERNETES_SERVICE_IP,
                    "clusterIPs": [KUBERNETES_SERVICE_IP],
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}],
                    "sessionAffinity": "None",
                },
            },
        )
        await self._ensure(
            "",
            "v1",
            "endpoints",
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
                },
                "subsets": [
                    {
                        "addresses": [{"ip": address}],
                        "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
                    }
                ],
            },
        )
        await self._ensure(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {
                        "kubernetes.io/service-name": "kubernetes",
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
            },
        )
