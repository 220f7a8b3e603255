"""CloudHub: the TLS websocket server every edge node keeps one connection to.

Identity comes only from the client certificate (CN ``system:node:<name>``, O ``system:nodes``)
signed by the edge CA; a ``node_id`` header or URL path naming another node is refused. Frames are
one JSON message each. Messages from nodes are validated before dispatch: a message about another
node is refused and counted, never applied.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

from cryptography import x509
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from cloudcore.cloudhub._session import NodeSession, NodeStats, Pending, TrackingConnection
from kubeshore import pki
from kubeshore.logs import Throttled
from kubeshore.message import (
    OP_ERROR,
    OP_KEEPALIVE,
    OP_RESPONSE,
    Message,
    MessageError,
    is_known_operation,
    parse_frame,
)

log = logging.getLogger(__name__)

UpstreamHandler = Callable[[str, Message], Awaitable[None]]
NodeListener = Callable[[str], Awaitable[None]]
MessageValidator = Callable[[str, Message], str | None]


@dataclass
class CloudHubSettings:
    bind: str = "0.0.0.0"
    port: int = 10000
    node_limit: int = 1000
    max_frame_bytes: int = 8 * 1024 * 1024
    keepalive_timeout: float = 30.0
    ack_timeout: float = 5.0
    ack_retries: int = 4
    max_inflight: int = 100


def node_from_transport(transport: asyncio.BaseTransport | None) -> str:
    """The node whose client certificate (already verified against the CA by TLS) is on ``transport``."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise pki.IdentityError("no client certificate")
    return pki.node_identity(x509.load_der_x509_certificate(der))


