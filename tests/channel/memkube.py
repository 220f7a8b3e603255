"""An in-memory stand-in for an API server behind kubeclient's ``Kube`` interface.

Used only by in-process tests of cloudcore's logic; the end-to-end tests run the real embedded API
server through the official client.
"""

from __future__ import annotations

import copy
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from kubeclient import MERGE_PATCH, ApiError, Kube, Obj, Resource
from kubeshore import mergepatch


class MemoryKube(Kube):
    def __init__(self) -> None:
        super().__init__(_NoClient(), workers=4)
        self.lock = threading.Lock()
        self.rv = 0
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.watchers: list[tuple[str, queue.Queue[tuple[str, Obj] | None]]] = []
        self.requests = 0
        self.events: list[tuple[int, str, str, Obj]] = []

    def close(self) -> None:
        with self.lock:
            for _, q in self.watchers:
                q.put(None)
        super().close()

    def _emit(self, plural: str, kind: str, obj: Obj) -> None:
        self.events.append((self.rv, plural, kind, copy.deepcopy(obj)))
        for p, q in self.watchers:
            if p == plural:
                q.put((kind, copy.deepcopy(obj)))

    def _key(self, res: Resource, ns: str | None, name: str) -> tuple[str, str, str]:
        return (res.plural, (ns or "") if res.namespaced else "", name)

    def list(
        self, res: Resource, *, namespace: str | None = None, label_selector: str | None = None
    ) -> tuple[list[Obj], str]:
        with self.lock:
            self.requests += 1
            items = [
                copy.deepcopy(o)
                for (p, ns, _), o in self.objects.items()
                if p == res.plural and (namespace is None or ns == namespace)
            ]
            if label_selector:
                key = label_selector.split("=")[0]
                items = [o for o in items if key in (o["metadata"].get("labels") or {})]
            return items, str(self.rv)

    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
        with self.lock:
            self.requests += 1
            o = self.objects.get(self._key(res, namespace, name))
            return copy.deepcopy(o) if o is not None else None

    def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        with self.lock:
            self.requests += 1
            obj = copy.deepcopy(obj)
            md = obj.setdefault("metadata", {})
            ns = namespace or md.get("namespace") if res.namespaced else None
            if res.namespaced:
                md["namespace"] = ns or "default"
            key = self._key(res, md.get("namespace"), md["name"])
            if key in self.objects:
                raise ApiError(409, f"{res.plural} {md['name']} already exists")
            self.rv += 1
            md["uid"] = str(uuid.uuid4())
            md["resourceVersion"] = str(self.rv)
            obj["apiVersion"] = res.api_version
            obj["kind"] = res.kind
            self.objects[key] = obj
            self._emit(res.plural, "ADDED", obj)
            return copy.deepcopy(obj)

    def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        sub: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> Obj:
        assert content_type == MERGE_PATCH, content_type
        with self.lock:
            self.requests += 1
            key = self._key(res, namespace, name)
            if key not in self.objects:
                raise ApiError(404, f"{res.plural} {name} not found")
            old = self.objects[key]
            if sub == "status":
                patch = {"status": patch.get("status")}
            new = mergepatch.apply(old, patch)
            self.rv += 1
            new["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[key] = new
            self._emit(res.plural, "MODIFIED", new)
            return copy.deepcopy(new)

    def delete(
        self, res: Resource, name: str, namespace: str | None = None, propagation: str | None = None
    ) -> bool:
        with self.lock:
            self.requests += 1
            obj = self.objects.pop(self._key(res, namespace, name), None)
            if obj is None:
                return False
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._emit(res.plural, "DELETED", obj)
            return True

    def watch(
        self,
        res: Resource,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        q: queue.Queue[tuple[str, Obj] | None] = queue.Queue()
        with self.lock:
            since = int(resource_version or 0)
            for rv, plural, kind, obj in self.events:
                if rv > since and plural == res.plural:
                    q.put((kind, copy.deepcopy(obj)))
            self.watchers.append((res.plural, q))
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                yield item
        finally:
            with self.lock:
                self.watchers.remove((res.plural, q))

    # Convenience for tests.
    def put(self, res: Resource, obj: Obj) -> Obj:
        md = obj["metadata"]
        if self.get(res, md["name"], md.get("namespace")) is None:
            return self.create(res, obj, md.get("namespace"))
        return self.patch(res, md["name"], obj, md.get("namespace"))


class _NoClient:
    def close(self) -> None:
        pass
