"""The HTTP side: an aiohttp application that serves a :class:`~kubeapi.store.Store` the way
kube-apiserver serves etcd (paths, verbs, discovery, tables, watch streams, Status errors)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from kubeapi import _discovery, _openapi_handler, _protobuf, _tables
from kubeapi.errors import (
    APIError,
    Status,
    bad_request,
    forbidden,
    method_not_allowed,
    too_large,
    unauthorized,
    unknown_resource,
)
from kubeapi.objects import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    DeleteOptions,
    ObjectService,
    served_bytes,
)
from kubeapi.resources import Registry, ResourceType
from kubeapi.selectors import FieldSelector, LabelSelector, Selector
from kubeapi.store import ListOptions, Store, StoredObject, WatchEvent

log = logging.getLogger(__name__)

MAX_BODY = 3 * 1024 * 1024
JSON_TYPE = "application/json"
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz", "/version/"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestAttributes:
    """What the authorization hook decides on (kube-apiserver's ``authorizer.Attributes``)."""

    user: User
    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str
    name: str


Authenticator = Callable[[web.Request], User | None]
Authorizer = Callable[[RequestAttributes], bool | Awaitable[bool]]
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass
class _Target:
    resource: ResourceType
    namespace: str
    name: str
    subresource: str = ""
    extra: list[str] = field(default_factory=list)


def _json_response(body: Any, status: int = 200) -> web.Response:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=data, status=status, content_type=JSON_TYPE)


