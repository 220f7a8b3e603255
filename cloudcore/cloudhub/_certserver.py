"""The HTTPS certificate server (default port 10002): ``/ca.crt``, ``/edge.crt``, ``/node/{name}``.

``/edge.crt`` signs a CSR sent as the body of a GET, DER as KubeEdge's edge sends it (PEM is accepted
too). Renewal is authorised by the node's current client certificate, for that node only. A join token
(its JWT as a Bearer token) obtains the first certificate of a node name; a name that already has one
needs a token made for that node (``kubeshore token create --node NAME``). Either way the CSR must name
exactly the requested node (``kubeshore.pki.node_identity``), and the certificate carries only that identity.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from cryptography import x509

from cloudcore._https import serve
from cloudcore.cloudhub._server import node_from_transport
from kubeshore import pki
from kubeshore.jointoken import TokenError, verify_jwt_claims

log = logging.getLogger(__name__)

MAX_CSR_BYTES = 1024 * 1024
NodeExists = Callable[[str], Awaitable[bool]]
RecordIssued = Callable[[str, dt.datetime], Awaitable[None]]


class CertServer:
    def __init__(
        self,
        ca: pki.CertificateAuthority,
        ssl_context: ssl.SSLContext,
        *,
        bind: str,
        port: int,
        node_exists: NodeExists,
        cert_validity: dt.timedelta,
        has_certificate: NodeExists,
        record_issued: RecordIssued,
    ) -> None:
        self.ca = ca
        self.ssl_context = ssl_context
        self.bind = bind
        self.port = port
        self.node_exists = node_exists
        self.cert_validity = cert_validity
        self.has_certificate = has_certificate
        self.record_issued = record_issued
        # One token-authorised issue at a time: the check that a name is free and its record must not
        # interleave with another request for the same name.
        self._token_issue = asyncio.Lock()
        self.issued = 0
        self.refused = 0
        self._ca_der = pki.cert_to_der(ca.cert)
        self._key_der = pki.key_to_der(ca.key)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_CSR_BYTES)
        app.router.add_get("/ca.crt", self._ca)
        app.router.add_get("/edge.crt", self._edge_cert)
        app.router.add_get("/node/{name}", self._node)
        self._runner, self.port = await serve(app, self.bind, self.port, self.ssl_context)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ca(self, request: web.Request) -> web.Response:
        return web.Response(body=self._ca_der, content_type="application/octet-stream")

    async def _node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if await self.node_exists(name):
            return web.Response(text="OK")
        return web.Response(status=404, text="Node not found")

    def _deny(self, status: int, reason: str, node: str) -> web.Response:
        self.refused += 1
        log.warning("refused certificate for node %r: %s", node, reason)
        return web.Response(status=status, text=reason + "\n")

    async def _edge_cert(self, request: web.Request) -> web.Response:
        node = request.headers.get("NodeName", "")
        if not node:
            return self._deny(400, "NodeName header is required", node)
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        auth = request.headers.get("Authorization", "")
        if ssl_object is not None and ssl_object.getpeercert(binary_form=True):
            # Renewal: the current certificate (already verified against the CA by TLS) must be this node's.
            try:
                cert_node = node_from_transport(request.transport)
            except pki.IdentityError as exc:
                return self._deny(403, f"client certificate: {exc}", node)
            if cert_node != node:
                return self._deny(403, f"certificate of node {cert_node!r} cannot renew {node!r}", node)
        elif auth.startswith("Bearer "):
            try:
                claims = verify_jwt_claims(auth[len("Bearer ") :].strip(), self._key_der)
            except TokenError as exc:
                return self._deny(401, f"invalid token: {exc}", node)
            bound = claims.get("node")
            if bound is not None and bound != node:
                return self._deny(403, f"the token was made for node {bound!r}, not {node!r}", node)
            body = await request.read()
            async with self._token_issue:
                if bound is None and await self.has_certificate(node):
                    return self._deny(
                        409,
                        f"node {node!r} already has a certificate: renew it with that certificate, or make "
                        f"a token for this node with 'kubeshore token create --node {node}'",
                        node,
                    )
                return await self._sign(body, node, token=True)
        else:
            return self._deny(401, "a Bearer token or a client certificate is required", node)
        return await self._sign(await request.read(), node, token=False)

    async def _sign(self, body: bytes, node: str, *, token: bool) -> web.Response:
        try:
            if body.lstrip().startswith(b"-----BEGIN"):
                csr = x509.load_pem_x509_csr(body)
            else:
                csr = x509.load_der_x509_csr(body)
        except ValueError:
            return self._deny(400, "request body is not a certificate signing request (DER or PEM)", node)
        try:
            csr_node = pki.node_identity(csr)
        except pki.IdentityError as exc:
            return self._deny(403, f"CSR: {exc}", node)
        if csr_node != node:
            return self._deny(403, f"CSR names node {csr_node!r}, the request node {node!r}", node)
        try:
            # A fresh subject: nothing the CSR carried besides its one node identity reaches the certificate.
            cert = self.ca.sign_csr(csr, subject=pki.node_subject(node), validity=self.cert_validity)
        except ValueError as exc:
            return self._deny(400, f"cannot sign CSR: {exc}", node)
        if token:
            await self.record_issued(node, cert.not_valid_after_utc)
        self.issued += 1
        log.info("issued certificate for node %s (valid %s)", node, self.cert_validity)
        return web.Response(body=pki.cert_to_der(cert), content_type="application/octet-stream")
