"""Kubernetes Events (core/v1), as client-go's event recorder writes them.

One Event per (object, type, reason, message): its name is derived from them, so the same event
again, from this process or after a restart, raises ``count`` and ``lastTimestamp`` of that Event
instead of adding one (what ``kubectl describe`` shows as ``(x5 over 3m)``). A repeat within
``min_interval`` is counted in memory and written with the next one, so a device failing every
second costs one write per interval, not one per failure. Writes run in the background, a few at a
time, and never block the caller; when the API server is away they are dropped after a warning
(Events are best-effort in Kubernetes too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from kubeclient._client import EVENTS, ApiError, Kube, Obj

log = logging.getLogger(__name__)

_MAX_PENDING = 1000


@dataclass
class _Seen:
    written_at: float
    count: int  # what the API server holds (as far as this process knows)
    unwritten: int = 0  # repeats not written yet


class EventRecorder:
    def __init__(self, kube: Kube, *, min_interval: float = 10.0, writers: int = 2) -> None:
        self.kube = kube
        self.min_interval = min_interval
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._queue: asyncio.Queue[Obj] | None = None
        self._writers = writers
        self._tasks: list[asyncio.Task[None]] = []
        #: Events written, by result (created, counted, failed, dropped), for /metrics and tests
        self.results: dict[str, int] = {}

    def _count(self, result: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1

    async def start(self) -> None:
        self._queue = asyncio.Queue(_MAX_PENDING)
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"events-{i}") for i in range(self._writers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def flushed(self) -> None:
        if self._queue is not None:
            await self._queue.join()

    def record(self, event: Obj) -> None:
        """Record an Event body (``kubeshore.events.new_event``; one from an edge node)."""
        key = (str(event["metadata"].get("namespace")), str(event["metadata"]["name"]))
        now = time.monotonic()
        seen = self._seen.get(key)
        if seen is not None and now - seen.written_at < self.min_interval:
            seen.unwritten += 1
            return
        if self._queue is None:
            return
        if seen is not None:
            seen.written_at = now
        else:
            self._seen[key] = _Seen(written_at=now, count=0)
            if len(self._seen) > 4 * _MAX_PENDING:
                # Forget the oldest: a later repeat then reads the count back from the API server.
                for old in sorted(self._seen, key=lambda k: self._seen[k].written_at)[:_MAX_PENDING]:
                    self._seen.pop(old, None)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._count("dropped")

    async def _write_loop(self) -> None:
        assert self._queue is not None
        while True:
            event = await self._queue.get()
            try:
                await self._write(event)
            except Exception as exc:
                self._count("failed")
                log.warning(
                    "event %s %s about %s not written: %s",
                    event.get("reason"),
                    event["metadata"]["name"],
                    (event.get("involvedObject") or {}).get("name"),
                    exc,
                )
            finally:
                self._queue.task_done()

    async def _write(self, event: Obj) -> None:
        ns, name = str(event["metadata"]["namespace"]), str(event["metadata"]["name"])
        seen = self._seen.setdefault((ns, name), _Seen(written_at=time.monotonic(), count=0))
        repeats, seen.unwritten = seen.unwritten, 0
        if seen.count == 0:
            try:
                created = await self.kube.run(self.kube.create, EVENTS, event, ns)
                seen.count = int(created.get("count") or 1)
                self._count("created")
                if not repeats:
                    return
            except ApiError as exc:
                if exc.status != 409:
                    raise
                current = await self.kube.run(self.kube.get, EVENTS, name, ns)
                seen.count = int((current or {}).get("count") or 1)
                repeats += 1
        else:
            repeats += 1
        seen.count += repeats
        patch = {"count": seen.count, "lastTimestamp": event.get("lastTimestamp")}
        await self.kube.run(self.kube.patch, EVENTS, name, patch, ns)
        self._count("counted")
