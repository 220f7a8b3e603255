"""Small helpers over the official ``kubernetes`` client: JSON requests, discovery, informers.

Everything is plain dicts (the API's JSON), so one code path serves Nodes, CRDs and whatever kind
an EdgeApplication carries. The synchronous client runs in a thread pool owned by ``Kube``; watches
are list+watch with resourceVersion, resumed after errors and relisted after 410 Gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# Watches are renewed every 2.5 to 5 minutes (spread so that informers do not relist in step).
WATCH_SECONDS = 300
WATCH_READ_TIMEOUT = WATCH_SECONDS + 60


class ApiError(Exception):
    """A non-2xx answer; ``status`` is the HTTP code, ``reason`` the Status reason."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def api_client_from_kubeconfig(path: str) -> k8s_client.ApiClient:
    loader: Any = k8s_config.new_client_from_config
    api_client: k8s_client.ApiClient = loader(config_file=path, persist_config=False)
    return api_client


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: ``/api/v1`` or ``/apis/<group>/<version>``, its plural and scope."""

    base: str
    plural: str
    namespaced: bool
    group: str
    version: str
    kind: str

    def collection(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"{self.base}/namespaces/{quote(namespace)}/{self.plural}"
        return f"{self.base}/{self.plural}"

    def item(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection(namespace)}/{quote(name)}"


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class Kube:
    """JSON access to one API server through an ``ApiClient``; blocking calls run in own threads."""

    def __init__(self, api_client: k8s_client.ApiClient, max_workers: int = 8) -> None:
        self.api_client = api_client
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kube")
        self._discovery: dict[str, dict[str, Resource]] = {}
        self._discovery_lock = asyncio.Lock()
        self._open_streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self._closed = False

    # -- plumbing -----------------------------------------------------------------------------
    def _request_sync(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        elif body is not None:
            headers["Content-Type"] = "application/json"
        request = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response: Any = self.api_client.call_api(*request, _request_timeout=timeout)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise _error_from(response.status, data)
        return json.loads(data) if data else None

    async def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self._request_sync(method, path, query, body, content_type)
        )

    async def get(self, path: str) -> Obj:
        result: Obj = await self.request("GET", path)
        return result

    async def get_or_none(self, path: str) -> Obj | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, collection: str, body: Obj) -> Obj:
        result: Obj = await self.request("POST", collection, body=body)
        return result

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Obj:
        result: Obj = await self.request("PATCH", path, body=body, content_type=content_type)
        return result

    async def delete(self, path: str, propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        try:
            await self.request("DELETE", path, body={"propagationPolicy": propagation})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- discovery ----------------------------------------------------------------------------
    async def resource(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving ``kind`` in ``api_version``, or None if the server does not know it."""
        found = self._discovery.get(api_version, {}).get(kind)
        if found is not None:
            return found
        async with self._discovery_lock:
            # CRDs may have been installed since the last look, so a miss always asks again.
            group, version = split_api_version(api_version)
            base = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                listing = await self.get(base)
            except ApiError as exc:
                if exc.status == 404:
                    return None
                raise
            kinds: dict[str, Resource] = {}
            for item in listing.get("resources") or []:
                name = str(item.get("name", ""))
                if "/" in name:
                    continue
                kinds[str(item.get("kind"))] = Resource(
                    base=base,
                    plural=name,
                    namespaced=bool(item.get("namespaced")),
                    group=group,
                    version=version,
                    kind=str(item.get("kind")),
                )
            self._discovery[api_version] = kinds
            return kinds.get(kind)

    # -- watch --------------------------------------------------------------------------------
    def watch_lines(self, path: str, query: list[tuple[str, Any]]) -> Iterator[Obj]:
        """Blocking iterator over watch events; ends when the server closes or ``close_streams``."""
        if self._closed:
            return
        headers = {"Accept": "application/json"}
        request = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            query_params=[*query, ("watch", "true")],
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        # The server ends a watch after its timeoutSeconds; the read timeout only catches dead peers.
        response: Any = self.api_client.call_api(*request, _request_timeout=(10, WATCH_READ_TIMEOUT))
        if not 200 <= response.status <= 299:
            raise _error_from(response.status, response.read())
        raw = response.response
        with self._streams_lock:
            self._open_streams.add(raw)
            closed = self._closed
        if closed:
            # close_streams ran while this request was being made: do not start reading.
            raw.release_conn()
            return
        try:
            pending = b""
            for chunk in raw.stream(8192, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if pending.strip():
                yield json.loads(pending)
        finally:
            with self._streams_lock:
                self._open_streams.discard(raw)
            with contextlib.suppress(Exception):
                raw.release_conn()

    def close_streams(self) -> None:
        """End every watch now and refuse new ones (threads blocked in reads return at once)."""
        with self._streams_lock:
            self._closed = True
            streams = list(self._open_streams)
        for raw in streams:
            with contextlib.suppress(Exception):
                raw.shutdown()
            with contextlib.suppress(Exception):
                raw.close()

    def run_in_thread(self, func: Callable[[], Any]) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, func)

    def close(self) -> None:
        self.close_streams()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _error_from(status: int, data: bytes | None) -> ApiError:
    reason, message = "", (data or b"").decode(errors="replace")
    with contextlib.suppress(ValueError, AttributeError):
        body = json.loads(data or b"")
        reason = str(body.get("reason", ""))
        message = str(body.get("message", message))
    return ApiError(status, reason, message)


