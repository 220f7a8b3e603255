"""A small in-memory API server wiring kubeapi.patch, kubeapi.schema and kubeapi.openapi together, so
tests can drive the real ``kubectl`` against them. It is a test fixture, not the embedded API server:
no watch, no selectors, no persistence; just enough REST for get/create/apply/patch/edit/explain.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from kubeapi.openapi import ResourceDescription, build_openapi
from kubeapi.patch import APPLY_PATCH, PatchError, apply_patch, patch_options_status, strategic_merge_lists
from kubeapi.schema import admit, invalid_status, strict_decoding_status, unknown_field_warnings


def status(code: int, reason: str, message: str, **details: Any) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return web.json_response(body, status=code)


@dataclass
class FakeAPIServer:
    resources: list[ResourceDescription]
    store: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def __post_init__(self) -> None:
        self.docs = build_openapi(self.resources)

    async def start(self, kubeconfig: Path) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{self.port}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]\n"
            "current-context: c\n"
        )
        await asyncio.to_thread(kubeconfig.write_text, text)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    # -- routing -------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, request.headers.get("Content-Type", ""), body))
        path = request.path
        if path == "/version":
            return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if path.startswith("/openapi/"):
            return self.openapi(request)
        parts = path.strip("/").split("/")
        if parts == ["api"]:
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            return web.json_response(self.group_list())
        if parts[0] == "api" and len(parts) == 2:
            return web.json_response(self.resource_list("", parts[1]))
        if parts[0] == "apis" and len(parts) == 3:
            return web.json_response(self.resource_list(parts[1], parts[2]))
        return await self.resource(request, parts, body)

    def openapi(self, request: web.Request) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        if request.path == "/openapi/v2":
            if "application/json" not in accept and "*/*" not in accept:
                return status(406, "NotAcceptable", "only application/json is served")
            return web.json_response(self.docs.v2)
        if request.path == "/openapi/v3":
            return web.json_response(self.docs.v3_discovery)
        key = request.path.removeprefix("/openapi/v3/")
        if key not in self.docs.v3:
            return status(404, "NotFound", f"no OpenAPI document for {key}")
        fresh = request.query.get("hash") == self.docs.hashes[key]
        cache = "public, immutable" if fresh else "no-cache, private"
        return web.json_response(self.docs.v3[key], headers={"Cache-Control": cache})

    def group_list(self) -> dict[str, Any]:
        groups: dict[str, list[str]] = {}
        for res in self.resources:
            if res.group and res.version not in groups.setdefault(res.group, []):
                groups[res.group].append(res.version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                    "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                }
                for g, vs in groups.items()
            ],
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        verbs = ["create", "delete", "get", "list", "patch", "update"]
        items = []
        for res in self.resources:
            if res.group == group and res.version == version:
                items.append(
                    {
                        "name": res.plural,
                        "singularName": res.kind.lower(),
                        "namespaced": res.namespaced,
                        "kind": res.kind,
                        "verbs": verbs,
                    }
                )
                items.extend(
                    {
                        "name": f"{res.plural}/{sub}",
                        "singularName": "",
                        "namespaced": res.namespaced,
                        "kind": res.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                    for sub in sorted(res.subresources)
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": items,
        }

    # -- objects -------------------------------------------------------------------------------

    def find(self, parts: list[str]) -> tuple[ResourceDescription, str, str | None] | None:
        group, version, rest = (
            ("", parts[1], parts[2:]) if parts[0] == "api" else (parts[1], parts[2], parts[3:])
        )
        namespace = ""
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return None
        for res in self.resources:
            if (res.group, res.version, res.plural) == (group, version, rest[0]):
                return res, namespace, rest[1] if len(rest) > 1 else None
        return None

    async def resource(self, request: web.Request, parts: list[str], body: bytes) -> web.StreamResponse:
        found = self.find(parts)
        if found is None:
            return status(404, "NotFound", "the server could not find the requested resource")
        res, namespace, name = found
        key = f"{res.group}/{res.plural}/{namespace}/{name}"
        if request.method == "GET" and name:
            if key not in self.store:
                return status(404, "NotFound", f'{res.plural} "{name}" not found', name=name, kind=res.plural)
            return web.json_response(self.store[key])
        if request.method == "POST" and not name:
            obj = json.loads(body)
            name = obj.get("metadata", {}).get("name", "")
            key = f"{res.group}/{res.plural}/{namespace}/{name}"
            if key in self.store:
                return status(409, "AlreadyExists", f'{res.plural} "{name}" already exists')
            return self.save(request, res, key, namespace, obj, 201)
        if request.method == "PATCH" and name:
            content_type = request.headers.get("Content-Type", "")
            invalid = patch_options_status(
                content_type, request.query.get("fieldManager"), request.query.get("force")
            )
            if invalid is not None:
                return web.json_response(invalid, status=422)
            apply = content_type.startswith(APPLY_PATCH)
            if key not in self.store and not apply:
                return status(404, "NotFound", f'{res.plural} "{name}" not found')
            live = self.store.get(key, {})
            lists = strategic_merge_lists(res.group, res.version, res.kind) if res.builtin else None
            try:
                patched = apply_patch(content_type, live, body, merge_lists=lists, schema=res.schema)
            except PatchError as err:
                return web.json_response(err.status(), status=err.code)
            return self.save(request, res, key, namespace, patched, 200 if live else 201)
        return status(405, "MethodNotAllowed", f"{request.method} is not supported here")

    def save(
        self,
        request: web.Request,
        res: ResourceDescription,
        key: str,
        namespace: str,
        obj: dict[str, Any],
        code: int,
    ) -> web.StreamResponse:
        headers: dict[str, str] = {}
        if not res.builtin and res.schema is not None:
            result = admit(res.schema, obj)
            mode = request.query.get("fieldValidation", "Warn")
            if result.unknown_fields and mode == "Strict":
                return web.json_response(
                    strict_decoding_status(res.kind, res.version, result.unknown_fields), status=400
                )
            if result.unknown_fields and mode == "Warn":
                warnings = [json.dumps(w) for w in unknown_field_warnings(result.unknown_fields)]
                headers["Warning"] = ", ".join(f"299 - {w}" for w in warnings)
            name = obj.get("metadata", {}).get("name", "")
            if result.errors:
                body = invalid_status(res.kind, res.group, name, result.errors)
                return web.json_response(body, status=422)
            obj = result.obj
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            meta["namespace"] = namespace
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(next(self.versions))
        if request.query.get("dryRun") != "All":
            self.store[key] = obj
        return web.json_response(obj, status=code, headers=headers)
