"""A bounded buffer in front of every sink: collection never waits for a sink.

Readings are appended without awaiting anything; one task per sink delivers them in batches. When
the sink is down the buffer keeps the newest ``capacity`` readings, drops the oldest, and logs the
outage once (and its end); metrics count what was buffered, sent and dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import Any

from kubeshore.backoff import Backoff
from mappers.sdk import _metrics
from mappers.sdk._types import Reading

log = logging.getLogger("mappers.sinks")

Item = tuple[Any, Reading]


class SinkBackend(ABC):
    """Delivers batches to one destination (a broker, a URL, a database). ``send`` raises when it fails."""

    #: short label for logs and metrics, e.g. ``mqtt 127.0.0.1:1883``
    label: str = ""

    @abstractmethod
    async def send(self, batch: list[Item]) -> None: ...

    async def close(self) -> None:
        return None


class BufferedSink:
    def __init__(self, backend: SinkBackend, *, capacity: int = 10_000, batch: int = 200) -> None:
        self.backend = backend
        self.capacity = capacity
        self._batch = batch
        self._items: collections.deque[Item] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.up = True
        self.sent = 0
        self.dropped = 0
        label = backend.label
        self._m_sent = _metrics.sink_sent.labels(label)
        self._m_dropped = _metrics.sink_dropped.labels(label)
        self._m_buffered = _metrics.sink_buffered.labels(label)
        _metrics.sink_up.labels(label).set(1)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sink:{self.backend.label}")

    def put(self, target: Any, reading: Reading) -> None:
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
            self._m_dropped.inc()
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "sink %s: buffer full (%d); dropped %d oldest readings so far",
                    self.backend.label,
                    self.capacity,
                    self.dropped,
                )
        self._items.append((target, reading))
        self._m_buffered.set(len(self._items))
        self._wake.set()

    @property
    def buffered(self) -> int:
        return len(self._items)

    async def _run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._items:
                batch = [self._items.popleft() for _ in range(min(self._batch, len(self._items)))]
                try:
                    await self.backend.send(batch)
                except asyncio.CancelledError:
                    self._requeue(batch)
                    raise
                except Exception as exc:
                    self._requeue(batch)
                    self._mark(False, exc)
                    await backoff.sleep()
                    continue
                backoff.reset()
                self.sent += len(batch)
                self._m_sent.inc(len(batch))
                self._m_buffered.set(len(self._items))
                self._mark(True, None)

    def _requeue(self, batch: list[Item]) -> None:
        room = self.capacity - len(self._items)
        keep = batch[-room:] if room > 0 else []
        lost = len(batch) - len(keep)
        if lost:
            self.dropped += lost
            self._m_dropped.inc(lost)
        self._items.extendleft(reversed(keep))
        self._m_buffered.set(len(self._items))

    def _mark(self, up: bool, exc: BaseException | None) -> None:
        if up == self.up:
            return
        self.up = up
        _metrics.sink_up.labels(self.backend.label).set(1 if up else 0)
        if up:
            log.warning("sink %s: delivering again (%d buffered)", self.backend.label, len(self._items))
        else:
            log.warning(
                "sink %s: down (%s); buffering up to %d readings", self.backend.label, exc, self.capacity
            )

    async def close(self, flush_timeout_s: float = 2.0) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._items and self.up:
            # One last attempt so a clean shutdown does not lose what was just collected.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(flush_timeout_s):
                    await self.backend.send(list(self._items))
                self._items.clear()
        await self.backend.close()
