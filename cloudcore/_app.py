"""The cloudcore process: identity, cloudhub, certificate server, edgecontroller, sync, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from cloudcore._identity import current_token, has_certificate, load_or_create_ca, record_certificate
from cloudcore._metrics import Metrics
from cloudcore._resources import CLUSTEROBJECTSYNCS
from cloudcore.admission import WEBHOOK_SERVICE_NAMES, CABundleKeeper, WebhookServer
from cloudcore.cloudhub import CertServer, CloudHub, CloudHubSettings
from cloudcore.config import CloudCoreConfig
from cloudcore.devicecontroller import DeviceController
from cloudcore.edgecontroller import (
    EdgeController,
    EdgeEvents,
    NodeGroupViews,
    NodeLifecycle,
    PodStatusWriter,
)
from cloudcore.sync import NodeSyncer, ObjectSyncStore
from kubeclient import CRDS, NODES, ApiError, EventRecorder, Kube
from kubeshore import filemodes, pki

log = logging.getLogger("cloudcore")

STATE_FILE = "cloudcore.json"


def _server_names(cfg: CloudCoreConfig) -> list[str]:
    names = ["localhost", "127.0.0.1", socket.gethostname(), *cfg.advertise_address]
    if cfg.bind not in ("0.0.0.0", "::", ""):
        names.append(cfg.bind)
    return list(dict.fromkeys(names))


def _serving_files(
    ca: pki.CertificateAuthority, names: list[str], workdir: Path, stem: str
) -> tuple[Path, Path]:
    """A fresh server certificate of cloudcore's CA for ``names``: ``stem``.crt and ``stem``.key (0600)
    in the 0700 ``workdir``."""
    cert, key = ca.issue("cloudcore", organization="KubeEdge", server_names=names, server=True)
    filemodes.private_dir(workdir)
    cert_file, key_file = workdir / f"{stem}.crt", workdir / f"{stem}.key"
    cert_file.write_bytes(pki.cert_to_pem(cert) + pki.cert_to_pem(ca.cert))
    pki.write_private(key_file, pki.key_to_pem(key))
    return cert_file, key_file


def _server_context(
    files: tuple[Path, Path], ca: pki.CertificateAuthority, mode: ssl.VerifyMode
) -> ssl.SSLContext:
    """``mode``: client certificates of cloudcore's CA required, optional, or not asked for."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    c.load_cert_chain(*files)
    c.load_verify_locations(cadata=pki.cert_to_pem(ca.cert).decode())
    c.verify_mode = mode
    return c


