import time

import pytest

from kubeshore import pki
from kubeshore.jointoken import JoinToken, TokenError, create_jwt, create_token, verify_jwt


def test_token_is_ca_hash_dot_jwt_signed_with_ca_key() -> None:
    ca = pki.CertificateAuthority.create("KubeEdge")
    ca_der, key_der = pki.cert_to_der(ca.cert), pki.key_to_der(ca.key)
    token = create_token(ca_der, key_der, 3600)
    parsed = JoinToken.parse(token)
    assert parsed.ca_hash == pki.ca_hash(ca.cert)
    assert parsed.matches_ca(ca_der)
    exp = verify_jwt(parsed.jwt, key_der)
    assert 3500 < exp - time.time() <= 3600


def test_wrong_key_expired_and_malformed_tokens_are_refused() -> None:
    ca = pki.CertificateAuthority.create("KubeEdge")
    other = pki.CertificateAuthority.create("KubeEdge")
    key_der = pki.key_to_der(ca.key)
    with pytest.raises(TokenError, match="signature"):
        verify_jwt(create_jwt(pki.key_to_der(other.key), int(time.time()) + 60), key_der)
    with pytest.raises(TokenError, match="expired"):
        verify_jwt(create_jwt(key_der, int(time.time()) - 1), key_der)
    with pytest.raises(TokenError):
        verify_jwt("abc", key_der)
    with pytest.raises(TokenError, match="4 dot-separated"):
        JoinToken.parse("abc.def")
    with pytest.raises(TokenError, match="64-hex"):
        JoinToken.parse("zz.a.b.c")
