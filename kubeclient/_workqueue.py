"""A deduplicating work queue: a key queued while waiting is processed once; failures retry later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from kubeshore.backoff import exponential

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(
        self, name: str, reconcile: Callable[[str], Awaitable[None]], max_backoff: float = 10.0
    ) -> None:
        self.name = name
        self._reconcile = reconcile
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()
        self._running: set[str] = set()
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._max_backoff = max_backoff
        self._retries: set[asyncio.TimerHandle] = set()

    def add(self, key: str) -> None:
        if key in self._running:
            # Re-run after the current pass: the change it saw may be older than this one.
            self._dirty.add(key)
            return
        if key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._retries.discard(handle)
            self.add(key)

        handle = loop.call_later(delay, fire)
        self._retries.add(handle)

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self._queue.get())
                await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                key = getter.result()
                self._waiting.discard(key)
                self._running.add(key)
                try:
                    await self._reconcile(key)
                    self._failures.pop(key, None)
                except Exception as exc:
                    failures = self._failures.get(key, 0) + 1
                    self._failures[key] = failures
                    delay = exponential(failures, 0.1, self._max_backoff)
                    if getattr(exc, "status", None) == 409:
                        # Optimistic concurrency lost a race: routine, retried with fresh data.
                        log.debug("%s: %s changed meanwhile (retry in %.1fs)", self.name, key, delay)
                    else:
                        log.exception("%s: reconciling %s failed (retry in %.1fs)", self.name, key, delay)
                    self.add_after(key, delay)
                finally:
                    self._running.discard(key)
                    if key in self._dirty:
                        self._dirty.discard(key)
                        self.add(key)
        finally:
            stopper.cancel()
            for handle in self._retries:
                handle.cancel()
            with contextlib.suppress(Exception):
                self._retries.clear()
