"""Serves ``/openapi/v2`` and ``/openapi/v3[/...]`` from the resource registry.

The documents come from :mod:`kubeapi.openapi`; they are rebuilt (in a worker thread) on the first
request after the registry changes (a CRD created, updated or deleted) and otherwise served from
memory, already encoded.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from kubeapi.errors import unknown_resource
from kubeapi.resources import Registry

if TYPE_CHECKING:
    # kubeapi.openapi (with the built-in schemas) is imported when a document is first asked for:
    # the edge MetaServer rarely serves one.
    from kubeapi.openapi import OpenAPIDocuments

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


Encoded = dict[str, bytes]


class _Documents:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.lock = threading.Lock()
        # (registry generation, documents, their encoded bodies), replaced as a whole.
        self.state: tuple[int, OpenAPIDocuments, Encoded] | None = None

    def fresh(self) -> tuple[OpenAPIDocuments, Encoded] | None:
        state = self.state
        if state is not None and state[0] == self.registry.generation:
            return state[1], state[2]
        return None

    def current(self) -> tuple[OpenAPIDocuments, Encoded]:
        with self.lock:
            cached = self.fresh()
            if cached is not None:
                return cached
            generation = self.registry.generation
            from kubeapi.openapi import build_openapi, describe

            docs = build_openapi(describe(t) for t in self.registry.all())
            encoded = {
                "v2": json.dumps(docs.v2).encode(),
                "v3": json.dumps(docs.v3_discovery).encode(),
                **{path: json.dumps(doc).encode() for path, doc in docs.v3.items()},
            }
            self.state = (generation, docs, encoded)
            return docs, encoded


def _accepts_json(accept: str) -> bool:
    if not accept:
        return True
    types = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    return any(t in ("application/json", "*/*", "application/*") for t in types)


def make_handler(registry: Registry) -> Handler:
    documents = _Documents(registry)

    async def serve(request: web.Request) -> web.StreamResponse:
        # Building takes tens of milliseconds: keep it off the event loop.
        cached = documents.fresh()
        if cached is None:
            cached = await asyncio.to_thread(documents.current)
        docs, encoded = cached
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
