"""Certificates and keys: one place for the CA, server, client and CSR-signing logic.

Used by the embedded API server (its self-signed serving CA and admin client certificate) and by
cloudcore (the edge CA that signs node certificates). Keys are ECDSA P-256, as KubeEdge's are.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeshore import filemodes

_CA_VALIDITY = dt.timedelta(days=100 * 364)
NODE_CN_PREFIX = "system:node:"
NODE_ORGANIZATION = "system:nodes"
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
DEFAULT_CERT_VALIDITY = dt.timedelta(days=365)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def key_to_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def key_from_pem(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an ECDSA private key")
    return key


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_to_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def ca_hash(cert: x509.Certificate) -> str:
    """Hex SHA-256 of the CA certificate's DER bytes: the first part of a KubeEdge join token."""
    return hashlib.sha256(cert_to_der(cert)).hexdigest()


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str) -> CertificateAuthority:
        key = new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, cert_path: Path, key_path: Path, common_name: str) -> CertificateAuthority:
        if cert_path.exists() and key_path.exists():
            return cls(
                x509.load_pem_x509_certificate(cert_path.read_bytes()), key_from_pem(key_path.read_bytes())
            )
        ca = cls.create(common_name)
        write_private(key_path, key_to_pem(ca.key))
        cert_path.write_bytes(cert_to_pem(ca.cert))
        return ca

    def issue(
        self,
        common_name: str,
        *,
        organization: str | None = None,
        server_names: list[str] | None = None,
        client: bool = False,
        server: bool = False,
        key: ec.EllipticCurvePrivateKey | None = None,
        validity: dt.timedelta = DEFAULT_CERT_VALIDITY,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Issue a certificate (and key, unless given) signed by this CA."""
        key = key or new_key()
        attrs = []
        if organization:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        cert = self._sign(x509.Name(attrs), key.public_key(), server_names or [], client, server, validity)
        return cert, key

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        subject: x509.Name | None = None,
        validity: dt.timedelta = DEFAULT_CERT_VALIDITY,
    ) -> x509.Certificate:
        """Sign a client CSR with ``subject`` (default: the CSR's); the caller has authorised it."""
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is invalid")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise ValueError("CSR key must be ECDSA")
        return self._sign(subject or csr.subject, public_key, [], True, False, validity)

    def _sign(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        server_names: list[str],
        client: bool,
        server: bool,
        validity: dt.timedelta,
    ) -> x509.Certificate:
        now = _now()
        usages = []
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if server_names:
            sans: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    sans.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def client_tls_context(
    ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """TLS client context: the server must chain to ``ca_file`` (the system's CAs when None) and match
    the host name; ``cert_file``/``key_file`` are presented when the server asks for a certificate."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


def node_subject(node: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODE_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, NODE_CN_PREFIX + node),
        ]
    )


def new_csr(
    common_name: str, organization: str, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateSigningRequest:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def common_name(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


class IdentityError(PermissionError):
    """A certificate or CSR does not name exactly one node."""


def node_identity(subject_of: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """The one node a certificate or CSR names; the identity rule of the certificate server and cloudhub.

    Exactly one CN ``system:node:<name>`` with a valid node name and exactly one O ``system:nodes``;
    other attributes (KubeEdge's CSR adds C, L, ST) are allowed. Anything else is refused: a subject
    with two CNs was read as one node by a check of the first CN and as another by the last.
    """
    subject = subject_of.subject
    cns = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if len(cns) != 1:
        raise IdentityError(f"subject must have exactly one CN {NODE_CN_PREFIX}<node>, has {len(cns)}")
    if [a.value for a in orgs] != [NODE_ORGANIZATION]:
        raise IdentityError(
            f"subject must have exactly one O {NODE_ORGANIZATION}, has {[str(a.value) for a in orgs]}"
        )
    cn = str(cns[0].value)
    name = cn[len(NODE_CN_PREFIX) :]
    if not cn.startswith(NODE_CN_PREFIX) or len(name) > 253 or not _NODE_NAME.match(name):
        raise IdentityError(f"CN {cn!r} is not {NODE_CN_PREFIX}<node name>")
    return name


def write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only."""
    filemodes.write_private(path, data)
