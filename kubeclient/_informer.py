"""List + watch one resource into a local cache and tell a handler about every change."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from kubeclient._client import ApiError, Kube, Obj, Resource, object_key
from kubeclient._workqueue import WorkQueue
from kubeshore.backoff import Backoff

log = logging.getLogger(__name__)

# Watches are renewed every 2 to 4 minutes, spread so that informers do not relist in step.
WATCH_SECONDS = 240

EventHandler = Callable[[str, Obj, Obj | None], Awaitable[None]]


class Informer:
    """A cache of one collection kept by list+watch with resourceVersion.

    ``handler(event_type, obj, old)`` runs on the event loop, one event at a time, for ADDED,
    MODIFIED and DELETED. The watch runs on its own thread so a long watch never holds a worker of
    the pool. After a watch error it resumes from the last resourceVersion (bookmarks keep it fresh);
    after 410 Gone it relists and synthesises events from the difference, so no change is lost.
    """

    def __init__(
        self, kube: Kube, res: Resource, handler: EventHandler, *, label_selector: str | None = None
    ) -> None:
        self.kube = kube
        self.res = res
        self.handler = handler
        self.label_selector = label_selector
        self.cache: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._stop = threading.Event()
        self._queue: asyncio.Queue[tuple[str, Obj]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        return self.cache.get((namespace or "", name))

    def values(self) -> list[Obj]:
        return list(self.cache.values())

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._dispatch(), name=f"informer-{self.res.plural}")
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.res.plural}", daemon=True)
        self._thread.start()

    async def wait_synced(self) -> None:
        await self.synced.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            self._task.cancel()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (for callers that manage tasks rather than start/stop)."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # -- watch thread -----------------------------------------------------------------------
    def _emit(self, kind: str, obj: Obj) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, obj))
        except RuntimeError:  # loop closed while the watch thread was still reading
            self._stop.set()

    def _run(self) -> None:
        backoff = Backoff(0.2, 5.0)
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    items, rv = self.kube.list(self.res, label_selector=self.label_selector)
                    self._emit("_RELIST", {"items": items})
                seconds = random.randint(WATCH_SECONDS // 2, WATCH_SECONDS)
                selector = self.label_selector
                started = time.monotonic()
                got_events = False
                events = self.kube.watch(self.res, rv, timeout_seconds=seconds, label_selector=selector)
                for kind, obj in events:
                    got_events = True
                    if self._stop.is_set():
                        return
                    if kind == "ERROR":
                        code, reason = int(obj.get("code") or 0), str(obj.get("reason") or "")
                        raise ApiError(code, str(obj.get("message")), reason)
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    if kind != "BOOKMARK":
                        obj.setdefault("apiVersion", self.res.api_version)
                        obj.setdefault("kind", self.res.kind)
                        self._emit(kind, obj)
                if not got_events and time.monotonic() - started < 1.0:
                    # A watch the server ends at once (shutting down, a proxy) must not become a hot loop.
                    self._stop.wait(backoff.next())
                else:
                    backoff.reset()
            except Exception as exc:
                if self._stop.is_set():
                    return
                if isinstance(exc, ApiError) and exc.status == 410:
                    # Our resourceVersion is older than the server keeps: relist at once.
                    log.info("watch %s expired; relisting", self.res.plural)
                    rv = ""
                    continue
                log.warning("watch %s failed (%s); retrying in %.1fs", self.res.plural, exc, backoff.nominal)
                self._stop.wait(backoff.next())

    # -- event loop -----------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            kind, obj = await self._queue.get()
            try:
                if kind == "_RELIST":
                    await self._relist(obj["items"])
                    self.synced.set()
                    continue
                key = object_key(obj)
                old = self.cache.get(key)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                await self.handler(kind, obj, old)
            except Exception:
                log.exception("handler for %s %s failed", self.res.plural, kind)

    async def _relist(self, items: list[Obj]) -> None:
        fresh = {object_key(o): o for o in items}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                del self.cache[key]
                await self.handler("DELETED", old, old)
        for key, obj in fresh.items():
            prev = self.cache.get(key)
            self.cache[key] = obj
            if prev is None:
                await self.handler("ADDED", obj, None)
            elif prev.get("metadata", {}).get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                await self.handler("MODIFIED", obj, prev)


async def wait_synced(stop: asyncio.Event, *informers: Informer) -> None:
    """Wait until every informer has listed once, or until ``stop``."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(i.synced.wait() for i in informers)))
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopper.cancel()


async def run_controller(
    stop: asyncio.Event,
    queue: WorkQueue,
    informers: Sequence[Informer],
    initial_keys: Callable[[], Iterable[str]] = tuple,
) -> None:
    """A controller's life: run its informers, wait until they have listed, queue ``initial_keys()``,
    then work the queue until ``stop``."""
    tasks = [asyncio.create_task(i.run(stop)) for i in informers]
    try:
        await wait_synced(stop, *informers)
        for key in initial_keys():
            queue.add(key)
        if not stop.is_set():
            await queue.run(stop)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
