"""Serves ``/openapi/v2`` and ``/openapi/v3[/...]`` from the resource registry.

The documents come from :mod:`kubeapi.openapi`; they are rebuilt when the registry changes (a CRD
created, updated or deleted) and otherwise served from memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

from kubeapi.errors import unknown_resource
from kubeapi.openapi import OpenAPIDocuments, ResourceDescription, build_openapi
from kubeapi.resources import Registry, ResourceType

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def describe(resource: ResourceType) -> ResourceDescription:
    return ResourceDescription(
        group=resource.group,
        version=resource.version,
        kind=resource.kind,
        plural=resource.plural,
        namespaced=resource.namespaced,
        schema=resource.schema,
        subresources=frozenset(resource.subresources),
        builtin=not resource.custom,
    )


class _Documents:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.lock = threading.Lock()
        self.generation = -1
        self.docs: OpenAPIDocuments | None = None
        self.encoded: dict[str, bytes] = {}

    def current(self) -> tuple[OpenAPIDocuments, dict[str, bytes]]:
        with self.lock:
            if self.docs is None or self.generation != self.registry.generation:
                generation = self.registry.generation
                docs = build_openapi(describe(t) for t in self.registry.all())
                self.encoded = {
                    "v2": json.dumps(docs.v2).encode(),
                    "v3": json.dumps(docs.v3_discovery).encode(),
                    **{path: json.dumps(doc).encode() for path, doc in docs.v3.items()},
                }
                self.docs, self.generation = docs, generation
            return self.docs, self.encoded


def _accepts_json(accept: str) -> bool:
    if not accept:
        return True
    types = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return any(t in ("application/json", "*/*", "application/*") for t in types)


def make_handler(registry: Registry) -> Handler:
    documents = _Documents(registry)

    async def serve(request: web.Request) -> web.StreamResponse:
        docs, encoded = documents.current()
        path = request.path.rstrip("/")
        if path == "/openapi/v2":
            if not _accepts_json(request.headers.get("Accept", "")):
                # kubectl asks for protobuf only and carries on without the document.
                return web.Response(status=406, text="only application/json is served")
            return web.Response(body=encoded["v2"], content_type="application/json")
        if path == "/openapi/v3":
            return web.Response(body=encoded["v3"], content_type="application/json")
        key = path.removeprefix("/openapi/v3/")
        if path.startswith("/openapi/v3/") and key in docs.v3:
            fresh = request.query.get("hash") == docs.hashes[key]
            headers = {"Cache-Control": "public, immutable" if fresh else "no-cache, private"}
            return web.Response(body=encoded[key], content_type="application/json", headers=headers)
        raise unknown_resource()

    return serve