def object_key(obj: Obj) -> str:
    metadata = obj.get("metadata", {})
    namespace = metadata.get("namespace")
    name = metadata.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


Handler = Callable[[Obj | None, Obj | None], None]


class Informer:
    """A local cache of one collection kept by list+watch; ``handler(old, new)`` sees every change.

    ``handler`` runs on the event loop and should only enqueue work.
    """

    def __init__(self, kube: Kube, path: str, handler: Handler, label_selector: str | None = None) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self.label_selector = label_selector
        self.store: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        self._rv = ""

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def values(self) -> list[Obj]:
        return list(self.store.values())

    def _query(self) -> list[tuple[str, Any]]:
        return [("labelSelector", self.label_selector)] if self.label_selector else []

    async def _relist(self) -> None:
        listing = await self.kube.request("GET", self.path, query=self._query())
        fresh = {object_key(item): item for item in listing.get("items") or []}
        self._rv = str(listing.get("metadata", {}).get("resourceVersion", ""))
        old_store, self.store = self.store, fresh
        for key, obj in fresh.items():
            old = old_store.get(key)
            if old is None or old.get("metadata", {}).get("resourceVersion") != obj.get("metadata", {}).get(
                "resourceVersion"
            ):
                self.handler(old, obj)
        for key, old in old_store.items():
            if key not in fresh:
                self.handler(old, None)
        self.synced.set()

    def _apply(self, event: Obj) -> bool:
        """Apply one watch event; False when the watch must restart with a relist."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            log.info("watch %s: %s", self.path, obj.get("message"))
            if code == 410:
                self._rv = ""
            return False
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv:
            self._rv = str(rv)
        if kind == "BOOKMARK":
            return True
        key = object_key(obj)
        old = self.store.get(key)
        if kind == "DELETED":
            self.store.pop(key, None)
            self.handler(old, None)
        else:
            self.store[key] = obj
            self.handler(old, obj)
        return True

    def _pump(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[Obj | BaseException | None],
        query: list[tuple[str, Any]],
    ) -> None:
        """Thread side of a watch: hands each event to the loop; None marks a clean end."""
        try:
            for event in self.kube.watch_lines(self.path, query):
                loop.call_soon_threadsafe(queue.put_nowait, event)
        except BaseException as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.2
        while not stop.is_set():
            try:
                if not self._rv:
                    await self._relist()
                queue: asyncio.Queue[Obj | BaseException | None] = asyncio.Queue()
                rv = self._rv
                query = [
                    *self._query(),
                    ("resourceVersion", rv),
                    ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", str(random.randint(WATCH_SECONDS // 2, WATCH_SECONDS))),
                ]
                self.kube.run_in_thread(lambda q=queue, qs=query: self._pump(loop, q, qs))  # type: ignore[misc]
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    stopper.cancel()
                    if not getter.done():
                        getter.cancel()
                        return
                    item = getter.result()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if not self._apply(item):
                        break
                backoff = 0.2
            except ApiError as exc:
                if exc.status == 410:
                    self._rv = ""
                    continue
                log.warning("list/watch %s failed: %s", self.path, exc)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                if stop.is_set():
                    return
                log.warning("list/watch %s failed: %s", self.path, exc)
                await _sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def wait_synced(stop: asyncio.Event, *events: asyncio.Event) -> None:
    """Wait until every informer has listed once, or until ``stop``."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in events)))
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopper.cancel()
