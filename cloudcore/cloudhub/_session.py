"""One connected edge node: its websocket, outgoing queue, pending acknowledgements and counters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from kubeshore.backoff import exponential

log = logging.getLogger(__name__)


class TrackingConnection(ServerConnection):
    """A server connection that remembers when it last received any bytes (frames or pings)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_seen = time.monotonic()
        self.bytes_in = 0

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self.bytes_in += len(data)
        super().data_received(data)

    def send_now(self, text: str) -> bool:
        """Write a text frame without awaiting (the happy path of ``send``); False when the
        connection is not open or its write buffer is above the limit, so the caller queues instead.

        A fan-out to thousands of nodes then costs one frame write per node instead of a task wake-up
        and a coroutine per node.
        """
        if self.protocol.state is not State.OPEN or self.transport.get_write_buffer_size() > _DIRECT_LIMIT:
            return False
        self.protocol.send_text(text.encode())
        self.send_data()
        return True


# Above this many buffered bytes a node is slow: frames wait in its queue for the writer task,
# which respects flow control.
_DIRECT_LIMIT = 256 * 1024


@dataclass(slots=True)
class NodeStats:
    """Counters per node, kept as plain ints and exported by the metrics collector on scrape."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_out: int = 0
    refused: int = 0
    objects_sent: dict[tuple[str, str], int] = field(default_factory=dict)
    connects: int = 0
    resent: int = 0
    requeued: int = 0


@dataclass(slots=True)
class Pending:
    frame: str
    key: str | None
    on_ack: Callable[[], None] | None
    first_sent: float
    last_sent: float
    tries: int = 0  # sends in the current round (a requeue starts a new round)
    requeues: int = 0
    due: float = 0.0  # not sent again before this (monotonic), after a requeue
    inflight: bool = False


# The longest a requeued message waits before its next round (KubeEdge's rate-limited requeue).
REQUEUE_MAX = 60.0


class NodeSession:
    """Acknowledged messages go out through a window: at most ``max_inflight`` unacknowledged on the
    wire, the rest wait in order. An edge that acknowledges slowly (KubeEdge's edgehub sends 30
    messages a second, ACKs included) shrinks the window (halved on an overdue ACK, grown by one per
    window of prompt ACKs), so it is never flooded; an overdue message is resent, then requeued with
    back-off. Overdue ACKs never close the session: liveness is the keepalive timeout's job."""

    def __init__(
        self, node: str, conn: TrackingConnection, stats: NodeStats, max_inflight: int = 100
    ) -> None:
        self.node = node
        self.conn = conn
        self.stats = stats
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.pending: dict[str, Pending] = {}
        self.pending_by_key: dict[str, str] = {}
        self.max_inflight = max_inflight
        self.window = float(max_inflight)
        self.inflight: set[str] = set()
        self.waiting: deque[str] = deque()
        self.deferred: list[str] = []
        self._last_cut = 0.0
        self.closed = False
        self._writing = False
        self.connected_at = time.time()
        self._writer = asyncio.create_task(self._write_loop(), name=f"cloudhub-writer-{node}")

    @property
    def last_seen(self) -> float:
        return self.conn.last_seen

    def enqueue(self, frame: str) -> None:
        if self.closed:
            return
        if self.queue.empty() and not self._writing:
            try:
                if self.conn.send_now(frame):
                    self.stats.messages_out += 1
                    self.stats.bytes_out += len(frame)
                    return
            except Exception as exc:
                log.info("node %s: direct write failed (%s)", self.node, exc)
        self.queue.put_nowait(frame)

    def track(self, msg_id: str, frame: str, key: str | None, on_ack: Callable[[], None] | None) -> None:
        """Send ``frame`` when the window has room, and again until ``msg_id`` is acknowledged."""
        now = time.monotonic()
        if key is not None:
            old = self.pending_by_key.pop(key, None)
            if old is not None:
                # A newer version supersedes the unacknowledged one: stop retransmitting it.
                self.pending.pop(old, None)
                self.inflight.discard(old)
            self.pending_by_key[key] = msg_id
        self.pending[msg_id] = Pending(frame, key, on_ack, now, now)
        self.waiting.append(msg_id)
        self._fill(now)

    def acknowledge(self, msg_id: str) -> Pending | None:
        p = self.pending.pop(msg_id, None)
        if p is None:
            return None
        if p.key is not None and self.pending_by_key.get(p.key) == msg_id:
            del self.pending_by_key[p.key]
        if p.inflight:
            self.inflight.discard(msg_id)
            if p.tries == 1 and p.requeues == 0:
                self.window = min(float(self.max_inflight), self.window + 1.0 / self.window)
            self._fill(time.monotonic())
        return p

    def check_acks(self, now: float, ack_timeout: float, ack_retries: int) -> tuple[int, int]:
        """Resend what is overdue (every ``ack_timeout``, ``ack_retries`` times), then requeue it
        behind the others with exponential back-off; (resent, requeued) now."""
        resent = requeued = 0
        for msg_id in list(self.inflight):
            p = self.pending.get(msg_id)
            if p is None:
                self.inflight.discard(msg_id)
                continue
            if now - p.last_sent < ack_timeout:
                continue
            if now - self._last_cut >= ack_timeout:
                # One cut per ack timeout: every message sent in the same burst is late together.
                self._last_cut = now
                self.window = max(1.0, self.window / 2)
            if p.tries > ack_retries:
                self.inflight.discard(msg_id)
                p.inflight = False
                p.due = now + exponential(p.requeues, ack_timeout, REQUEUE_MAX)
                p.requeues += 1
                self.deferred.append(msg_id)
                requeued += 1
                continue
            p.tries += 1
            p.last_sent = now
            self.enqueue(p.frame)
            resent += 1
        if self.deferred:
            due = [m for m in self.deferred if m in self.pending and self.pending[m].due <= now]
            if due:
                self.deferred = [m for m in self.deferred if m in self.pending and self.pending[m].due > now]
                self.waiting.extend(due)
        self.stats.resent += resent
        self.stats.requeued += requeued
        self._fill(now)
        return resent, requeued

    def _fill(self, now: float) -> None:
        while self.waiting and len(self.inflight) < int(self.window):
            msg_id = self.waiting.popleft()
            p = self.pending.get(msg_id)
            if p is None or p.inflight:
                continue  # superseded or acknowledged meanwhile
            p.inflight = True
            p.tries = 1
            p.last_sent = now
            self.inflight.add(msg_id)
            self.enqueue(p.frame)

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self.queue.get()
                self._writing = True
                await self.conn.send(frame)
                self._writing = False
                self.stats.messages_out += 1
                self.stats.bytes_out += len(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("node %s: write failed (%s); closing session", self.node, exc)
            await self.conn.close(1011, "write failed")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True
        self._writer.cancel()
        await self.conn.close(code, reason)