def _ssl_contexts(
    ca: pki.CertificateAuthority, names: list[str], workdir: Path
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    files = _serving_files(ca, names, workdir, "server")
    return _server_context(files, ca, ssl.CERT_REQUIRED), _server_context(files, ca, ssl.CERT_OPTIONAL)


def _served(kube: Kube, group: str, version: str) -> set[str]:
    """The resources ``group/version`` serves (discovery, which every authenticated user may read)."""
    try:
        listing = kube.request("GET", f"/apis/{group}/{version}")
    except ApiError as exc:
        if exc.status == 404:
            return set()
        raise
    return {str(r.get("name")) for r in (listing or {}).get("resources") or []}


def install_crds(kube: Kube, timeout: float = 30.0) -> int:
    """Create every CRD shipped in ``crds/*.yaml`` that the cluster does not serve; wait for ObjectSync.

    What is served is read from discovery first, so on a cluster where an administrator applied the
    CRDs cloudcore needs no right on customresourcedefinitions at all (deploy/ grants none)."""
    import importlib.resources
    import time

    missing: list[dict[str, Any]] = []
    served: dict[tuple[str, str], set[str]] = {}
    for entry in sorted(importlib.resources.files("crds").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(entry.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in (v["name"] for v in spec["versions"] if v.get("served", True)):
                key = (spec["group"], version)
                if key not in served:
                    served[key] = _served(kube, *key)
                if spec["names"]["plural"] not in served[key]:
                    missing.append(doc)
                    break
    n = 0
    for doc in missing:
        try:
            kube.create(CRDS, doc)
            n += 1
        except ApiError as exc:
            if exc.status == 403:
                names = ", ".join(d["metadata"]["name"] for d in missing)
                raise ApiError(exc.status, f"not served: {names}; {exc.message}", exc.reason) from exc
            if exc.status != 409:
                raise
    deadline = time.monotonic() + timeout
    while True:
        try:
            kube.list(CLUSTEROBJECTSYNCS)
            return n
        except ApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class CloudCore:
    def __init__(self, cfg: CloudCoreConfig, kube: Kube) -> None:
        self.cfg = cfg
        self.kube = kube
        self.ready = False
        settings = CloudHubSettings(
            bind=cfg.bind,
            port=cfg.websocket_port,
            node_limit=cfg.node_limit,
            max_frame_bytes=cfg.max_frame_bytes,
            keepalive_timeout=cfg.keepalive_timeout,
            ack_timeout=cfg.ack_timeout,
            ack_retries=cfg.ack_retries,
            max_inflight=cfg.max_inflight,
        )
        self._settings = settings
        self.hub: CloudHub | None = None
        self.certs: CertServer | None = None
        self.webhook: WebhookServer | None = None
        self.ca_bundle: CABundleKeeper | None = None
        self.metrics: Metrics | None = None
        self.store = ObjectSyncStore(
            kube, flush_interval=cfg.sync_flush_interval, writers=cfg.sync_writers, busy=self._hub_busy
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.token = ""

    async def start(self) -> None:
        cfg = self.cfg
        ca = await self.kube.run(load_or_create_ca, self.kube)
        self.token = (
            await self.kube.run(current_token, self.kube, ca, int(cfg.token_validity_hours * 3600))
        ).token
        if cfg.data_dir is not None:
            workdir = cfg.data_dir / "cloudhub"
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="cloudcore-")
            workdir = Path(self._tmp.name)
        ws_ctx, https_ctx = _ssl_contexts(ca, _server_names(cfg), workdir)
        hub = CloudHub(self._settings, ws_ctx)
        self.hub = hub
        await self.store.load()
        syncer = NodeSyncer(hub, self.store)
        self.syncer = syncer
        self.nodes = NodeLifecycle(
            self.kube,
            hub,
            grace_period=cfg.node_grace_period,
            status_update_period=cfg.node_status_update_period,
        )
        self.edgecontroller = EdgeController(self.kube, hub, syncer)
        self.nodegroup_views = NodeGroupViews(self.kube, hub, syncer, self.edgecontroller)
        self.events = EventRecorder(self.kube)
        self.edge_events = EdgeEvents(self.events)
        self.pods = PodStatusWriter(self.kube, hub.send_to_node)
        self.devicecontroller = DeviceController(
            self.kube,
            hub,
            syncer,
            events=self.events,
            flush_interval=cfg.device_status_flush_interval,
            status_writers=cfg.device_status_writers,
            refresh_interval=cfg.device_status_refresh_interval,
        )

        async def default_upstream(node: str, msg: Any) -> None:
            if (
                not self.edge_events.handle_upstream(node, msg)
                and not await self.pods.handle_upstream(node, msg)
                and not await self.nodes.handle_upstream(node, msg)
            ):
                log.debug("node %s: unhandled upstream %s %s", node, msg.route.operation, msg.route.resource)

        hub.set_default_upstream(default_upstream)
        self.metrics = Metrics(hub, self.store, lambda: self.ready, self.devicecontroller)
        await self.metrics.start(cfg.metrics_bind, cfg.metrics_port)
        await self.events.start()
        await self.store.start()
        await self.nodegroup_views.start()
        await self.edgecontroller.start()
        await self.devicecontroller.start()
        await self.nodes.start()
        self.certs = CertServer(
            ca,
            https_ctx,
            bind=cfg.bind,
            port=cfg.https_port,
            node_exists=self._node_exists,
            cert_validity=dt.timedelta(days=cfg.edge_cert_validity_days),
            has_certificate=self._has_certificate,
            record_issued=self._record_issued,
        )
        await self.certs.start()
        if cfg.webhook_port is not None:
            await self._start_webhook(cfg.webhook_port, ca, workdir)
        await hub.start()
        self._tasks.append(asyncio.create_task(syncer.resync_loop(cfg.resync_period), name="resync"))
        self.ready = True
        log.info(
            "cloudcore ready: websocket %d, certificates %d, metrics %d",
            hub.port,
            self.certs.port,
            self.metrics.port,
        )

    async def _start_webhook(self, port: int, ca: pki.CertificateAuthority, workdir: Path) -> None:
        """After the device informers synced: an answer from a cache still filling would let through
        what it should refuse."""
        names = [*_server_names(self.cfg), *WEBHOOK_SERVICE_NAMES]
        ctx = _server_context(_serving_files(ca, names, workdir, "webhook"), ca, ssl.CERT_NONE)
        models = self.devicecontroller.models.cache
        self.webhook = WebhookServer(
            lambda namespace, name: models.get((namespace, name)), ctx, bind=self.cfg.bind, port=port
        )
        await self.webhook.start()
        if self.metrics is not None:
            self.metrics.add_webhook(self.webhook)
        if self.cfg.standalone:
            return  # the embedded API server checks Devices itself and calls no webhook
        self.ca_bundle = CABundleKeeper(
            self.kube,
            self.cfg.webhook_configuration,
            pki.cert_to_pem(ca.cert),
            port=self.webhook.port,
            period=self.cfg.resync_period,
        )
        self._tasks.append(asyncio.create_task(self.ca_bundle.run(), name="webhook-ca-bundle"))

    def _hub_busy(self) -> bool:
        return self.hub is not None and self.hub.busy()

    async def _node_exists(self, name: str) -> bool:
        return await self.kube.run(self.kube.get, NODES, name) is not None

    async def _has_certificate(self, name: str) -> bool:
        return bool(await self.kube.run(has_certificate, self.kube, name))

    async def _record_issued(self, name: str, not_after: dt.datetime) -> None:
        await self.kube.run(record_certificate, self.kube, name, not_after.isoformat())

    def ports(self) -> dict[str, int]:
        assert self.hub and self.certs and self.metrics
        ports = {
            "websocketPort": self.hub.port,
            "httpsPort": self.certs.port,
            "metricsPort": self.metrics.port,
        }
        if self.webhook is not None:
            ports["webhookPort"] = self.webhook.port
        return ports

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.hub:
            await self.hub.stop()
        if self.certs:
            await self.certs.stop()
        if self.webhook:
            await self.webhook.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.store.flushed(), 5)
        await self.store.stop()
        await self.edgecontroller.stop()
        await self.nodegroup_views.stop()
        await self.devicecontroller.stop()
        await self.nodes.stop()
        await self.events.stop()
        if self.metrics:
            await self.metrics.stop()
        if self._tmp:
            self._tmp.cleanup()


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    filemodes.private_dir(data_dir)
    tmp = data_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, data_dir / STATE_FILE)


@contextlib.asynccontextmanager
async def kubernetes_access(cfg: CloudCoreConfig) -> AsyncIterator[tuple[Kube, str, int | None]]:
    """The API server to use: the given kubeconfig, or (standalone) an embedded one in-process."""
    if not cfg.standalone:
        assert cfg.kubeconfig is not None
        kube = Kube.from_kubeconfig(str(cfg.kubeconfig), workers=cfg.sync_writers + 8)
        try:
            try:
                installed = await kube.run(install_crds, kube)
            except ApiError as exc:
                raise RuntimeError(
                    f"the KubeEdge CRDs (ObjectSync, ClusterObjectSync, ...) are missing and could not be "
                    f"installed ({exc}); apply crds/*.yaml to the cluster first"
                ) from exc
            if installed:
                log.info("installed %d CRDs from crds/", installed)
            yield kube, str(cfg.kubeconfig), None
        finally:
            kube.close()
        return
    assert cfg.data_dir is not None
    from cloudcore._embedded import embedded_apiserver

    async with embedded_apiserver(cfg.data_dir, cfg.bind, cfg.apiserver_port) as (kubeconfig, port):
        kube = Kube.from_kubeconfig(kubeconfig, workers=cfg.sync_writers + 8)
        try:
            await kube.run(install_crds, kube)
            yield kube, kubeconfig, port
        finally:
            kube.close()


async def run(cfg: CloudCoreConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    if cfg.data_dir is not None:
        # The embedded API server checks its own files (standalone) in the same directory.
        filemodes.secure_data_dir(cfg.data_dir, ("cloudhub", STATE_FILE))
    async with kubernetes_access(cfg) as (kube, kubeconfig, apiserver_port):
        core = CloudCore(cfg, kube)
        await core.start()
        controllers_stop = asyncio.Event()
        controllers: asyncio.Task[None] | None = None
        workloads: asyncio.Task[None] | None = None
        if cfg.standalone:
            # Standalone cloudcore is the whole control plane: it runs the node-group controllers too.
            from cloudcore.workloads import run_workload_controllers
            from nodegroup import run_controllers

            controllers = asyncio.create_task(run_controllers(kubeconfig, controllers_stop), name="nodegroup")
            workloads = asyncio.create_task(
                run_workload_controllers(kubeconfig, controllers_stop), name="workloads"
            )
        try:
            if cfg.data_dir is not None:
                state: dict[str, Any] = {"pid": os.getpid(), "kubeconfig": kubeconfig, **core.ports()}
                if apiserver_port is not None:
                    state["apiserverPort"] = apiserver_port
                write_state(cfg.data_dir, state)
            await stop.wait()
        finally:
            controllers_stop.set()
            for task in (controllers, workloads):
                if task is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(task, 10)
            await core.stop()
