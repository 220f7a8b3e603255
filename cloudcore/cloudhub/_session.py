"""One connected edge node: its websocket, outgoing queue, pending acknowledgements and counters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

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


@dataclass(slots=True)
class Pending:
    frame: str
    key: str | None
    on_ack: Callable[[], None] | None
    first_sent: float
    last_sent: float
    tries: int = 1


class NodeSession:
    def __init__(self, node: str, conn: TrackingConnection, stats: NodeStats) -> None:
        self.node = node
        self.conn = conn
        self.stats = stats
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.pending: dict[str, Pending] = {}
        self.pending_by_key: dict[str, str] = {}
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
        now = time.monotonic()
        if key is not None:
            old = self.pending_by_key.pop(key, None)
            if old is not None:
                # A newer version supersedes the unacknowledged one: stop retransmitting it.
                self.pending.pop(old, None)
            self.pending_by_key[key] = msg_id
        self.pending[msg_id] = Pending(frame, key, on_ack, now, now)

    def acknowledge(self, msg_id: str) -> Pending | None:
        p = self.pending.pop(msg_id, None)
        if p is not None and p.key is not None and self.pending_by_key.get(p.key) == msg_id:
            del self.pending_by_key[p.key]
        return p

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
