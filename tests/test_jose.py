"""The ES256 compact JWS used for consent receipts, checked against published test vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from wallet_bridge.jose import (
    JoseError,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    public_jwk,
    public_key_from_jwk,
    sign_es256,
    verify_es256,
)

# Copies of ../shared/fixtures (see its SOURCES.md): W3C vc-jose-cose test suite and OpenID4VCI 1.0 examples.
FIXTURES = Path(__file__).parent / "fixtures" / "credentials"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8").strip()


def test_w3c_vc_jose_es256_vector_verifies():
    method = json.loads(fixture("vc-jose-cose/vm-p256.json"))
    header, claims = verify_es256(fixture("vc-jose-cose/credential-jose-minimal.txt"),
                                  public_key_from_jwk(method["publicKeyJwk"]))
    assert header["typ"] == "vc+jwt" and header["kid"] == method["publicKeyJwk"]["kid"]
    assert "https://www.w3.org/ns/credentials/v2" in claims["@context"]


def test_oid4vci_proof_verifies_with_its_header_key():
    token = fixture("oid4vci/jwt_proof.txt")
    header = json.loads(b64url_decode(token.split(".")[0]))
    _, claims = verify_es256(token, public_key_from_jwk(header["jwk"]))
    assert claims["nonce"] == "LarRGSbmUPYtRYO6BQ4yn8"


def test_rfc7638_thumbprint_matches_the_published_kid():
    key = json.loads(fixture("oid4vci/issuer_jwks.json"))["jwks"]["keys"][0]
    assert "urn:ietf:params:oauth:jwk-thumbprint:sha-256:" + jwk_thumbprint(key) == key["kid"]


def test_sign_then_verify_and_tampering_fails():
    key = ec.generate_private_key(ec.SECP256R1())
    token = sign_es256({"event": "withdrawn", "n": 1}, key, {"kid": "k1", "typ": "JWT"})
    header, claims = verify_es256(token, key.public_key())
    assert header == {"alg": "ES256", "kid": "k1", "typ": "JWT"} and claims == {"event": "withdrawn", "n": 1}
    head, body, signature = token.split(".")
    forged = b64url_encode(json.dumps({"event": "given", "n": 1}).encode())
    with pytest.raises(JoseError):
        verify_es256(f"{head}.{forged}.{signature}", key.public_key())
    with pytest.raises(JoseError):
        verify_es256(token, ec.generate_private_key(ec.SECP256R1()).public_key())
    none_header = b64url_encode(json.dumps({"alg": "none"}).encode())
    with pytest.raises(JoseError):
        verify_es256(f"{none_header}.{body}.{signature}", key.public_key())
    assert public_key_from_jwk(public_jwk(key)).public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!.??.**", 5])
def test_malformed_tokens_are_refused(token):
    with pytest.raises(JoseError):
        verify_es256(token, ec.generate_private_key(ec.SECP256R1()).public_key())
