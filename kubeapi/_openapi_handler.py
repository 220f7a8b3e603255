"""Serves ``/openapi/v2`` and ``/openapi/v3[/...]`` from the resource registry.

The documents come from :mod:`kubeapi.openapi`; they are rebuilt (in a worker thread) on the first
request after the registry changes (a CRD created, updated or deleted) and otherwise served from
memory, already encoded. ``/openapi/v2`` is also served as gnostic's protobuf
(:mod:`kubeapi._openapi_protobuf`), the only form client-go asks for: encoded on the first request that
asks for it and kept while the document's hash stays the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubeapi.errors import unknown_resource
from kubeapi.resources import Registry

if TYPE_CHECKING:
    # kubeapi.openapi (with the built-in schemas) is imported when a document is first asked for:
    # the edge MetaServer rarely serves one.
    from kubeapi.openapi import OpenAPIDocuments

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_JSON = "application/json"
# client-go asks for the deprecated spelling; kube-apiserver answers either with the new one.
_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_PROTOBUF_DEPRECATED = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


Encoded = dict[str, bytes]


@dataclass(frozen=True)
class _Built:
    """The documents of one registry generation and the JSON bodies of ``/openapi/v3[/...]``."""

    generation: int
    docs: OpenAPIDocuments
    encoded: Encoded


@dataclass(frozen=True)
class _V2:
    """``/openapi/v2`` of one registry generation, as served: the document, its JSON and their hash."""

    generation: int
    doc: dict[str, Any]
    json: bytes
    hash: str


class _Documents:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.lock = threading.Lock()
        self.state: _Built | None = None
        # Built on the first /openapi/v2 request: kubectl asks for it for `apply` and lists only.
        self.v2: _V2 | None = None
        # (v2 hash, its protobuf form): a CRD change that leaves v2 as it was keeps it.
        self.v2_protobuf: tuple[str, bytes] | None = None

    def fresh(self) -> _Built | None:
        state = self.state
        return state if state is not None and state.generation == self.registry.generation else None

    def current(self) -> _Built:
        with self.lock:
            cached = self.fresh()
            if cached is not None:
                return cached
            generation = self.registry.generation
            from kubeapi.openapi import build_openapi, describe

            docs = build_openapi(describe(t) for t in self.registry.all())
            encoded = {
                "v3": json.dumps(docs.v3_discovery).encode(),
                **{path: json.dumps(doc).encode() for path, doc in docs.v3.items()},
            }
            self.state = _Built(generation, docs, encoded)
            return self.state

    def fresh_v2(self, built: _Built) -> _V2 | None:
        v2 = self.v2
        return v2 if v2 is not None and v2.generation == built.generation else None

    def current_v2(self, built: _Built) -> _V2:
        with self.lock:
            v2 = self.fresh_v2(built)
            if v2 is None:
                doc = built.docs.v2
                body = json.dumps(doc).encode()
                v2 = self.v2 = _V2(built.generation, doc, body, hashlib.sha512(body).hexdigest().upper())
            return v2

    def cached_protobuf(self, v2: _V2) -> bytes | None:
        cached = self.v2_protobuf
        return cached[1] if cached is not None and cached[0] == v2.hash else None

    def protobuf(self, v2: _V2) -> bytes:
        with self.lock:
            cached = self.cached_protobuf(v2)
            if cached is None:
                from kubeapi._openapi_protobuf import encode_document

                cached = encode_document(v2.doc)
                self.v2_protobuf = (v2.hash, cached)
            return cached


def _v2_media_type(accept: str) -> str | None:
    """The type ``/openapi/v2`` answers ``accept`` with, as kube-apiserver picks it: the clauses by
    falling quality, the first that JSON or protobuf matches; ``None`` when neither does."""
    clauses = []
    for position, part in enumerate((accept or "*/*").split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            clauses.append((-quality, position, media.lower()))
    for _, _, media in sorted(clauses):
        if media in (_JSON, "*/*", "application/*"):
            return _JSON
        if media in (_PROTOBUF, _PROTOBUF_DEPRECATED):
            return _PROTOBUF
    return None


def make_handler(registry: Registry) -> Handler:
    documents = _Documents(registry)

    async def serve_v2(request: web.Request, built: _Built) -> web.Response:
        media = _v2_media_type(request.headers.get("Accept", ""))
        if media is None:
            return web.Response(
                status=406, text=f"/openapi/v2 is served as {_JSON} or {_PROTOBUF} ({_PROTOBUF_DEPRECATED})"
            )
        # Completing and encoding take tens of milliseconds each: keep them off the event loop.
        v2 = documents.fresh_v2(built)
        if v2 is None:
            v2 = await asyncio.to_thread(documents.current_v2, built)
        etag = f'"{v2.hash}"'
        headers = {"ETag": etag, "Vary": "Accept", "Cache-Control": "no-cache, private"}
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        if media == _JSON:
            return web.Response(body=v2.json, content_type=_JSON, headers=headers)
        body = documents.cached_protobuf(v2)
        if body is None:
            body = await asyncio.to_thread(documents.protobuf, v2)
        return web.Response(body=body, content_type=_PROTOBUF, headers=headers)

    async def serve(request: web.Request) -> web.StreamResponse:
        # Building takes tens of milliseconds: keep it off the event loop.
        built = documents.fresh()
        if built is None:
            built = await asyncio.to_thread(documents.current)
        docs, encoded = built.docs, built.encoded
        path = request.path.rstrip("/")
        if path == "/openapi/v2":
            return await serve_v2(request, built)
        if path == "/openapi/v3":
            return web.Response(body=encoded["v3"], content_type=_JSON)
        key = path.removeprefix("/openapi/v3/")
        if path.startswith("/openapi/v3/") and key in docs.v3:
            fresh = request.query.get("hash") == docs.hashes[key]
            headers = {"Cache-Control": "public, immutable" if fresh else "no-cache, private"}
            return web.Response(body=encoded[key], content_type=_JSON, headers=headers)
        raise unknown_resource()

    return serve
