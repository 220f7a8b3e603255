"""JSON access to one API server through the official ``kubernetes`` client.

Objects are plain dicts (the API's JSON): the client's HTTP layer, authentication and TLS are used,
its model classes are not, because (de)serialising models costs more than the rest of a fan-out and
one code path then serves built-in kinds, CRDs and whatever an EdgeApplication carries.
Blocking calls run in a thread pool owned by :class:`Kube`; the ``a*`` methods await them there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

Obj = dict[str, Any]
# Query parameters; None values are left out.
Query = dict[str, Any] | list[tuple[str, Any]] | None
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# A watch ends after the server's timeoutSeconds; the read timeout only catches a dead peer.
WATCH_READ_SLACK = 60


class ApiError(Exception):
    """A non-2xx answer: ``status`` is the HTTP code, ``reason`` the Status reason (may be empty)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: ``/api/<version>`` or ``/apis/<group>/<version>``, its plural and scope."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"{self.base}/namespaces/{quote(namespace)}/{self.plural}"
        return f"{self.base}/{self.plural}"

    def item(self, name: str, namespace: str | None = None, sub: str | None = None) -> str:
        path = f"{self.collection(namespace)}/{quote(name)}"
        return f"{path}/{sub}" if sub else path

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        return self.item(name, namespace, sub) if name else self.collection(namespace)


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
NODES = Resource("", "v1", "nodes", "Node", False)
PODS = Resource("", "v1", "pods", "Pod", True)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
SERVICES = Resource("", "v1", "services", "Service", True)
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints", True)
EVENTS = Resource("", "v1", "events", "Event", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", True)
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", True)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def object_key(obj: Obj) -> tuple[str, str]:
    """(namespace, name); the namespace is empty for cluster-scoped objects."""
    metadata = obj.get("metadata", {})
    return metadata.get("namespace") or "", str(metadata.get("name", ""))


def load_api_client(kubeconfig: str | None = None, *, pool_size: int = 24) -> Any:
    """An ``ApiClient`` from a kubeconfig file, or from the pod's service account when None."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is None:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    # Every worker thread and every watch holds a connection; a smaller pool would make the client
    # open (and TLS-handshake) a new connection for most requests.
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration=configuration)


def _error_from(status: int, data: bytes | None) -> ApiError:
    reason, message = "", (data or b"").decode(errors="replace")[:2000]
    with contextlib.suppress(ValueError, AttributeError):
        body = json.loads(data or b"")
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or message)
    return ApiError(status, message, reason)


class Kube:
    """Blocking dict-level access to one API server; the ``a*`` methods run them in the pool."""

    def __init__(self, api_client: Any, *, workers: int = 8) -> None:
        self.api_client = api_client
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="kube")
        self._discovery: dict[str, dict[str, Resource]] = {}
        self._open_streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_kubeconfig(cls, path: str | None, *, workers: int = 8) -> Kube:
        """``path`` None means in-cluster (service account token and CA)."""
        return cls(load_api_client(path, pool_size=workers + 16), workers=workers)

    def close(self) -> None:
        self.close_streams()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.api_client.close()

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

    # -- blocking -------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = 30.0,
        stream: bool = False,
    ) -> Any:
        """One request; the decoded JSON answer, or with ``stream`` the open response."""
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        pairs = query.items() if isinstance(query, dict) else (query or [])
        params = [(k, v) for k, v in pairs if v is not None]
        req = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=params,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self.api_client.call_api(*req, _request_timeout=timeout)
        except ApiException as exc:
            raise _error_from(exc.status or 0, (exc.body or str(exc.reason)).encode()) from exc
        raw = resp.response
        if stream:
            if not 200 <= raw.status <= 299:
                raise _error_from(raw.status, raw.read())
            return raw
        data = raw.read()
        if not 200 <= raw.status <= 299:
            raise _error_from(raw.status, data)
        return json.loads(data) if data else None

    def list(
        self, res: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[Obj], str]:
        """Items (with apiVersion and kind filled in) and the list's resourceVersion."""
        out = self.request("GET", res.collection(namespace), query={"labelSelector": label_selector})
        items = out.get("items") or []
        for item in items:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return items, str(out.get("metadata", {}).get("resourceVersion", ""))

    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        try:
            obj: Obj = self.request("GET", res.item(name, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        out: Obj = self.request("POST", res.collection(namespace), body=obj)
        return out

    def replace(self, res: Resource, obj: Obj, namespace: str | None = None, sub: str | None = None) -> Obj:
        out: Obj = self.request("PUT", res.item(obj["metadata"]["name"], namespace, sub), body=obj)
        return out

    def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        sub: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Obj:
        path = res.item(name, namespace, sub)
        out: Obj = self.request("PATCH", path, body=patch, content_type=content_type)
        return out

    def delete(
        self, res: Resource, name: str, namespace: str | None = None, propagation: str | None = None
    ) -> bool:
        """Delete; False when it was already gone."""
        body = {"propagationPolicy": propagation} if propagation else None
        try:
            self.request("DELETE", res.item(name, namespace), body=body)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(
        self,
        res: Resource,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        """Blocking (type, object) events; ends when the server closes or on ``close_streams``."""
        if self._closed:
            return
        raw = self.request(
            "GET",
            res.collection(),
            query={
                "watch": "true",
                "resourceVersion": resource_version or None,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_seconds,
                "labelSelector": label_selector,
            },
            timeout=(10.0, float(timeout_seconds + WATCH_READ_SLACK)),
            stream=True,
        )
        with self._streams_lock:
            self._open_streams.add(raw)
            closed = self._closed
        try:
            if closed:  # close_streams ran while the request was being made
                return
            pending = b""
            for chunk in raw.stream(65536, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield event["type"], event["object"]
            if pending.strip():
                event = json.loads(pending)
                yield event["type"], event["object"]
        except Exception:
            if not self._closed:
                raise
            # close_streams cut the connection under the read: that is how a watch is told to end.
        finally:
            with self._streams_lock:
                self._open_streams.discard(raw)
            with contextlib.suppress(Exception):
                raw.release_conn()

    # -- async --------------------------------------------------------------------------------
    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def arequest(self, method: str, path: str, **options: Any) -> Any:
        """:meth:`request` in the pool; ``options`` are its keyword arguments."""
        return await self.run(self.request, method, path, **options)

    async def aget(self, path: str) -> Obj:
        result: Obj = await self.arequest("GET", path)
        return result

    async def aget_or_none(self, path: str) -> Obj | None:
        try:
            return await self.aget(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def acreate(self, collection: str, body: Obj) -> Obj:
        result: Obj = await self.arequest("POST", collection, body=body)
        return result

    async def apatch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> Obj:
        result: Obj = await self.arequest("PATCH", path, body=body, content_type=content_type)
        return result

    async def adelete(self, path: str, propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        try:
            await self.arequest("DELETE", path, body={"propagationPolicy": propagation})
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def resource(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving ``kind`` in ``api_version``, or None if the server does not know it."""
        found = self._discovery.get(api_version, {}).get(kind)
        if found is not None:
            return found
        # CRDs may have been installed since the last look, so a miss always asks again.
        group, version = split_api_version(api_version)
        try:
            listing = await self.aget(f"/apis/{group}/{version}" if group else f"/api/{version}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        kinds: dict[str, Resource] = {}
        for item in listing.get("resources") or []:
            name = str(item.get("name", ""))
            if "/" not in name:
                kinds[str(item.get("kind"))] = Resource(
                    group, version, name, str(item.get("kind")), bool(item.get("namespaced"))
                )
        self._discovery[api_version] = kinds
        return kinds.get(kind)
