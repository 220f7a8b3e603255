"""Temporary stand-in until kubeapi/openapi.py lands: OpenAPI v3 documents with paths only, so
kubectl sees that the server validates fields (``fieldValidation``) and needs no schemas."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kubeapi.errors import unknown_resource
from kubeapi.resources import Registry


def _gv_doc(registry: Registry, group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    prefix = f"/apis/{group}/{version}" if group else "/api/v1"
    for t in registry.all():
        if t.group != group or t.version != version:
            continue
        base = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        gvk = {"group": group, "version": version, "kind": t.kind}
        paths[base + "/{name}"] = {
            "patch": {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "patch",
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def make_handler(registry: Registry) -> Any:
    async def serve(request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p][2:]
        if request.path.startswith("/openapi/v3"):
            if not parts:
                root = {}
                for group, versions in registry.groups().items():
                    for v in versions:
                        key = f"apis/{group}/{v}" if group else "api/v1"
                        root[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={registry.generation}"}
                body: dict[str, Any] = {"paths": root}
            elif parts[0] == "api" and parts[1:] == ["v1"]:
                body = _gv_doc(registry, "", "v1")
            elif parts[0] == "apis" and len(parts) == 3:
                body = _gv_doc(registry, parts[1], parts[2])
            else:
                raise unknown_resource()
            return web.Response(body=json.dumps(body).encode(), content_type="application/json")
        raise unknown_resource()

    return serve