class CloudHub:
    """Sessions by node, reliable send with acknowledgements, upstream dispatch by route source."""

    def __init__(self, settings: CloudHubSettings, ssl_context: ssl.SSLContext) -> None:
        self.settings = settings
        self.ssl_context = ssl_context
        self.sessions: dict[str, NodeSession] = {}
        # When each node whose session ended last sent anything (monotonic): its silence started then,
        # not when the session was finally closed (a frozen peer holds the close for close_timeout).
        self._ended_last_seen: dict[str, float] = {}
        self.stats: dict[str, NodeStats] = {}
        self.refusals: dict[str, int] = {}
        self.ack_latencies: list[float] = []
        self._upstream: dict[str, UpstreamHandler] = {}
        self._default_upstream: UpstreamHandler | None = None
        self._validators: list[MessageValidator] = []
        self._on_connect: list[NodeListener] = []
        self._on_disconnect: list[NodeListener] = []
        self._on_ack_latency: list[Callable[[float], None]] = []
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.port = settings.port
        self.last_activity = 0.0
        # A node sending the same bad input thousands of times gets one line a minute per reason.
        self._throttled = Throttled(log)

    # Seams for controllers ------------------------------------------------------------------
    def register_upstream(self, source: str, handler: UpstreamHandler) -> None:
        """Messages from nodes whose ``route.source`` is ``source`` go to ``handler(node, msg)``."""
        self._upstream[source] = handler

    def set_default_upstream(self, handler: UpstreamHandler) -> None:
        """Messages no registered source claims (KubeEdge sends them to edgecontroller)."""
        self._default_upstream = handler

    def add_validator(self, validator: MessageValidator) -> None:
        """``validator(node, msg)`` returns a refusal reason, or None to let the message through."""
        self._validators.append(validator)

    def on_connect(self, listener: NodeListener) -> None:
        self._on_connect.append(listener)

    def on_disconnect(self, listener: NodeListener) -> None:
        self._on_disconnect.append(listener)

    def on_ack_latency(self, observer: Callable[[float], None]) -> None:
        self._on_ack_latency.append(observer)

    def is_connected(self, node: str) -> bool:
        return node in self.sessions

    def connected_nodes(self) -> list[str]:
        return list(self.sessions)

    def last_traffic(self, node: str) -> float | None:
        """When (``time.monotonic()``) the node last sent any bytes, over its current session or, when
        it has none, over its last one; None if it never connected since this cloudcore started."""
        session = self.sessions.get(node)
        if session is not None:
            return session.last_seen
        return self._ended_last_seen.get(node)

    def send_to_node(
        self,
        node: str,
        message: Message | str,
        *,
        msg_id: str | None = None,
        key: str | None = None,
        on_ack: Callable[[], None] | None = None,
        reliable: bool = False,
    ) -> bool:
        """Queue a message (edge-relative resource) for ``node``; False when it is not connected.

        With ``reliable`` (or ``on_ack``) the message is retransmitted with the same msg_id until the
        node answers ``response`` to it; ``key`` (e.g. the object UID) lets a newer message replace
        an unacknowledged older one. ``message`` may be pre-encoded JSON, then ``msg_id`` is required.
        """
        session = self.sessions.get(node)
        if session is None or session.closed:
            return False
        self.last_activity = time.monotonic()
        if isinstance(message, Message):
            frame = message.to_json()
            msg_id = message.header.msg_id
        else:
            frame = message
            if (reliable or on_ack) and not msg_id:
                raise ValueError("msg_id is required for a pre-encoded reliable message")
        if reliable or on_ack is not None:
            assert msg_id is not None
            session.track(msg_id, frame, key, on_ack)
            return True
        session.enqueue(frame)
        return True

    def count_object_sent(self, node: str, resource_type: str, operation: str) -> None:
        stats = self.stats.setdefault(node, NodeStats())
        k = (resource_type, operation)
        stats.objects_sent[k] = stats.objects_sent.get(k, 0) + 1

    def queue_depths(self) -> dict[str, int]:
        return {n: s.queue.qsize() for n, s in self.sessions.items()}

    def pending_acks(self) -> dict[str, int]:
        return {n: len(s.pending) for n, s in self.sessions.items()}

    # Server ------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        _shrink_tls_read_buffers()
        self._server = await serve(
            self._handle,
            s.bind,
            s.port,
            ssl=self.ssl_context,
            process_request=self._check_request,
            create_connection=TrackingConnection,
            max_size=s.max_frame_bytes,
            compression=None,  # per-connection zlib state costs ~100 KiB; objects are small JSON
            ping_interval=None,  # the edge pings; any received bytes count as liveness
            max_queue=64,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="cloudhub-housekeeping"))

    async def stop(self) -> None:
        for t in [*self._tasks, *self._closing]:
            t.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _refuse(self, reason: str, node: str | None = None) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1
        if node is not None:
            self.stats.setdefault(node, NodeStats()).refused += 1

    def _check_request(self, conn: ServerConnection, request: Request) -> Response | None:
        try:
            node = node_from_transport(conn.transport)
        except pki.IdentityError as exc:
            log.warning("refused connection from %s: client certificate: %s", conn.remote_address, exc)
            self._refuse("bad_certificate")
            return conn.respond(HTTPStatus.FORBIDDEN, f"client certificate: {exc}\n")
        try:
            claimed = _claimed_node(request.headers, request.path)
        except ValueError as exc:
            log.warning("refused connection of node %r: %s", node, exc)
            self._refuse("bad_request", node)
            return conn.respond(HTTPStatus.BAD_REQUEST, f"{exc}\n")
        if claimed is not None and claimed != node:
            log.warning(
                "refused connection: certificate is for node %r but the request claims node %r", node, claimed
            )
            self._refuse("forged_node_name", node)
            return conn.respond(
                HTTPStatus.FORBIDDEN, f"certificate is for node {node!r}, request claims {claimed!r}\n"
            )
        if node not in self.sessions and len(self.sessions) >= self.settings.node_limit:
            log.warning("refused node %s: node limit %d reached", node, self.settings.node_limit)
            self._refuse("node_limit", node)
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "node limit reached\n")
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        assert isinstance(conn, TrackingConnection)
        node = node_from_transport(conn.transport)
        old = self.sessions.get(node)
        if old is not None:
            log.info("node %s reconnected; closing its previous session", node)
            await self._end(old, 1000, "replaced by a new connection")
        stats = self.stats.setdefault(node, NodeStats())
        stats.connects += 1
        session = NodeSession(node, conn, stats, self.settings.max_inflight)
        self.sessions[node] = session
        log.info("node %s connected from %s", node, conn.remote_address)
        for listener in self._on_connect:
            try:
                await listener(node)
            except Exception:
                log.exception("connect listener failed for node %s", node)
        try:
            async for frame in conn:
                if isinstance(frame, bytes):
                    log.warning("node %s sent a binary frame; closing", node)
                    self._refuse("binary_frame", node)
                    await conn.close(1003, "binary frames are not accepted")
                    break
                stats.messages_in += 1
                try:
                    raw = parse_frame(frame)
                    route = raw["route"]
                    parent = raw.get("header", {}).get("parent_msg_id")
                    if route.get("operation") == OP_RESPONSE and isinstance(parent, str) and parent:
                        # ACKs are most of the upstream traffic: no model for them.
                        p = session.acknowledge(parent)
                        if p is not None:
                            self._acked(p)
                        continue
                    msg = Message.from_data(raw)
                except MessageError as exc:
                    self._throttled.warning(
                        f"malformed/{node}", "node %s sent a malformed frame (%s); closing", node, exc
                    )
                    self._refuse("malformed_frame", node)
                    await conn.close(1007, f"malformed message: {exc}"[:120])
                    break
                await self._dispatch(session, msg)
        except ConnectionClosed as exc:
            if (exc.rcvd is not None and exc.rcvd.code == 1009) or (
                exc.sent is not None and exc.sent.code == 1009
            ):
                log.warning("node %s sent an oversized frame; connection closed", node)
                self._refuse("oversized_frame", node)
        finally:
            if self.sessions.get(node) is session:
                await self._end(session, 1000, "")

    def _detach(self, session: NodeSession) -> None:
        if self.sessions.get(session.node) is session:
            del self.sessions[session.node]
            self._ended_last_seen[session.node] = session.last_seen

    async def _end(self, session: NodeSession, code: int, reason: str) -> None:
        self._detach(session)
        # Listeners first: closing a frozen peer takes the close handshake timeout, and by then the
        # node may have reconnected (whose session the listeners must not treat as gone).
        if session.node not in self.sessions:
            for listener in self._on_disconnect:
                try:
                    await listener(session.node)
                except Exception:
                    log.exception("disconnect listener failed for node %s", session.node)
        await session.close(code, reason)
        log.info("node %s disconnected", session.node)

    def _end_soon(self, session: NodeSession, code: int, reason: str) -> None:
        """End a session without waiting: closing a frozen peer waits out the close handshake
        timeout (10 s), which must not hold up housekeeping of every other node."""
        self._detach(session)
        task = asyncio.create_task(self._end(session, code, reason), name=f"cloudhub-close-{session.node}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _dispatch(self, session: NodeSession, msg: Message) -> None:
        node = session.node
        op = msg.route.operation
        if op == OP_KEEPALIVE:
            return
        if op == OP_RESPONSE and msg.header.parent_msg_id:
            p = session.acknowledge(msg.header.parent_msg_id)
            if p is not None:
                self._acked(p)
            return
        if op == OP_ERROR:
            self._node_error(session, msg)
            return
        if not is_known_operation(op):
            self._throttled.warning(
                f"unknown_operation/{node}", "node %s: refused message with unknown operation %.64r", node, op
            )
            self._refuse("unknown_operation", node)
            return
        for validator in self._validators:
            reason = validator(node, msg)
            if reason:
                self._throttled.warning(
                    f"invalid/{node}", "node %s: refused message %.200s: %s", node, msg.route.resource, reason
                )
                self._refuse("invalid_message", node)
                return
        handler = self._upstream.get(msg.route.source, self._default_upstream)
        if handler is None:
            self._throttled.log(
                logging.INFO,
                f"unhandled/{node}",
                "node %s: no handler for message from %.64r",
                node,
                msg.route.source,
            )
            return
        try:
            await handler(node, msg)
        except Exception as exc:
            # A handler's bug, triggered by this node's message: one line, and the session goes on.
            self._refuse("handler_failed", node)
            self._throttled.error(
                f"handler/{node}/{type(exc).__name__}",
                "node %s: handler for %.200s failed: %s: %s",
                node,
                msg.route.resource,
                type(exc).__name__,
                exc,
            )

    def _node_error(self, session: NodeSession, msg: Message) -> None:
        """The node answered one of our messages with an error instead of an ACK. ``refused: ...``
        (the message is invalid for it) is final: the message is not sent again. Anything else
        (``unavailable: ...``, its store cannot write) is transient: the message is sent again later,
        and the session stays, since the node is alive and answering."""
        node = session.node
        content = str(msg.content)
        parent = msg.header.parent_msg_id
        p = session.pending.get(parent) if parent else None
        if p is not None and content.startswith("refused"):
            session.acknowledge(parent)  # without on_ack: it is not on the node
            self._refuse("refused_by_node", node)
        elif p is not None:
            p.tries = 1  # it answered: a fresh round of resends, not a requeue
            self._refuse("node_unavailable", node)
        self._throttled.warning(
            f"error/{node}", "node %s answered %s with an error: %.300s", node, msg.route.resource, content
        )

    def busy(self, within: float = 0.5) -> bool:
        """Whether messages were sent or acknowledged in the last ``within`` seconds (a fan-out)."""
        return time.monotonic() - self.last_activity < within

    def _acked(self, p: Pending) -> None:
        self.last_activity = now = time.monotonic()
        latency = now - p.first_sent
        for observe in self._on_ack_latency:
            observe(latency)
        if p.on_ack is not None:
            try:
                p.on_ack()
            except Exception:
                log.exception("ack callback failed")

    async def _housekeeping(self) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(min(1.0, s.ack_timeout / 2, s.keepalive_timeout / 4))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_seen > s.keepalive_timeout:
                    log.warning(
                        "node %s silent for %.0fs; closing its session", session.node, s.keepalive_timeout
                    )
                    self._end_soon(session, 1001, "keepalive timeout")
                    continue
                _, requeued = session.check_acks(now, s.ack_timeout, s.ack_retries)
                if requeued:
                    # KubeEdge's way: the message goes back to the queue, rate-limited; the session
                    # stays (the node is alive, its keepalives say so; only a silent one is closed).
                    self._throttled.warning(
                        f"requeued/{session.node}",
                        "node %s: %d messages unacknowledged after %d tries; sending them again later "
                        "(window %d)",
                        session.node,
                        requeued,
                        s.ack_retries + 1,
                        int(session.window),
                    )


# asyncio gives every TLS connection a zero-filled 256 KiB read buffer (SSLProtocol.max_size), which
# is resident memory: 2.5 GB for 10,000 idle nodes. One TLS record holds at most 16 KiB of plaintext,
# so a 16 KiB buffer reads every record in one call.
_TLS_READ_BUFFER = 16 * 1024


def _shrink_tls_read_buffers() -> None:
    import asyncio.sslproto

    if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > _TLS_READ_BUFFER:
        asyncio.sslproto.SSLProtocol.max_size = _TLS_READ_BUFFER


def _claimed_node(headers: Headers, path: str) -> str | None:
    """The node the request names, if any; ValueError when it names it more than once."""
    claims = [*headers.get_all("node_id"), *headers.get_all("node-id")]
    if len(claims) > 1:
        raise ValueError(f"the request has {len(claims)} node_id headers; exactly one is allowed")
    if claims and claims[0]:
        return claims[0]
    # KubeEdge dials wss://host/<projectID>/<nodeName>/events
    parts = [p for p in path.split("?")[0].split("/") if p]
    if len(parts) == 3 and parts[2] == "events":
        return parts[1]
    return None