def _object_response(request: web.Request, body: bytes | dict[str, Any], status: int = 200) -> web.Response:
    """An object (or list) as JSON, or as protobuf when the client asks for it first and it is built in."""
    if _protobuf.wants_protobuf(request.headers.get("Accept", "")):
        obj = json.loads(body) if isinstance(body, bytes) else body
        if _protobuf.supports(str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")):
            return web.Response(body=_protobuf.encode(obj), status=status, content_type=_protobuf.PROTOBUF)
    return _json_response(body, status)


# Kinds whose immediate delete kube-apiserver answers with the object (their registries set
# ReturnDeletedObject); every other built-in kind answers with a Status "Success".
_RETURN_DELETED = frozenset(
    {
        ("", "Pod"),
        ("", "Service"),
        ("", "ServiceAccount"),
        ("", "PodTemplate"),
        ("storage.k8s.io", "StorageClass"),
    }
)


def _returns_deleted_object(resource: ResourceType) -> bool:
    return not resource.custom and (resource.group, resource.kind) in _RETURN_DELETED


def _deleted_status(resource: ResourceType, stored: StoredObject) -> dict[str, Any]:
    details: dict[str, Any] = {"name": stored.name}
    if resource.group:
        details["group"] = resource.group
    details |= {"kind": resource.plural, "uid": stored.object().get("metadata", {}).get("uid", "")}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _error_response(err: APIError) -> web.Response:
    return web.Response(body=err.status().to_bytes(), status=err.code, content_type=JSON_TYPE)


def _table_version(accept: str) -> str | None:
    """``v1``/``v1beta1`` when the client asked for a Table first, else None."""
    for media in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return params.get("v", "v1")
        if media.split(";")[0].strip() in ("application/json", "*/*", "application/yaml"):
            return None
    return None


def _encode_continue(resource_version: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"v": resource_version, "ns": after[0], "n": after[1]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(data["ns"]), str(data["n"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request("continue key is not valid: illegal base64 data") from None


class KubeAPI:
    """Serves ``store`` under kube-apiserver paths. ``read_only`` answers every write with 405."""

    def __init__(
        self,
        store: Store,
        registry: Registry,
        *,
        service: ObjectService | None = None,
        read_only: bool = False,
        authenticate: Authenticator | None = None,
        authorize: Authorizer | None = None,
        version_info: dict[str, str] | None = None,
        openapi: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None,
        bookmark_interval: float = 30.0,
        max_body: int = MAX_BODY,
    ) -> None:
        self.store = store
        self.registry = registry
        self.service = service or ObjectService(store, registry)
        self.read_only = read_only
        self.authenticate = authenticate
        self.authorize = authorize
        self.version_info = version_info or {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-kubeshore",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.23",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
        self.openapi = openapi or _openapi_handler.make_handler(registry)
        self.bookmark_interval = bookmark_interval
        self.max_body = max_body
        self.ready = True
        self._closing = asyncio.Event()
        self._discovery_cache: dict[str, tuple[int, bytes]] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing.set()

    # -- entry -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except APIError as err:
            return _error_response(err)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            return _error_response(
                APIError(
                    500, "InternalError", "an error on the server has prevented the request from succeeding"
                )
            )

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path in _PUBLIC_PATHS or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return self._public(path)
        user = ANONYMOUS
        if self.authenticate is not None:
            found = self.authenticate(request)
            if found is None:
                raise unauthorized()
            user = found
        parts = [p for p in path.split("/") if p]
        if not parts:
            return _json_response(
                {
                    "paths": [
                        "/api",
                        "/api/v1",
                        "/apis",
                        "/healthz",
                        "/livez",
                        "/openapi/v2",
                        "/openapi/v3",
                        "/readyz",
                        "/version",
                    ]
                }
            )
        head = parts[0]
        if head == "openapi":
            return await self.openapi(request)
        if head == "api":
            if len(parts) == 1:
                host = request.host or "127.0.0.1"
                return _json_response(_discovery.core_versions(host))
            if parts[1] != "v1":
                raise unknown_resource()
            return await self._resource_request(request, user, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._cached("apis", lambda: _discovery.group_list(self.registry))
            if len(parts) == 2:
                doc = _discovery.group(self.registry, parts[1])
                if doc is None:
                    raise unknown_resource()
                return _json_response(doc)
            return await self._resource_request(request, user, parts[1], parts[2], parts[3:])
        raise unknown_resource()

    def _public(self, path: str) -> web.Response:
        if path.startswith("/version"):
            return _json_response(self.version_info)
        if path.startswith("/readyz") and not self.ready:
            return web.Response(status=500, text="[-]ready failed: reason withheld\nreadyz check failed")
        return web.Response(text="ok", content_type="text/plain")

    def _cached(self, key: str, build: Callable[[], Any]) -> web.Response:
        entry = self._discovery_cache.get(key)
        if entry is None or entry[0] != self.registry.generation:
            generation = self.registry.generation
            entry = (generation, json.dumps(build(), separators=(",", ":")).encode())
            self._discovery_cache[key] = entry
        return _json_response(entry[1])

    # -- resources -------------------------------------------------------------------------

    def _target(self, group: str, version: str, rest: list[str]) -> _Target:
        lookup = self.registry.get
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            candidate = lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        resource = lookup(group, version, rest[0])
        if resource is None:
            raise unknown_resource()
        if namespace == "" and resource.namespaced and len(rest) > 1:
            # A namespaced resource addressed without a namespace: only the collection exists.
            raise unknown_resource()
        target = _Target(resource, namespace, rest[1] if len(rest) > 1 else "")
        if len(rest) > 2:
            target.subresource = rest[2]
            target.extra = rest[3:]
            if target.subresource not in resource.subresources and not (
                resource.kind == "Namespace" and target.subresource == "finalize"
            ):
                raise unknown_resource()
            if target.extra:
                raise unknown_resource()
        return target

    async def _resource_request(
        self, request: web.Request, user: User, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        if not rest:
            if request.method != "GET":
                raise method_not_allowed()
            key = f"{group}/{version}"
            if self.registry.generation != self._discovery_cache.get(key, (-1, b""))[0]:
                doc = _discovery.resource_list(self.registry, group, version)
                if doc is None:
                    raise unknown_resource()
            return self._cached(key, lambda: _discovery.resource_list(self.registry, group, version))
        target = self._target(group, version, rest)
        query = request.query
        method = request.method
        collection = not target.name
        if method == "GET" and collection:
            verb = "watch" if query.get("watch") in ("true", "1") else "list"
        elif method == "GET":
            verb = "get"
        elif method == "POST" and (collection or target.subresource == "binding"):
            verb = "create"
        elif method == "PUT" and not collection:
            verb = "update"
        elif method == "PATCH" and not collection:
            verb = "patch"
        elif method == "DELETE":
            verb = "deletecollection" if collection else "delete"
        else:
            raise method_not_allowed()
        resource = target.resource
        if verb not in resource.verbs and not target.subresource:
            raise method_not_allowed()
        if self.read_only and verb in _WRITE_VERBS:
            raise method_not_allowed()
        if self.authorize is not None:
            attrs = RequestAttributes(
                user, verb, group, version, resource.plural, target.subresource, target.namespace, target.name
            )
            allowed = self.authorize(attrs)
            if inspect.isawaitable(allowed):
                allowed = await allowed
            if not allowed:
                raise forbidden(
                    user.name, verb, resource.plural, group, target.namespace or None, target.name or None
                )
        if target.subresource == "scale":
            return await self._scale(request, target, verb)
        if target.subresource == "binding":
            return await self._binding(request, target, verb)
        if verb == "get":
            return await self._get(request, target)
        if verb == "list":
            return await self._list(request, target)
        if verb == "watch":
            return await self._watch(request, target)
        dry_run = query.get("dryRun") == "All"
        field_validation = query.get("fieldValidation", "")
        if verb == "create":
            body = await self._body(request)
            stored = await self.service.create(
                resource, target.namespace, body, dry_run=dry_run, field_validation=field_validation
            )
            return _object_response(request, served_bytes(resource, stored), 201)
        if verb == "update":
            body = await self._body(request)
            stored = await self.service.update(
                resource,
                target.namespace,
                target.name,
                body,
                subresource=target.subresource,
                dry_run=dry_run,
                field_validation=field_validation,
            )
            return _object_response(request, served_bytes(resource, stored))
        if verb == "patch":
            patch_type = (request.content_type or "").lower()
            if patch_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH):
                raise APIError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_PATCH}, {APPLY_PATCH}",
                )
            body = await self._body(request, allow_yaml=patch_type == APPLY_PATCH)
            stored = await self.service.patch(
                resource,
                target.namespace,
                target.name,
                patch_type,
                body,
                subresource=target.subresource,
                dry_run=dry_run,
                field_validation=field_validation,
            )
            return _object_response(request, served_bytes(resource, stored))
        if verb == "delete":
            body = await self._body(request, optional=True)
            options = DeleteOptions.from_body(body if isinstance(body, dict) else None, dict(query))
            stored, now = await self.service.delete(resource, target.namespace, target.name, options)
            if now and not _returns_deleted_object(resource):
                return _json_response(_deleted_status(resource, stored))
            return _object_response(request, served_bytes(resource, stored))
        return await self._delete_collection(request, target)

    async def _body(self, request: web.Request, *, allow_yaml: bool = True, optional: bool = False) -> Any:
        if request.content_length is not None and request.content_length > self.max_body:
            raise too_large(self.max_body)
        chunks = []
        size = 0
        while True:
            chunk = await request.content.read(256 * 1024)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_body:
                raise too_large(self.max_body)
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data.strip():
            if optional:
                return None
            raise bad_request("the body of the request is empty")
        content_type = (request.content_type or JSON_TYPE).lower()
        if content_type == _protobuf.PROTOBUF:
            return _protobuf.decode(data)
        if "protobuf" in content_type or "cbor" in content_type:
            # client-go falls back to JSON after a 415 for protobuf.
            raise APIError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{JSON_TYPE}, application/yaml (got {content_type})",
            )
        if allow_yaml and content_type in (
            "application/yaml",
            "application/x-yaml",
            "text/yaml",
            APPLY_PATCH,
        ):
            try:
                return yaml.safe_load(data)
            except yaml.YAMLError as exc:
                raise bad_request(f"the body of the request could not be decoded as YAML: {exc}") from None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"the body of the request could not be decoded as JSON: {exc}") from None

    def _selector(self, resource: ResourceType, query: Any) -> Selector:
        return Selector(
            LabelSelector.parse(query.get("labelSelector")),
            FieldSelector.parse(query.get("fieldSelector"), resource.selectable_fields),
        )

    async def _get(self, request: web.Request, target: _Target) -> web.StreamResponse:
        resource = target.resource
        stored = await self.service.get(resource, target.namespace, target.name)
        table_version = _table_version(request.headers.get("Accept", ""))
        if table_version:
            obj = json.loads(served_bytes(resource, stored))
            doc = _tables.table(
                resource,
                [obj],
                include_object=request.query.get("includeObject", "Metadata"),
                resource_version=str(stored.resource_version),
            )
            doc["apiVersion"] = f"meta.k8s.io/{table_version}"
            return _json_response(doc)
        return _object_response(request, served_bytes(resource, stored))

    async def _list(self, request: web.Request, target: _Target) -> web.StreamResponse:
        resource = target.resource
        query = request.query
        limit_text = query.get("limit", "")
        try:
            limit = int(limit_text) if limit_text else 0
        except ValueError:
            raise bad_request(f"invalid limit {limit_text!r}") from None
        options = ListOptions(
            namespace=target.namespace or None,
            selector=self._selector(resource, query),
            limit=max(limit, 0),
            continue_after=_decode_continue(query["continue"]) if query.get("continue") else None,
        )
        page = await self.store.list(resource, options)
        token = _encode_continue(page.resource_version, page.continue_after) if page.continue_after else ""
        table_version = _table_version(request.headers.get("Accept", ""))
        if table_version:
            doc = _tables.table(
                resource,
                [json.loads(served_bytes(resource, s)) for s in page.items],
                include_object=query.get("includeObject", "Metadata"),
                resource_version=str(page.resource_version),
                continue_token=token,
                remaining=page.remaining,
            )
            doc["apiVersion"] = f"meta.k8s.io/{table_version}"
            return _json_response(doc)
        meta = f'"resourceVersion":"{page.resource_version}"'
        if token:
            meta += f',"continue":"{token}"'
            if page.remaining is not None:
                meta += f',"remainingItemCount":{page.remaining}'
        head = (
            f'{{"kind":"{resource.list_kind}","apiVersion":"{resource.group_version}",'
            f'"metadata":{{{meta}}},"items":['
        )
        body = b"".join((head.encode(), b",".join(served_bytes(resource, s) for s in page.items), b"]}"))
        return _object_response(request, body)

    async def _delete_collection(self, request: web.Request, target: _Target) -> web.StreamResponse:
        resource = target.resource
        body = await self._body(request, optional=True)
        options = DeleteOptions.from_body(body if isinstance(body, dict) else None, dict(request.query))
        page = await self.store.list(
            resource,
            ListOptions(namespace=target.namespace or None, selector=self._selector(resource, request.query)),
        )
        items = []
        for stored in page.items:
            try:
                deleted, _ = await self.service.delete(resource, stored.namespace, stored.name, options)
            except APIError as exc:
                if exc.code == 404:
                    continue
                raise
            items.append(served_bytes(resource, deleted))
        rv = self.store.resource_version()
        head = (
            f'{{"kind":"{resource.list_kind}","apiVersion":"{resource.group_version}",'
            f'"metadata":{{"resourceVersion":"{rv}"}},"items":['
        )
        return _object_response(request, b"".join((head.encode(), b",".join(items), b"]}")))

    async def _scale(self, request: web.Request, target: _Target, verb: str) -> web.StreamResponse:
        from kubeapi import patch as patches  # writes only: not loaded by a read-only server

        resource = target.resource
        stored = await self.service.get(resource, target.namespace, target.name)
        if verb in ("update", "patch"):
            body = await self._body(request, allow_yaml=verb == "update")
            if verb == "patch":
                current_scale = _scale_of(resource, stored.object())
                try:
                    if request.content_type == JSON_PATCH:
                        body = patches.apply_json_patch(current_scale, body)
                    else:
                        body = patches.apply_merge_patch(current_scale, body)
                except patches.PatchError as err:
                    raise APIError(err.code, err.reason, err.message) from None
            if not isinstance(body, dict):
                raise bad_request("the body of the request must be a Scale object")
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise APIError(
                    422,
                    "Invalid",
                    f'Scale.autoscaling "{target.name}" is invalid: spec.replicas: '
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            rv = (body.get("metadata") or {}).get("resourceVersion")
            patch: dict[str, Any] = {"spec": {"replicas": replicas}}
            if rv:
                patch["metadata"] = {"resourceVersion": rv}
            stored = await self.service.patch(resource, target.namespace, target.name, MERGE_PATCH, patch)
        return _object_response(request, _scale_of(resource, stored.object()))

    async def _binding(self, request: web.Request, target: _Target, verb: str) -> web.StreamResponse:
        """``POST pods/<name>/binding``: how a scheduler assigns a Pod to a node, once."""
        if verb != "create":
            raise APIError(405, "MethodNotAllowed", "the server does not allow this method on pods/binding")
        body = await self._body(request)
        node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not isinstance(node, str) or not node:
            raise APIError(422, "Invalid", f'Binding "{target.name}" is invalid: target.name: Required value')
        stored = await self.service.get(target.resource, target.namespace, target.name)
        pod = stored.object()
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise APIError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{target.name}": '
                f'pod {target.name} is already assigned to node "{current}"',
            )
        uid = ((body.get("metadata") or {}).get("uid")) if isinstance(body, dict) else None
        if uid and uid != (pod.get("metadata") or {}).get("uid"):
            raise APIError(
                409, "Conflict", f'Operation cannot be fulfilled on pods "{target.name}": uid mismatch'
            )
        patch = {"metadata": {"resourceVersion": (pod.get("metadata") or {}).get("resourceVersion")},
                 "spec": {"nodeName": node}}  # fmt: skip
        await self.service.patch(target.resource, target.namespace, target.name, MERGE_PATCH, patch)
        return _json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    # -- watch -----------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: _Target) -> web.StreamResponse:
        resource = target.resource
        query = request.query
        selector = self._selector(resource, query)
        namespace = target.namespace or None
        rv_text = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout_text = query.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout_text) if timeout_text else None
        accept = request.headers.get("Accept", "")
        table_version = _table_version(accept)
        protobuf = _protobuf.wants_protobuf(accept) and _protobuf.supports(
            resource.group_version, resource.kind
        )
        initial: list[StoredObject] = []
        if rv_text in ("", "0"):
            page = await self.store.list(resource, ListOptions(namespace=namespace, selector=selector))
            initial = page.items
            since = page.resource_version
        else:
            try:
                since = int(rv_text)
            except ValueError:
                raise bad_request(f'invalid resource version "{rv_text}"') from None
        response = web.StreamResponse(
            headers={
                "Content-Type": _protobuf.WATCH_PROTOBUF if protobuf else JSON_TYPE,
                "Cache-Control": "no-cache, private",
            }
        )
        response.enable_chunked_encoding()
        try:
            watch = self.store.watch(resource, namespace, selector, since)
        except APIError as err:
            await response.prepare(request)
            status_doc = err.status().to_bytes()
            frame = (
                _protobuf.watch_frame("ERROR", json.loads(status_doc))
                if protobuf
                else _event_bytes("ERROR", status_doc)
            )
            await response.write(frame)
            return response
        await response.prepare(request)
        first_table = [True]

        def encode(kind: str, stored: StoredObject) -> bytes:
            raw = served_bytes(resource, stored)
            if protobuf:
                return _protobuf.watch_frame(kind, json.loads(raw))
            if table_version:
                doc = _tables.table(
                    resource,
                    [json.loads(raw)],
                    include_object=query.get("includeObject", "Metadata"),
                    resource_version=str(stored.resource_version),
                )
                doc["apiVersion"] = f"meta.k8s.io/{table_version}"
                if not first_table[0]:
                    doc["columnDefinitions"] = []
                first_table[0] = False
                raw = json.dumps(doc, separators=(",", ":")).encode()
            return _event_bytes(kind, raw)

        last_rv = since
        try:
            for start in range(0, len(initial), 500):
                await response.write(b"".join(encode("ADDED", s) for s in initial[start : start + 500]))
            last_bookmark = time.monotonic()
            while not self._closing.is_set():
                wait = 5.0
                if bookmarks:
                    wait = min(wait, max(0.0, last_bookmark + self.bookmark_interval - time.monotonic()))
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                events = await watch.next_batch(wait)
                if events is None:
                    break
                out = []
                for event in events:
                    last_rv = event.object.resource_version
                    kind = _filtered_type(event, selector)
                    if kind:
                        out.append(encode(kind, event.object))
                if out:
                    await response.write(b"".join(out))
                now = time.monotonic()
                if bookmarks and now - last_bookmark >= self.bookmark_interval:
                    mark = {
                        "kind": resource.kind,
                        "apiVersion": resource.group_version,
                        "metadata": {"resourceVersion": str(last_rv)},
                    }
                    frame = (
                        _protobuf.watch_frame("BOOKMARK", mark)
                        if protobuf
                        else _event_bytes("BOOKMARK", json.dumps(mark).encode())
                    )
                    await response.write(frame)
                    last_bookmark = now
                if deadline is not None and now >= deadline:
                    break
                transport = request.transport
                if transport is None or transport.is_closing():
                    break
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            watch.close()
        return response


def _event_bytes(kind: str, raw: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw + b"}\n"


def _filtered_type(event: WatchEvent, selector: Selector) -> str:
    """The event type a selector watch sees: objects moving out of the selection are DELETED."""
    if selector.empty():
        return event.type
    obj = event.object
    now = selector.matches(obj.labels, obj.fields)
    if event.type != "MODIFIED" or event.previous is None:
        return event.type if now else ""
    prev = event.previous
    before = selector.matches(prev.labels, prev.fields)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return ""


def _path_get(obj: Any, path: str) -> Any:
    for part in path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _scale_of(resource: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    selector = _path_get(obj, resource.scale_selector_path)
    if selector is None and resource.kind == "Deployment":
        match = (_path_get(obj, ".spec.selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in match.items())
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": _path_get(obj, resource.scale_spec_path) or 0},
        "status": {"replicas": _path_get(obj, resource.scale_status_path) or 0, "selector": selector or ""},
    }


def status_bytes(status: Status) -> bytes:
    return status.to_bytes()
