"""The HTTPS certificate server (default port 10002): ``/ca.crt``, ``/edge.crt``, ``/node/{name}``.

``/edge.crt`` signs a CSR sent as the body of a GET, DER as KubeEdge's edge sends it (PEM is accepted
too). The first certificate is authorised by the join token's JWT as a Bearer token; rotation by the
node's current client certificate. Either way the CSR subject must be
``O=system:nodes, CN=system:node:<NodeName>``.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web
from cryptography import x509

from cloudcore.cloudhub._server import NODE_CN_PREFIX, NODE_ORGANIZATION, node_from_certificate, peer_identity
from kubeshore import pki
from kubeshore.jointoken import TokenError, verify_jwt

log = logging.getLogger(__name__)

MAX_CSR_BYTES = 1024 * 1024
NodeExists = Callable[[str], Awaitable[bool]]


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
    ) -> None:
        self.ca = ca
        self.ssl_context = ssl_context
        self.bind = bind
        self.port = port
        self.node_exists = node_exists
        self.cert_validity = cert_validity
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
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

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
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        auth = request.headers.get("Authorization", "")
        if peercert:
            # Rotation: the current certificate (already verified against the CA by TLS) must be this node's.
            cn, _ = peer_identity(peercert)
            try:
                cert_node = node_from_certificate(peercert)
            except PermissionError as exc:
                return self._deny(403, str(exc), node)
            if cert_node != node:
                return self._deny(403, f"client certificate {cn!r} cannot renew node {node!r}", node)
        elif auth.startswith("Bearer "):
            try:
                verify_jwt(auth[len("Bearer ") :].strip(), self._key_der)
            except TokenError as exc:
                return self._deny(401, f"invalid token: {exc}", node)
        else:
            return self._deny(401, "a Bearer token or a client certificate is required", node)
        body = await request.read()
        try:
            if body.lstrip().startswith(b"-----BEGIN"):
                csr = x509.load_pem_x509_csr(body)
            else:
                csr = x509.load_der_x509_csr(body)
        except ValueError:
            return self._deny(400, "request body is not a certificate signing request (DER or PEM)", node)
        want_cn = NODE_CN_PREFIX + node
        cn = pki.common_name(csr)
        orgs = [a.value for a in csr.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
        if cn != want_cn or orgs != [NODE_ORGANIZATION]:
            return self._deny(
                403,
                f"CSR subject must be O={NODE_ORGANIZATION}, CN={want_cn} (got CN={cn!r}, O={orgs})",
                node,
            )
        try:
            cert = self.ca.sign_csr(csr, validity=self.cert_validity)
        except ValueError as exc:
            return self._deny(400, f"cannot sign CSR: {exc}", node)
        self.issued += 1
        log.info("issued certificate for node %s (valid %s)", node, self.cert_validity)
        return web.Response(body=pki.cert_to_der(cert), content_type="application/octet-stream")
