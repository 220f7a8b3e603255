"""Talking to cloudcore's certificate server: fetch the CA, request or renew the node certificate."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

# cryptography (and kubeshore.pki, which uses it) is imported only when a certificate is requested:
# it costs ~8 MB of resident memory that a running edge node does not otherwise need.

NODE_ORGANIZATION = "system:nodes"


class CertificateRequestError(Exception):
    """The certificate server refused or could not be reached; the text says why."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int | None = None) -> Address:
        host, sep, port = text.rpartition(":")
        if not sep:
            if default_port is None:
                raise ValueError(f"{text!r} is not HOST:PORT")
            return cls(text, default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r} is not HOST:PORT")
        return cls(host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _request(
    addr: Address,
    path: str,
    ctx: ssl.SSLContext,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    conn = http.client.HTTPSConnection(addr.host, addr.port, context=ctx, timeout=15)
    try:
        conn.request("GET", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    except ssl.SSLError as exc:
        raise CertificateRequestError(f"TLS with {addr} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise CertificateRequestError(f"cannot reach the certificate server at {addr}: {exc}") from exc
    finally:
        conn.close()
    if resp.status != 200:
        reason = data.decode(errors="replace").strip() or resp.reason
        raise CertificateRequestError(f"{addr}{path} answered {resp.status}: {reason}")
    return data


def fetch_ca(addr: Address) -> bytes:
    """The CA certificate (DER), fetched without verification: the caller checks it against the token."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _request(addr, "/ca.crt", ctx)


def verified_context(ca_pem: bytes, client: tuple[str, str] | None = None) -> ssl.SSLContext:
    """TLS to cloudcore: the server must chain to the pinned CA; its name is not checked, the CA is ours."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    if client is not None:
        ctx.load_cert_chain(client[0], client[1])
    return ctx


def request_certificate(
    addr: Address,
    node: str,
    ca_pem: bytes,
    *,
    bearer: str | None = None,
    client: tuple[str, str] | None = None,
) -> tuple[bytes, bytes]:
    """A new key and certificate for ``node``: returns (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from kubeshore import pki

    key = pki.new_key()
    csr = pki.new_csr(f"system:node:{node}", NODE_ORGANIZATION, key)
    # KubeEdge's edge sends the CSR as DER (the bytes of x509.CreateCertificateRequest) and its cloud
    # parses nothing else.
    headers = {"NodeName": node, "Content-Type": "application/octet-stream"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    der = _request(
        addr,
        "/edge.crt",
        verified_context(ca_pem, client),
        body=csr.public_bytes(serialization.Encoding.DER),
        headers=headers,
    )
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateRequestError(f"{addr} returned something that is not a certificate") from exc
    return pki.cert_to_pem(cert), pki.key_to_pem(key)


def _validity_file(cert_path: Path) -> Path:
    return cert_path.with_name(cert_path.name + ".validity.json")


def write_certificate(cert_path: Path, key_path: Path, cert_pem: bytes, key_pem: bytes) -> None:
    """Replace the node certificate and key, and note its validity period next to it."""
    from cryptography import x509

    from kubeshore import pki

    cert = x509.load_pem_x509_certificate(cert_pem)
    validity = {
        "notBefore": cert.not_valid_before_utc.timestamp(),
        "notAfter": cert.not_valid_after_utc.timestamp(),
    }
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_tmp = key_path.with_name(key_path.name + ".new")
    pki.write_private(key_tmp, key_pem)
    cert_tmp = cert_path.with_name(cert_path.name + ".new")
    cert_tmp.write_bytes(cert_pem)
    key_tmp.replace(key_path)
    cert_tmp.replace(cert_path)
    _validity_file(cert_path).write_text(json.dumps(validity))


def certificate_validity(cert_path: Path) -> tuple[float, float]:
    """(notBefore, notAfter) as Unix times, from the note written with the certificate if present."""
    note = _validity_file(cert_path)
    if note.exists() and note.stat().st_mtime >= cert_path.stat().st_mtime:
        data = json.loads(note.read_text())
        return float(data["notBefore"]), float(data["notAfter"])
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
