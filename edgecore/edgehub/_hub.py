"""EdgeHub: the edge's one TLS websocket to cloudcore.

Reconnects with exponential backoff and jitter, pings every ``heartbeat`` (a websocket ping: a few
bytes, so an idle node costs well under 0.1 kbit/s), routes received messages to modules by group,
keeps cloud-bound messages in a bounded SQLite outbox while offline and delivers them in order
after reconnecting, and renews the node certificate before it expires.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from edgecore._router import ModuleRouter
from edgecore.config import EdgeCoreConfig
from edgecore.edgehub._certificates import (
    Address,
    CertificateRequestError,
    certificate_validity,
    request_certificate,
    verified_context,
    write_certificate,
)
from edgecore.metamanager import EdgeStore
from kubeshore.backoff import Backoff
from kubeshore.logs import Throttled
from kubeshore.message import GROUP_RESOURCE, OP_KEEPALIVE, SOURCE_EDGEHUB, Message, MessageError

log = logging.getLogger(__name__)
_throttled = Throttled(log)

PROJECT_ID = "e632aba927ea4ac2b575ec1603d56f10"
_ROTATE_AT = 0.8  # fraction of the certificate's lifetime


class EdgeHub:
    def __init__(self, cfg: EdgeCoreConfig, router: ModuleRouter, store: EdgeStore) -> None:
        self.cfg = cfg
        self.router = router
        self.store = store
        self.ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.received = 0
        self.sent = 0
        self.malformed = 0
        self.dropped = 0
        self._send_lock = asyncio.Lock()
        self._outbox_pending = True
        router.set_cloud_sender(self.send)

    # Sending ---------------------------------------------------------------------------
    async def send(self, msg: Message, queue_offline: bool = True) -> bool:
        frame = msg.to_json()
        async with self._send_lock:
            ws = self.ws
            if ws is not None and self.connected.is_set() and not self._outbox_pending:
                try:
                    await ws.send(frame)
                    self.sent += 1
                    return True
                except ConnectionClosed:
                    pass
            if not queue_offline:
                return False
            queued = await self.store.outbox_put(frame, self.cfg.outbox.max_messages)
            if queued:
                self._outbox_pending = True
            else:
                self.dropped += 1
                log.warning(
                    "outbox full (%d messages); dropped %s", self.cfg.outbox.max_messages, msg.resource
                )
            return queued

    async def _flush_outbox(self, ws: ClientConnection) -> None:
        async with self._send_lock:
            while True:
                entries = await self.store.outbox_peek(100)
                if not entries:
                    self._outbox_pending = False
                    return
                for _, frame in entries:
                    await ws.send(frame)
                    self.sent += 1
                await self.store.outbox_remove([i for i, _ in entries])
                log.info("delivered %d queued messages", len(entries))

    # Connection ------------------------------------------------------------------------
    def _ssl(self) -> ssl.SSLContext:
        c = self.cfg.certs
        return verified_context(c.ca_file.read_bytes(), (str(c.cert_file), str(c.key_file)))

    async def run(self) -> None:
        hub = self.cfg.edge_hub
        addr = Address.parse(hub.server)
        uri = f"wss://{addr.host}:{addr.port}/{PROJECT_ID}/{self.cfg.node_name}/events"
        # Jitter keeps a fleet of nodes from reconnecting in lockstep when cloudcore returns.
        backoff = Backoff(hub.reconnect_initial, hub.reconnect_max, jitter=(0.5, 1.5))
        while True:
            try:
                async with connect(
                    uri,
                    ssl=self._ssl(),
                    # Without ConnectionUse KubeEdge's cloudhub (viaduct) starts no reader for the session.
                    additional_headers={
                        "node_id": self.cfg.node_name,
                        "project_id": PROJECT_ID,
                        "ConnectionUse": "msg",
                    },
                    ping_interval=hub.heartbeat,
                    ping_timeout=hub.heartbeat * 2,
                    open_timeout=hub.handshake_timeout,
                    max_size=hub.max_frame_bytes,
                    compression=None,
                ) as ws:
                    backoff.reset()
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
                log.warning("cloudcore refused the connection: %s %s", exc.response.status_code, body)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, ssl.SSLError) as exc:
                log.warning("connection to cloudcore %s failed: %s", addr, exc or type(exc).__name__)
            await backoff.sleep()

    async def _session(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.connects += 1
        log.info("connected to cloudcore")
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._flush_outbox(ws)
            self.connected.set()
            await self.router.cloud_state(True)
            if self.cfg.edge_hub.json_keepalive:
                tasks.append(asyncio.create_task(self._json_keepalive(ws)))
            if self.cfg.edge_hub.rotate_certificates:
                tasks.append(asyncio.create_task(self._rotate_when_due(ws)))
            async for frame in ws:
                self.received += 1
                try:
                    msg = Message.from_json(frame)
                except MessageError as exc:
                    self.malformed += 1
                    _throttled.warning("malformed", "ignored a malformed frame from cloudcore: %s", exc)
                    continue
                try:
                    await self.router.dispatch(msg)
                except Exception:
                    log.exception("module failed on %s %s", msg.route.operation, msg.route.resource)
        finally:
            for t in tasks:
                t.cancel()
            self.connected.clear()
            self.ws = None
            log.info("disconnected from cloudcore")
            await self.router.cloud_state(False)

    async def _json_keepalive(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.cfg.edge_hub.heartbeat)
            msg = Message.new(
                source=SOURCE_EDGEHUB, group=GROUP_RESOURCE, operation=OP_KEEPALIVE, resource="node"
            )
            msg.content = "ping"
            await ws.send(msg.to_json())

    # Certificate rotation ---------------------------------------------------------------
    def rotation_due_in(self) -> float:
        start, end = certificate_validity(self.cfg.certs.cert_file)
        return start + (end - start) * _ROTATE_AT - time.time()

    async def _rotate_when_due(self, ws: ClientConnection) -> None:
        wait = self.rotation_due_in()
        if wait > 0:
            await asyncio.sleep(wait * random.uniform(0.9, 1.0))
        backoff = Backoff(2.0, 32.0)
        while True:
            try:
                await asyncio.to_thread(self.rotate_certificate)
                break
            except (CertificateRequestError, OSError) as exc:
                log.warning("certificate renewal failed (%s); retrying in %.0fs", exc, backoff.nominal)
                await backoff.sleep()
        # Reconnect so the session uses the new certificate.
        await ws.close(1000, "certificate renewed")

    def rotate_certificate(self) -> None:
        c = self.cfg.certs
        cert_pem, key_pem = request_certificate(
            Address.parse(self.cfg.edge_hub.https_server),
            self.cfg.node_name,
            c.ca_file.read_bytes(),
            client=(str(c.cert_file), str(c.key_file)),
        )
        write_certificate(c.cert_file, c.key_file, cert_pem, key_pem)
        log.info("node certificate renewed")
