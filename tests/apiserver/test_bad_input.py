"""Bad requests get kube-apiserver's Status errors and write nothing; security checks."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from cloudcore.apiserver import EmbeddedAPIServer
from kubeapi import KubeAPI, RequestAttributes
from kubeshore import pki


class _Client:
    def __init__(self, server: EmbeddedAPIServer, session: aiohttp.ClientSession) -> None:
        self.base = server.url
        self.session = session
        self.token = (server.data_dir / "pki" / "admin.token").read_text().strip()
        self.ssl = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        auth: bool = True,
    ) -> tuple[int, Any]:
        headers = {"Content-Type": content_type}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(
            method, self.base + path, data=body, headers=headers, ssl=self.ssl
        ) as resp:
            text = await resp.read()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text.decode()


async def test_bad_bodies_are_refused_and_nothing_is_written(embedded: EmbeddedAPIServer) -> None:
    async with aiohttp.ClientSession() as session:
        c = _Client(embedded, session)
        path = "/api/v1/namespaces/default/configmaps"
        before = await c.request("GET", path)
        cases = [
            (b'{"metadata": {"name": "x"', "application/json", 400, "BadRequest"),
            (b"metadata: [unclosed", "application/yaml", 400, "BadRequest"),
            (
                b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}',
                "application/json",
                400,
                "BadRequest",
            ),
            (
                b'{"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}',
                "application/json",
                400,
                "BadRequest",
            ),
            (
                b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}',
                "application/json",
                422,
                "Invalid",
            ),
            (
                b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}',
                "application/json",
                422,
                "Invalid",
            ),
            (
                b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}}',
                "application/json",
                400,
                "BadRequest",
            ),
            (
                b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "'
                + b"x" * (3 * 1024 * 1024)
                + b'"}}',
                "application/json",
                413,
                "RequestEntityTooLarge",
            ),
        ]
        for body, content_type, code, reason in cases:
            status, doc = await c.request("POST", path, body, content_type)
            assert status == code, (body[:80], doc)
            assert doc["kind"] == "Status" and doc["reason"] == reason and doc["code"] == code, doc
            assert doc["message"]
        status, doc = await c.request("POST", path, b'{"metadata": {}}')
        assert "metadata.name: Required value: name or generateName is required" in doc["message"]
        after = await c.request("GET", path)
        assert [i["metadata"]["name"] for i in after[1]["items"]] == [
            i["metadata"]["name"] for i in before[1]["items"]
        ]

        status, doc = await c.request("GET", "/api/v1/namespaces/default/gizmos")
        assert status == 404 and doc["reason"] == "NotFound"
        status, doc = await c.request("GET", "/apis/nothing.example.com/v1/things")
        assert status == 404 and doc["kind"] == "Status"
        status, doc = await c.request("GET", "/api/v1/namespaces/default/configmaps/missing")
        assert status == 404 and doc["message"] == 'configmaps "missing" not found'
        status, doc = await c.request(
            "PATCH", "/api/v1/namespaces/default/configmaps/missing", b"{}", "application/apply-patch+yaml"
        )
        assert status == 400 and "apiVersion" in doc["message"]
        status, doc = await c.request(
            "PATCH", "/api/v1/namespaces/default/configmaps/missing", b"{}", "application/x-unknown-patch"
        )
        assert status == 415
        status, _ = await c.request("GET", "/api/v1/namespaces/default/configmaps/missing")
        assert status == 404
        # A custom resource has no protobuf form (kube-apiserver answers 415 too).
        type_meta = b"\x0a\x1bdevices.kubeedge.io/v1beta1\x12\x06Device"
        envelope = b"k8s\x00\x0a" + bytes([len(type_meta)]) + type_meta
        status, doc = await c.request("POST", path, envelope, "application/vnd.kubernetes.protobuf")
        assert status == 415 and doc["reason"] == "UnsupportedMediaType"
        assert "devices.kubeedge.io/v1beta1/Device" in doc["message"]
        status, doc = await c.request("POST", path, b"\x0a\x02k8s", "application/vnd.kubernetes.protobuf")
        assert status == 400 and doc["reason"] == "BadRequest"
        status, doc = await c.request("POST", path, b"\xa0", "application/cbor")
        assert status == 415


async def test_authentication_and_authorization(embedded: EmbeddedAPIServer) -> None:
    async with aiohttp.ClientSession() as session:
        c = _Client(embedded, session)
        status, doc = await c.request("GET", "/api/v1/namespaces", auth=False)
        assert status == 401 and doc["reason"] == "Unauthorized"
        status, _ = await c.request("GET", "/healthz", auth=False)
        assert status == 200
        status, doc = await c.request("GET", "/version", auth=False)
        assert status == 200 and doc["major"] == "1"
        c.token = "wrong"
        status, _ = await c.request("GET", "/api/v1/namespaces")
        assert status == 401


async def test_read_only_mode_and_authorizer(embedded: EmbeddedAPIServer) -> None:
    decisions: list[RequestAttributes] = []

    def authorize(attrs: RequestAttributes) -> bool:
        decisions.append(attrs)
        return attrs.verb in ("get", "list", "watch") or attrs.namespace == "open"

    api = KubeAPI(embedded.store, embedded.registry, read_only=True)
    guarded = KubeAPI(embedded.store, embedded.registry, authorize=authorize)
    runners = []
    try:
        urls = []
        for k in (api, guarded):
            runner = web.AppRunner(k.app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            port = runner.addresses[0][1]
            urls.append(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as session:
            body = json.dumps({"metadata": {"name": "ro"}}).encode()
            async with session.post(urls[0] + "/api/v1/namespaces/default/configmaps", data=body) as resp:
                assert resp.status == 405
                assert (await resp.json())["reason"] == "MethodNotAllowed"
            async with session.get(urls[0] + "/api/v1/namespaces") as resp:
                assert resp.status == 200
            async with session.post(urls[1] + "/api/v1/namespaces/default/configmaps", data=body) as resp:
                assert resp.status == 403
                doc = await resp.json()
                assert doc["reason"] == "Forbidden"
                assert (
                    'cannot create resource "configmaps" in API group "" in the namespace "default"'
                    in doc["message"]
                )
        assert decisions[-1].verb == "create" and decisions[-1].resource == "configmaps"
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_client_certificate_identity_reaches_the_authorizer(tmp_path: Path) -> None:
    seen: list[RequestAttributes] = []

    def authorize(attrs: RequestAttributes) -> bool:
        seen.append(attrs)
        # An edge node may only read its own Node object.
        if "system:nodes" in attrs.user.groups:
            return attrs.resource == "nodes" and attrs.name == attrs.user.name.removeprefix("system:node:")
        return True

    async with EmbeddedAPIServer(tmp_path / "data", port=0, authorize=authorize) as server:
        ca = pki.CertificateAuthority.load_or_create(
            server.data_dir / "pki" / "ca.crt", server.data_dir / "pki" / "ca.key", "unused"
        )
        cert, key = ca.issue("system:node:edge-1", organization="system:nodes", client=True)
        (tmp_path / "node.crt").write_bytes(pki.cert_to_pem(cert))
        (tmp_path / "node.key").write_bytes(pki.key_to_pem(key))
        ctx = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(tmp_path / "node.crt", tmp_path / "node.key")
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/api/v1/nodes/edge-1", ssl=ctx) as resp:
                assert resp.status == 404  # allowed; the node does not exist yet
            async with session.get(server.url + "/api/v1/nodes/edge-2", ssl=ctx) as resp:
                assert resp.status == 403
                doc = await resp.json()
                assert 'User "system:node:edge-1" cannot get resource "nodes"' in doc["message"]
        assert seen[-1].user.name == "system:node:edge-1"
        assert "system:nodes" in seen[-1].user.groups
