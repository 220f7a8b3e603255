"""Kubernetes access for cloudcore, only through the official ``kubernetes`` client.

Objects are plain dicts (the API's JSON): the client's HTTP layer, authentication and TLS are used,
its model classes are not, because (de)serialising models costs more than the rest of a fan-out.
Blocking calls run in a thread pool owned by :class:`Kube`; watches run on their own threads
(:class:`Informer`) so a long watch never starves the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


NAMESPACES = ApiResource("", "v1", "namespaces", "Namespace", False)
NODES = ApiResource("", "v1", "nodes", "Node", False)
PODS = ApiResource("", "v1", "pods", "Pod", True)
CONFIGMAPS = ApiResource("", "v1", "configmaps", "ConfigMap", True)
SECRETS = ApiResource("", "v1", "secrets", "Secret", True)
SERVICES = ApiResource("", "v1", "services", "Service", True)
ENDPOINTS = ApiResource("", "v1", "endpoints", "Endpoints", True)
ENDPOINTSLICES = ApiResource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
CRDS = ApiResource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False
)
OBJECTSYNCS = ApiResource("reliablesyncs.kubeedge.io", "v1alpha1", "objectsyncs", "ObjectSync", True)
CLUSTEROBJECTSYNCS = ApiResource(
    "reliablesyncs.kubeedge.io", "v1alpha1", "clusterobjectsyncs", "ClusterObjectSync", False
)


class KubeError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class Kube:
    """Blocking dict-level access to one API server; ``a*`` methods run them in the pool."""

    def __init__(self, api_client: Any, *, workers: int = 8) -> None:
        self._api = api_client
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kube")

    @classmethod
    def from_kubeconfig(cls, path: str, *, workers: int = 8) -> Kube:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        # Every worker thread and every watch holds a connection; a smaller pool would make the
        # client open (and TLS-handshake) a new connection for most requests.
        configuration.connection_pool_maxsize = workers + 16
        return cls(client.ApiClient(configuration=configuration), workers=workers)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = 30.0,
        stream: bool = False,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        req = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(*req, _request_timeout=timeout)
        except ApiException as exc:
            raise KubeError(exc.status or 0, str(exc.reason)) from exc
        raw = resp.response
        if stream:
            if not 200 <= raw.status <= 299:
                raise KubeError(raw.status, raw.read().decode(errors="replace")[:500])
            return raw
        data = raw.read()
        if not 200 <= raw.status <= 299:
            reason = data.decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                reason = json.loads(data).get("message", reason)
            raise KubeError(raw.status, reason)
        return json.loads(data) if data else None

    # Typed helpers over request().
    def list(
        self, res: ApiResource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[Obj], str]:
        out = self.request("GET", res.path(namespace), query={"labelSelector": label_selector})
        items = out.get("items") or []
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return items, str(out.get("metadata", {}).get("resourceVersion", ""))

    def get(self, res: ApiResource, name: str, namespace: str | None = None) -> Obj | None:
        try:
            obj: Obj = self.request("GET", res.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def create(self, res: ApiResource, obj: Obj, namespace: str | None = None) -> Obj:
        out: Obj = self.request("POST", res.path(namespace), body=obj)
        return out

    def replace(
        self, res: ApiResource, obj: Obj, namespace: str | None = None, sub: str | None = None
    ) -> Obj:
        out: Obj = self.request("PUT", res.path(namespace, obj["metadata"]["name"], sub), body=obj)
        return out

    def patch(
        self, res: ApiResource, name: str, patch: Obj, namespace: str | None = None, sub: str | None = None
    ) -> Obj:
        out: Obj = self.request(
            "PATCH", res.path(namespace, name, sub), body=patch, content_type="application/merge-patch+json"
        )
        return out

    def delete(self, res: ApiResource, name: str, namespace: str | None = None) -> bool:
        try:
            self.request("DELETE", res.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(
        self, res: ApiResource, resource_version: str, *, timeout_seconds: int = 300
    ) -> Iterator[tuple[str, Obj]]:
        raw = self.request(
            "GET",
            res.path(),
            query={
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_seconds,
            },
            timeout=timeout_seconds + 30,
            stream=True,
        )
        try:
            buf = b""
            for chunk in raw.stream(65536, decode_content=False):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]
        finally:
            raw.release_conn()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))


def key_of(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata", {})
    return md.get("namespace") or "", md["name"]


EventHandler = Callable[[str, Obj, Obj | None], Awaitable[None]]


class Informer:
    """List + watch one resource with resourceVersion, keep a cache, call ``handler`` in the loop.

    ``handler(event_type, obj, old)`` gets ADDED/MODIFIED/DELETED. After a watch error or 410 the
    informer relists and synthesises events from the difference, so no change is lost.
    """

    def __init__(self, kube: Kube, res: ApiResource, handler: EventHandler) -> None:
        self.kube = kube
        self.res = res
        self.handler = handler
        self.cache: dict[tuple[str, str], Obj] = {}
        self._synced = asyncio.Event()
        self._stop = threading.Event()
        self._queue: asyncio.Queue[tuple[str, Obj]] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._dispatch(), name=f"informer-{self.res.plural}")
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.res.plural}", daemon=True)
        self._thread.start()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            self._task.cancel()

    def _emit(self, kind: str, obj: Obj) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, obj))
        except RuntimeError:  # loop closed while the watch thread was still reading
            self._stop.set()

    def _run(self) -> None:
        backoff = 0.5
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    items, rv = self.kube.list(self.res)
                    self._emit("_RELIST", {"items": items})
                for kind, obj in self.kube.watch(self.res, rv, timeout_seconds=240):
                    if self._stop.is_set():
                        return
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            rv = ""
                        raise KubeError(int(obj.get("code") or 0), str(obj.get("message")))
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if kind != "BOOKMARK":
                        obj.setdefault("apiVersion", self.res.api_version)
                        obj.setdefault("kind", self.res.kind)
                        self._emit(kind, obj)
                backoff = 0.5
            except Exception as exc:
                if self._stop.is_set():
                    return
                if isinstance(exc, KubeError) and exc.status == 410:
                    rv = ""
                log.warning("watch %s failed (%s); retrying in %.1fs", self.res.plural, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _dispatch(self) -> None:
        while True:
            kind, obj = await self._queue.get()
            try:
                if kind == "_RELIST":
                    await self._relist(obj["items"])
                    self._synced.set()
                    continue
                key = key_of(obj)
                old: Obj | None = self.cache.get(key)
                if kind == "DELETED":
                    self.cache.pop(key, None)
                else:
                    self.cache[key] = obj
                await self.handler(kind, obj, old)
            except Exception:
                log.exception("handler for %s %s failed", self.res.plural, kind)

    async def _relist(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in items}
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
