"""Serving TLS, admin credentials and the admin kubeconfig of the embedded server."""

from __future__ import annotations

import base64
import hmac
import secrets
import socket
import ssl
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, Field

from kubeapi.server import User
from kubeshore import filemodes, pki

ADMIN_USER = User("kubeshore-admin", ("system:masters", "system:authenticated"))


class KubeconfigCluster(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    server: str
    certificate_authority_data: str = Field(alias="certificate-authority-data")


class KubeconfigUser(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    token: str | None = None
    client_certificate_data: str | None = Field(None, alias="client-certificate-data")
    client_key_data: str | None = Field(None, alias="client-key-data")


class KubeconfigContext(BaseModel):
    cluster: str
    user: str
    namespace: str | None = None


class _Named(BaseModel):
    name: str


class NamedCluster(_Named):
    cluster: KubeconfigCluster


class NamedUser(_Named):
    user: KubeconfigUser


class NamedContext(_Named):
    context: KubeconfigContext


class Kubeconfig(BaseModel):
    """The subset of ``clientcmd/v1`` Config that kubectl and the kubernetes client need."""

    model_config = ConfigDict(populate_by_name=True)

    api_version: str = Field("v1", alias="apiVersion")
    kind: str = "Config"
    clusters: list[NamedCluster]
    users: list[NamedUser]
    contexts: list[NamedContext]
    current_context: str = Field(alias="current-context")
    preferences: dict[str, Any] = Field(default_factory=dict)

    def write(self, path: Path) -> None:
        data = self.model_dump(by_alias=True, exclude_none=True)
        pki.write_private(path, yaml.safe_dump(data, sort_keys=False).encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Credentials:
    """CA, serving certificate, admin token and admin client certificate, all kept in ``pki_dir``."""

    def __init__(self, pki_dir: Path) -> None:
        self.dir = pki_dir
        filemodes.private_dir(pki_dir)
        self.ca = pki.CertificateAuthority.load_or_create(
            pki_dir / "ca.crt", pki_dir / "ca.key", "kubeshore-apiserver-ca"
        )
        token_path = pki_dir / "admin.token"
        if not token_path.exists():
            pki.write_private(token_path, secrets.token_urlsafe(32).encode())
        self.admin_token = token_path.read_text().strip()
        cert_path, key_path = pki_dir / "admin.crt", pki_dir / "admin.key"
        if not cert_path.exists() or not key_path.exists():
            cert, key = self.ca.issue(
                ADMIN_USER.name,
                organization="system:masters",
                client=True,
                validity=pki.DEFAULT_CERT_VALIDITY * 10,
            )
            pki.write_private(key_path, pki.key_to_pem(key))
            cert_path.write_bytes(pki.cert_to_pem(cert))
        self.admin_cert_pem = cert_path.read_bytes()
        self.admin_key_pem = key_path.read_bytes()

    def server_context(self, bind: str) -> ssl.SSLContext:
        names = sorted(
            {
                "127.0.0.1",
                "::1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                socket.gethostname(),
                bind,
            }
            - {"0.0.0.0", "::", ""}
        )
        cert, key = self.ca.issue("kube-apiserver", server_names=names, server=True)
        cert_path, key_path = self.dir / "apiserver.crt", self.dir / "apiserver.key"
        pki.write_private(key_path, pki.key_to_pem(key))
        cert_path.write_bytes(pki.cert_to_pem(cert) + pki.cert_to_pem(self.ca.cert))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_path, key_path)
        ctx.load_verify_locations(cadata=pki.cert_to_pem(self.ca.cert).decode())
        # Client certificates are optional: kubectl may authenticate with the bearer token instead.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def kubeconfig(self, server_url: str) -> Kubeconfig:
        return Kubeconfig(
            clusters=[
                NamedCluster(
                    name="kubeshore",
                    cluster=KubeconfigCluster(
                        server=server_url, certificate_authority_data=_b64(pki.cert_to_pem(self.ca.cert))
                    ),
                )
            ],
            users=[
                NamedUser(
                    name="kubeshore-admin",
                    user=KubeconfigUser(
                        token=self.admin_token,
                        client_certificate_data=_b64(self.admin_cert_pem),
                        client_key_data=_b64(self.admin_key_pem),
                    ),
                )
            ],
            contexts=[
                NamedContext(
                    name="kubeshore", context=KubeconfigContext(cluster="kubeshore", user="kubeshore-admin")
                )
            ],
            current_context="kubeshore",
        )

    def authenticate(self, request: web.Request) -> User | None:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            if hmac.compare_digest(header[7:].strip().encode(), self.admin_token.encode()):
                return ADMIN_USER
            return None
        transport = request.transport
        der = None
        if transport is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        cert = x509.load_der_x509_certificate(der)
        cn = pki.common_name(cert)
        groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
        return User(cn, (*groups, "system:authenticated"))
