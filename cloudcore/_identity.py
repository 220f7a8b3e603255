"""The edge CA and join token, kept in the cluster as KubeEdge keeps them (section 3.4).

Secret ``kubeedge/casecret`` holds ``cadata`` (CA certificate DER) and ``cakeydata`` (key DER);
``kubeedge/tokensecret`` holds ``tokendata``. Several cloudcores (or ``kubeshore token create``)
share them through the API. ConfigMap ``kubeedge/kubeshore-node-certificates`` records which node
names have been given a certificate with a join token, so that a token cannot take over a name
(section "Join tokens" of docs/security.md).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubeclient import CONFIGMAPS, NAMESPACES, NODES, SECRETS, ApiError, Kube
from kubeshore import pki
from kubeshore.jointoken import TokenError, create_token, verify_jwt

NAMESPACE = "kubeedge"
CA_SECRET = "casecret"
TOKEN_SECRET = "tokensecret"
ISSUED_CONFIGMAP = "kubeshore-node-certificates"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ensure_namespace(kube: Kube) -> None:
    if kube.get(NAMESPACES, NAMESPACE) is None:
        try:
            kube.create(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            )
        except ApiError as exc:
            if exc.status != 409:
                raise


def load_ca(kube: Kube) -> pki.CertificateAuthority | None:
    secret = kube.get(SECRETS, CA_SECRET, NAMESPACE)
    if secret is None:
        return None
    data = secret.get("data") or {}
    cert = x509.load_der_x509_certificate(base64.b64decode(data["cadata"]))
    key = serialization.load_der_private_key(base64.b64decode(data["cakeydata"]), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("kubeedge/casecret: CA key is not ECDSA")
    return pki.CertificateAuthority(cert, key)


def load_or_create_ca(kube: Kube) -> pki.CertificateAuthority:
    ensure_namespace(kube)
    ca = load_ca(kube)
    if ca is not None:
        return ca
    ca = pki.CertificateAuthority.create("KubeEdge")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CA_SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {"cadata": _b64(pki.cert_to_der(ca.cert)), "cakeydata": _b64(pki.key_to_der(ca.key))},
    }
    try:
        kube.create(SECRETS, secret, NAMESPACE)
    except ApiError as exc:
        if exc.status != 409:
            raise
        # Another cloudcore won the race: use its CA.
        other = load_ca(kube)
        assert other is not None
        return other
    return ca


@dataclass(frozen=True)
class TokenInfo:
    token: str
    expires_at: int


def current_token(kube: Kube, ca: pki.CertificateAuthority, validity_seconds: int) -> TokenInfo:
    """The stored token while it has more than half its life left; otherwise a new stored one."""
    secret = kube.get(SECRETS, TOKEN_SECRET, NAMESPACE)
    key_der = pki.key_to_der(ca.key)
    if secret is not None:
        token = base64.b64decode((secret.get("data") or {}).get("tokendata", "")).decode()
        try:
            exp = verify_jwt(token.split(".", 1)[1], key_der)
            if exp - time.time() > validity_seconds / 2:
                return TokenInfo(token, exp)
        except (TokenError, IndexError):
            pass
    token = create_token(pki.cert_to_der(ca.cert), key_der, validity_seconds)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": TOKEN_SECRET, "namespace": NAMESPACE},
        "type": "Opaque",
        "data": {"tokendata": _b64(token.encode())},
    }
    if secret is None:
        try:
            kube.create(SECRETS, body, NAMESPACE)
        except ApiError as exc:
            if exc.status != 409:
                raise
            kube.patch(SECRETS, TOKEN_SECRET, {"data": body["data"]}, NAMESPACE)
    else:
        kube.patch(SECRETS, TOKEN_SECRET, {"data": body["data"]}, NAMESPACE)
    return TokenInfo(token, verify_jwt(token.split(".", 1)[1], key_der))


def has_certificate(kube: Kube, node: str) -> bool:
    """Whether ``node`` already holds a certificate: it registered, or a token was used for it."""
    if kube.get(NODES, node) is not None:
        return True
    issued = kube.get(CONFIGMAPS, ISSUED_CONFIGMAP, NAMESPACE)
    return issued is not None and node in (issued.get("data") or {})


def record_certificate(kube: Kube, node: str, not_after: str) -> None:
    """Remember that ``node`` was given a certificate with a join token (valid until ``not_after``)."""
    patch = {"data": {node: not_after}}
    try:
        kube.patch(CONFIGMAPS, ISSUED_CONFIGMAP, patch, NAMESPACE)
    except ApiError as exc:
        if exc.status != 404:
            raise
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ISSUED_CONFIGMAP, "namespace": NAMESPACE},
            **patch,
        }
        try:
            kube.create(CONFIGMAPS, body, NAMESPACE)
        except ApiError as exc2:
            if exc2.status != 409:
                raise
            kube.patch(CONFIGMAPS, ISSUED_CONFIGMAP, patch, NAMESPACE)
