"""The mapper's REST API (aiohttp): KubeEdge's routes, real writes, OpenAPI, health and metrics.

KubeEdge's mapper-framework serves only GETs and answers errors as plain text 500; kubeshore keeps
the same GET routes and response shapes, adds ``PUT``/``POST`` writes, and answers errors as the
same JSON envelope with a meaningful status (400 bad value, 404 unknown, 409 read-only or rejected,
503 device offline). Every route is listed in ``/api/v1/openapi.json``.

A GET never changes a device: KubeEdge's GET form of the device-method call is answered 405 (use
PUT or POST), since a link, a prefetch or a crawler must not write to equipment. The API listens on
127.0.0.1 unless configured; with ``rest.token_file`` every route but the health ones (``/livez``,
``/readyz``, ``/healthz``) and ``/api/v1/ping`` needs ``Authorization: Bearer <token>``.

Health, as edgecore's and cloudcore's: ``/livez`` answers 200 while the process serves HTTP (a
liveness probe: restarting would not bring edgecore back); ``/readyz`` answers 200 only while the
mapper is registered with edgecore, else 503 saying why (a readiness probe); ``/healthz`` is the
same verdict with the details. ``/api/v1/ping`` stays KubeEdge's: always 200, so it says nothing
about edgecore.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from mappers.sdk import _metrics
from mappers.sdk._device import CONNECTION_ERRORS, DeviceRuntime
from mappers.sdk._mapper import Mapper, UnknownDevice
from mappers.sdk.driver import WriteRejected

log = logging.getLogger("mappers.rest")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Health = Callable[[], dict[str, Any]]
#: None when the mapper is ready, else why not
Readiness = Callable[[], str | None]

API = "/api/v1"


def _envelope(status: int = 200, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "statusCode": status,
        "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    body.update(fields)
    return body


def _reply(request: web.Request, status: int = 200, **fields: Any) -> web.Response:
    resp = web.json_response(_envelope(status, **fields), status=status)
    corr = request.headers.get("X-Correlation-ID")
    if corr:
        resp.headers["X-Correlation-ID"] = corr
    return resp


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as exc:
        return _reply(request, exc.status, Message=str(exc))
    except UnknownDevice as exc:
        return _reply(request, 404, Message=str(exc))
    except WriteRejected as exc:
        return _reply(request, 409, Message=str(exc))
    except CONNECTION_ERRORS as exc:
        return _reply(request, 503, Message=f"device unavailable: {exc or type(exc).__name__}")
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("REST %s %s failed", request.method, request.path)
        return _reply(request, 500, Message=f"{type(exc).__name__}: {exc}")


_OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", f"{API}/ping"})


def _bearer_check(token: bytes) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in _OPEN_PATHS:
            header = request.headers.get("Authorization", "")
            if header[:7].lower() != "bearer " or not hmac.compare_digest(header[7:].strip().encode(), token):
                resp = _reply(
                    request, 401, Message="Authorization: Bearer <token of rest.token_file> required"
                )
                resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
        return await handler(request)

    return check


class RestApi:
    def __init__(
        self,
        mapper: Mapper,
        health: Health | None = None,
        *,
        token: bytes = b"",
        readiness: Readiness | None = None,
    ) -> None:
        self.mapper = mapper
        self.token = token
        self._health = health or (lambda: {})
        self._readiness = readiness or (lambda: None)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        middlewares = [_bearer_check(self.token)] if self.token else []
        app = web.Application(middlewares=[*middlewares, _errors])
        r = app.router
        r.add_get(f"{API}/ping", self.ping)
        r.add_get(f"{API}/device/{{ns}}/{{name}}", self.device)
        r.add_get(f"{API}/device/{{ns}}/{{name}}/{{prop}}", self.read)
        r.add_put(f"{API}/device/{{ns}}/{{name}}/{{prop}}", self.write)
        r.add_post(f"{API}/device/{{ns}}/{{name}}/{{prop}}", self.write)
        r.add_get(f"{API}/devicemethod/{{ns}}/{{name}}", self.methods)
        call = f"{API}/devicemethod/{{ns}}/{{name}}/{{method}}/{{prop}}/{{data}}"
        r.add_get(call, self.method_by_get)
        r.add_put(call, self.call_method)
        r.add_post(call, self.call_method)
        r.add_get(f"{API}/meta/model/{{ns}}/{{name}}", self.model)
        r.add_get(f"{API}/database/{{ns}}/{{name}}", self.database)
        r.add_get(f"{API}/openapi.json", self.openapi)
        r.add_get("/livez", self.livez)
        r.add_get("/readyz", self.readyz)
        r.add_get("/healthz", self.healthz)
        r.add_get("/metrics", self.metrics)
        return app

    async def start(self, host: str, port: int) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("REST API on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers --------------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return _reply(request, Message="This is v1 API, the server is running normally.")

    def _device(self, request: web.Request) -> DeviceRuntime:
        return self.mapper.get(request.match_info["ns"], request.match_info["name"])

    async def device(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        twins = []
        for prop in rt.config.properties:
            twin = rt.twins.get(prop.name)
            reading = twin.reading if twin else None
            twins.append(
                {
                    "PropertyName": prop.name,
                    "Value": reading.value if reading else None,
                    "Type": reading.type if reading else None,
                    "TimeStamp": reading.timestamp_ms if reading else None,
                    "Desired": prop.desired,
                    "Error": twin.error if twin else "",
                }
            )
        last = rt.last_online.strftime("%Y-%m-%dT%H:%M:%SZ") if rt.last_online else ""
        data: dict[str, Any] = {"DeviceName": rt.config.name, "Namespace": rt.config.namespace}
        data["State"] = rt.state.value
        data |= {"LastOnlineTime": last, "Twins": twins}
        return _reply(request, Data=data)

    async def read(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        prop = request.match_info["prop"]
        if rt.config.property(prop) is None:
            raise HttpError(404, f"device {rt.id} has no property {prop!r}")
        if request.query.get("cached") in ("1", "true"):
            twin = rt.twins.get(prop)
            if twin is None or twin.reading is None:
                raise HttpError(404, f"property {prop} of {rt.id} has no value yet")
            reading = twin.reading
        else:
            try:
                reading = await rt.read_now(prop)
            except ValueError as exc:
                raise HttpError(502, f"reading {prop} of {rt.id} failed: {exc}") from None
        data = {
            "DeviceName": reading.device,
            "PropertyName": reading.property,
            "Namespace": reading.namespace,
            "Value": reading.value,
            "Type": reading.type,
            "TimeStamp": reading.timestamp_ms,
        }
        return _reply(request, Data=data)

    async def write(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        prop = request.match_info["prop"]
        text = await _value_from_body(request)
        await rt.write(prop, text)
        return _reply(request, Message=f"Write data {text} to device {rt.id} successfully.")

    async def methods(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        out = []
        for method in rt.config.methods:
            params = []
            for name in method.property_names:
                mprop = rt.model_property(name)
                params.append({"PropertyName": name, "ValueType": mprop.type.value if mprop else ""})
            base = f"{API}/devicemethod/{rt.config.namespace}/{rt.config.name}"
            path = f"{base}/{method.name}/{{propertyName}}/{{data}}"
            out.append({"Name": method.name, "Path": path, "Parameters": params})
        return _reply(request, Data={"Methods": out})

    async def method_by_get(self, request: web.Request) -> web.Response:
        resp = _reply(
            request,
            405,
            Message="a GET never changes a device: call the method with PUT or POST on the same path",
        )
        resp.headers["Allow"] = "PUT, POST"
        return resp

    async def call_method(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        m = request.match_info
        method = next((x for x in rt.config.methods if x.name == m["method"]), None)
        if method is None:
            raise HttpError(404, f"device {rt.id} has no method {m['method']!r}")
        if m["prop"] not in method.property_names:
            raise HttpError(400, f"method {method.name} of {rt.id} does not include property {m['prop']!r}")
        await rt.write(m["prop"], m["data"])
        return _reply(request, Message=f"Write data {m['data']} to device {rt.id} successfully.")

    async def model(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        model = rt.model
        props = [
            {
                "name": p.name,
                "dataType": p.type.value,
                "description": p.description,
                "accessMode": p.access_mode,
                "minimum": p.minimum,
                "maximum": p.maximum,
                "unit": p.unit,
            }
            for p in model.properties.values()
        ]
        return _reply(
            request,
            id=model.key,
            name=model.name,
            namespace=model.namespace,
            description="",
            properties=props,
        )

    async def database(self, request: web.Request) -> web.Response:
        rt = self._device(request)
        local = self.mapper.sinks.local
        query = getattr(local.backend, "query", None) if local is not None else None
        if query is None:
            raise HttpError(503, "no database configured (sinks.sqlite.path)")
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise HttpError(400, "limit must be an integer") from None
        rows = await query(rt.config.namespace, rt.config.name, request.query.get("property"), limit)
        return _reply(request, Data=rows)

    async def livez(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        reason = self._readiness()
        if reason is None:
            return web.Response(text="ok")
        return web.Response(status=503, text=f"not ready: {reason}")

    async def healthz(self, request: web.Request) -> web.Response:
        reason = self._readiness()
        health: dict[str, Any] = {"status": "ok" if reason is None else "not ready"}
        if reason is not None:
            health["reason"] = reason
        health |= {"devices": len(self.mapper.devices)} | self._health()
        return web.json_response(health, status=200 if reason is None else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = await asyncio.to_thread(generate_latest, _metrics.registry)
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document())


async def _value_from_body(request: web.Request) -> str:
    raw = await request.text()
    if request.content_type == "application/json":
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise HttpError(400, f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict) or "value" not in body:
            raise HttpError(400, 'JSON body must be an object with a "value" field')
        value = body["value"]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if not raw.strip():
        raise HttpError(400, 'missing value: send {"value": ...} as JSON or the value as text/plain')
    return raw.strip()


def openapi_document() -> dict[str, Any]:
    def p(name: str, desc: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": desc,
        }

    dev = [p("namespace", "device namespace"), p("name", "device name")]
    envelope = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "statusCode": {"type": "integer"},
            "timeStamp": {"type": "string", "format": "date-time"},
            "Message": {"type": "string"},
            "Data": {},
        },
    }
    ok = {"200": {"description": "success", "content": {"application/json": {"schema": envelope}}}}
    errs = {
        "400": {"description": "the value does not parse as the property's type"},
        "404": {"description": "unknown device, property or method"},
        "409": {"description": "write refused: ReadOnly, below minimum, above maximum"},
        "503": {"description": "the device is offline"},
    }
    write_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["value"], "properties": {"value": {}}}
            },
            "text/plain": {"schema": {"type": "string"}},
        },
    }
    prop = [*dev, p("property", "property name")]
    method_params = [*dev, p("method", "method name"), p("property", "property"), p("data", "value")]
    write = {
        "summary": "Write a property",
        "parameters": prop,
        "requestBody": write_body,
        "responses": ok | errs,
    }
    call = {"summary": "Write through a device method", "parameters": method_params, "responses": ok | errs}
    return {
        "openapi": "3.0.3",
        "info": {"title": "kubeshore mapper REST API", "version": "v1"},
        "paths": {
            f"{API}/ping": {"get": {"summary": "Liveness of the API", "responses": ok}},
            f"{API}/device/{{namespace}}/{{name}}": {
                "get": {
                    "summary": "State and latest twins of a device",
                    "parameters": dev,
                    "responses": ok | errs,
                }
            },
            f"{API}/device/{{namespace}}/{{name}}/{{property}}": {
                "get": {
                    "summary": "Read a property from the device (?cached=true: latest collected value)",
                    "parameters": prop,
                    "responses": ok | errs,
                },
                "put": write,
                "post": write,
            },
            f"{API}/devicemethod/{{namespace}}/{{name}}": {
                "get": {"summary": "List a device's methods", "parameters": dev, "responses": ok | errs}
            },
            f"{API}/devicemethod/{{namespace}}/{{name}}/{{method}}/{{property}}/{{data}}": {
                "put": call,
                "post": call,
            },
            f"{API}/meta/model/{{namespace}}/{{name}}": {
                "get": {"summary": "The device's DeviceModel", "parameters": dev, "responses": ok | errs}
            },
            f"{API}/database/{{namespace}}/{{name}}": {
                "get": {
                    "summary": "Stored readings from the SQLite time series (?property=, ?limit=)",
                    "parameters": dev,
                    "responses": ok | {"503": {"description": "no database configured"}},
                }
            },
            f"{API}/openapi.json": {"get": {"summary": "This document", "responses": ok}},
            "/livez": {"get": {"summary": "Liveness: the process serves HTTP", "responses": ok}},
            "/readyz": {
                "get": {"summary": "Readiness: registered with edgecore (503 with the reason if not)"}
                | {"responses": ok}
            },
            "/healthz": {
                "get": {"summary": "Readiness with details (registration, devices, sinks)", "responses": ok}
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": ok}},
        },
    }
