"""KubeEdge join tokens: ``<hex sha256 of the CA certificate DER>.<JWT>``.

The JWT is HS256 with the CA private key's DER bytes as the HMAC secret and carries ``exp`` (section
3.4); a token made for one node (``kubeshore token create --node NAME``) also carries ``node``, which
KubeEdge ignores and kubeshore's certificate server enforces. The edge checks the CA hash before
trusting anything the cloud sends and presents
only the JWT as a Bearer token. Written on the standard library so edge code stays light.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

DEFAULT_TOKEN_VALIDITY_SECONDS = 24 * 3600


class TokenError(ValueError):
    """The token is malformed, expired or not signed by this cloud's CA."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def create_jwt(secret: bytes, expires_at: int, *, node: str | None = None) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body: dict[str, object] = {"exp": expires_at}
    if node is not None:
        body["node"] = node
    claims = _b64(json.dumps(body, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
    return f"{header}.{claims}.{signature}"


def verify_jwt(token: str, secret: bytes, *, now: float | None = None) -> int:
    """Check signature and expiry; returns ``exp``."""
    exp = verify_jwt_claims(token, secret, now=now)["exp"]
    assert isinstance(exp, int)
    return exp


def verify_jwt_claims(token: str, secret: bytes, *, now: float | None = None) -> dict[str, object]:
    """Check signature and expiry; returns the claims."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("bearer token is not a JWT (expected 3 dot-separated parts)")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise TokenError("bearer token is not valid base64url JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("bearer token must be signed with HS256")
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise TokenError("bearer token signature does not match this cloud's CA")
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int):
        raise TokenError("bearer token has no exp claim")
    if exp < (time.time() if now is None else now):
        raise TokenError("bearer token has expired; create a new one with 'kubeshore token create'")
    node = claims.get("node")
    if node is not None and not isinstance(node, str):
        raise TokenError("bearer token's node claim is not a string")
    return dict(claims)


def create_token(
    ca_cert_der: bytes, ca_key_der: bytes, validity_seconds: int, *, node: str | None = None
) -> str:
    ca_hash = hashlib.sha256(ca_cert_der).hexdigest()
    return f"{ca_hash}.{create_jwt(ca_key_der, int(time.time()) + validity_seconds, node=node)}"


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str
    jwt: str

    @classmethod
    def parse(cls, token: str) -> JoinToken:
        parts = token.strip().split(".")
        if len(parts) != 4:
            raise TokenError("token must be '<CA hash>.<JWT>' (4 dot-separated parts)")
        ca_hash = parts[0].lower()
        if len(ca_hash) != 64 or any(c not in "0123456789abcdef" for c in ca_hash):
            raise TokenError("token's first part must be the 64-hex-digit SHA-256 of the CA")
        return cls(ca_hash, ".".join(parts[1:]))

    def matches_ca(self, ca_cert_der: bytes) -> bool:
        return hmac.compare_digest(hashlib.sha256(ca_cert_der).hexdigest(), self.ca_hash)
