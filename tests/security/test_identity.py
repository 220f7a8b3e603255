"""Attacks on node identity: two-CN CSRs and certificates, re-joining under a taken name, duplicate
``node_id`` headers. Each is refused, with the reason named."""

from __future__ import annotations

import asyncio
import http.client
import ssl
from pathlib import Path

import pytest
from channel._helpers import Cloud, join
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from kubeclient import NODES
from kubeshore import pki
from kubeshore.jointoken import JoinToken, create_token


def _two_cn_subject(first: str, second: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{first}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{second}"),
        ]
    )


def _csr(subject: x509.Name) -> tuple[bytes, object]:
    key = pki.new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key


def _ctx(ca_pem: bytes, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=ca_pem.decode())
    if cert is not None and key is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _edge_crt(
    cloud: Cloud, node: str, body: bytes, *, bearer: str | None = None, ctx: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    ca_pem = pki.cert_to_pem(cloud.core.certs.ca.cert)  # type: ignore[union-attr]
    conn = http.client.HTTPSConnection("127.0.0.1", cloud.https_port, context=ctx or _ctx(ca_pem), timeout=15)
    headers = {"NodeName": node}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        conn.request("GET", "/edge.crt", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _write_pair(tmp: Path, name: str, cert: x509.Certificate, key: object) -> tuple[Path, Path]:
    crt, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(pki.cert_to_pem(cert))
    pki.write_private(k, pki.key_to_pem(key))  # type: ignore[arg-type]
    return crt, k


def test_identity_rule() -> None:
    ca = pki.CertificateAuthority.create("t")
    good, _ = ca.issue("system:node:edge-a", organization="system:nodes", client=True)
    assert pki.node_identity(good) == "edge-a"
    bad_subjects = {
        "exactly one CN": _two_cn_subject("edge-a", "edge-b"),
        "exactly one O": x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "system:node:edge-a"),
            ]
        ),
        "is not system:node:<node name>": x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                x509.NameAttribute(NameOID.COMMON_NAME, "system:node:Edge_A/.."),
            ]
        ),
    }
    for reason, subject in bad_subjects.items():
        body, _ = _csr(subject)
        with pytest.raises(pki.IdentityError, match=reason):
            pki.node_identity(x509.load_pem_x509_csr(body))


async def test_two_cn_csr_is_refused_at_join_and_renewal(cloud: Cloud, tmp_path: Path) -> None:
    body, _ = _csr(_two_cn_subject("edge-a", "edge-b"))
    token = JoinToken.parse(cloud.core.token).jwt
    status, reason = await asyncio.to_thread(_edge_crt, cloud, "edge-a", body, bearer=token)
    assert status == 403 and b"exactly one CN" in reason, reason

    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    certs = tmp_path / "a" / "certs"
    ctx = _ctx((certs / "ca.crt").read_bytes(), certs / "server.crt", certs / "server.key")
    status, reason = await asyncio.to_thread(_edge_crt, cloud, "edge-a", body, ctx=ctx)
    assert status == 403 and b"exactly one CN" in reason, reason
    # The CN order the other way round is refused too (cloudhub once read the last CN).
    body, _ = _csr(_two_cn_subject("edge-b", "edge-a"))
    status, reason = await asyncio.to_thread(_edge_crt, cloud, "edge-a", body, ctx=ctx)
    assert status == 403 and b"exactly one CN" in reason, reason


async def test_two_cn_certificate_cannot_connect_nor_renew(cloud: Cloud, tmp_path: Path) -> None:
    """A two-CN certificate signed before the rule existed: cloudhub and the certificate server refuse it."""
    ca = cloud.core.certs.ca  # type: ignore[union-attr]
    key = pki.new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_two_cn_subject("edge-a", "edge-b"))
    signed = ca.sign_csr(csr.sign(key, hashes.SHA256()))
    crt, k = _write_pair(tmp_path, "two", signed, key)
    ca_pem = pki.cert_to_pem(ca.cert)
    url = f"wss://127.0.0.1:{cloud.ws_port}/e632aba927ea4ac2b575ec1603d56f10/edge-b/events"
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url, ssl=_ctx(ca_pem, crt, k)):
            pass
    assert exc.value.response.status_code == 403
    assert b"exactly one CN" in exc.value.response.body
    assert not cloud.core.hub.is_connected("edge-b")  # type: ignore[union-attr]

    clean, _ = _csr(pki.node_subject("edge-b"))
    status, reason = await asyncio.to_thread(_edge_crt, cloud, "edge-b", clean, ctx=_ctx(ca_pem, crt, k))
    assert status == 403 and b"exactly one CN" in reason, reason


async def test_issued_certificate_carries_only_the_node_identity(cloud: Cloud) -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "system:masters"),
            x509.NameAttribute(NameOID.COMMON_NAME, "system:node:edge-k"),
        ]
    )
    body, _ = _csr(subject)
    status, der = await asyncio.to_thread(
        _edge_crt, cloud, "edge-k", body, bearer=JoinToken.parse(cloud.core.token).jwt
    )
    assert status == 200, der
    assert x509.load_der_x509_certificate(der).subject == pki.node_subject("edge-k")


async def test_token_cannot_take_a_name_that_has_a_certificate(cloud: Cloud, tmp_path: Path) -> None:
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    # Not yet registered (edgecore never ran): the name is still taken.
    assert cloud.kube.get(NODES, "edge-a") is None
    body, _ = _csr(pki.node_subject("edge-a"))
    jwt = JoinToken.parse(cloud.core.token).jwt
    status, reason = await asyncio.to_thread(_edge_crt, cloud, "edge-a", body, bearer=jwt)
    assert status == 409 and b"already has a certificate" in reason, reason
    assert await join(cloud, "edge-a", tmp_path / "again") == 1
    # A registered node that never used a token here (another cloudcore, KubeEdge) is taken too.
    cloud.kube.put(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "edge-r"}})
    body_r, _ = _csr(pki.node_subject("edge-r"))
    status, reason = await asyncio.to_thread(_edge_crt, cloud, "edge-r", body_r, bearer=jwt)
    assert status == 409, reason

    # The operator's explicit action: a token made for that node, and only for it.
    ca = cloud.core.certs.ca  # type: ignore[union-attr]
    for_a = create_token(pki.cert_to_der(ca.cert), pki.key_to_der(ca.key), 600, node="edge-a")
    status, reason = await asyncio.to_thread(
        _edge_crt, cloud, "edge-b", _csr(pki.node_subject("edge-b"))[0], bearer=JoinToken.parse(for_a).jwt
    )
    assert status == 403 and b"made for node 'edge-a'" in reason, reason
    assert await join(cloud, "edge-a", tmp_path / "replaced", token=for_a) == 0


async def test_duplicate_node_id_header_is_a_clear_400(cloud: Cloud, tmp_path: Path) -> None:
    assert await join(cloud, "edge-a", tmp_path / "a") == 0
    certs = tmp_path / "a" / "certs"
    ctx = _ctx((certs / "ca.crt").read_bytes(), certs / "server.crt", certs / "server.key")
    url = f"wss://127.0.0.1:{cloud.ws_port}/e632aba927ea4ac2b575ec1603d56f10/edge-a/events"
    with pytest.raises(InvalidStatus) as exc:
        async with connect(url, ssl=ctx, additional_headers=[("node_id", "edge-a"), ("node_id", "edge-b")]):
            pass
    assert exc.value.response.status_code == 400
    assert b"2 node_id headers" in exc.value.response.body
