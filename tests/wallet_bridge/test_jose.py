"""JWK import/export, RFC 7638 thumbprints and compact JWS, against RFC vectors and the W3C fixtures."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from domain.crypto import (
    JWKError,
    JWSError,
    b64url_decode,
    jwk_thumbprint,
    jwk_thumbprint_urn,
    parse_compact,
    private_key_from_jwk,
    public_jwk,
    public_key_from_jwk,
    sign_compact,
    signature_is_valid,
)
from tests.wallet_bridge.conftest import fixture_json, fixture_text

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCi"  # noqa: E501
    "FV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnY"
    "b9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0"
    "Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}

VERIFICATION_METHODS = ("vm-p256.json", "vm-p384.json", "vm-ed25519.json")


def test_rfc7638_example_thumbprint() -> None:
    assert jwk_thumbprint(RFC7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("name", VERIFICATION_METHODS)
def test_w3c_verification_method_kids_are_their_thumbprints(name: str) -> None:
    jwk = fixture_json(f"vc-jose-cose/{name}")["publicKeyJwk"]
    assert jwk_thumbprint(jwk) == jwk["kid"]


def test_oid4vci_issuer_kid_is_the_thumbprint_urn() -> None:
    key = fixture_json("oid4vci/issuer_jwks.json")["jwks"]["keys"][0]
    assert jwk_thumbprint_urn(key) == key["kid"]


def test_thumbprint_ignores_optional_members_and_order() -> None:
    key = fixture_json("vc-jose-cose/vm-p256.json")["publicKeyJwk"]
    reordered = {"y": key["y"], "x": key["x"], "kty": "EC", "crv": "P-256", "use": "sig"}
    assert jwk_thumbprint(reordered) == jwk_thumbprint(key)


@pytest.mark.parametrize("name", VERIFICATION_METHODS)
def test_secret_key_jwk_matches_public_key(name: str) -> None:
    vm = fixture_json(f"vc-jose-cose/{name}")
    private = private_key_from_jwk(vm["secretKeyJwk"])
    exported = public_jwk(private)
    assert {k: vm["publicKeyJwk"][k] for k in exported} == exported


def test_private_key_that_does_not_match_its_public_part_is_refused() -> None:
    vm = fixture_json("vc-jose-cose/vm-p256.json")["secretKeyJwk"]
    other = fixture_json("oid4vci/issuer_jwks.json")["jwks"]["keys"][0]
    with pytest.raises(JWKError):
        private_key_from_jwk({**vm, "x": other["x"], "y": other["y"]})


def test_export_import_round_trip_for_each_curve() -> None:
    for key in (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
    ):
        jwk = public_jwk(key)
        assert public_jwk(public_key_from_jwk(jwk)) == jwk


@pytest.mark.parametrize(
    "mutation, message",
    [
        ({"crv": "P-192"}, "unsupported EC curve"),
        ({"kty": "oct"}, "unsupported key type"),
        ({"x": "AAAA"}, "expected 32"),
        ({"y": None}, "missing"),
        ({"x": "not base64!"}, "not base64url"),
    ],
)
def test_malformed_jwks_are_refused(mutation: dict, message: str) -> None:
    jwk = {**fixture_json("vc-jose-cose/vm-p256.json")["publicKeyJwk"], **mutation}
    with pytest.raises(JWKError, match=message):
        public_key_from_jwk(jwk)


def test_point_off_the_curve_is_refused() -> None:
    jwk = dict(fixture_json("vc-jose-cose/vm-p256.json")["publicKeyJwk"])
    y = bytearray(b64url_decode(jwk["y"]))
    y[-1] ^= 1
    jwk["y"] = base64.urlsafe_b64encode(bytes(y)).rstrip(b"=").decode()
    with pytest.raises(JWKError, match="not on the curve"):
        public_key_from_jwk(jwk)


@pytest.mark.parametrize(
    "curve, alg", [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (None, "EdDSA")]
)
def test_sign_then_verify(curve: ec.EllipticCurve | None, alg: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate() if curve is None else ec.generate_private_key(curve)
    token = sign_compact({"typ": "JWT"}, {"sub": "s", "n": "한글"}, key)
    jws = parse_compact(token)
    assert jws.header == {"typ": "JWT", "alg": alg}
    assert jws.claims() == {"sub": "s", "n": "한글"}
    assert signature_is_valid(jws, key.public_key())
    other = ed25519.Ed25519PrivateKey.generate() if curve is None else ec.generate_private_key(curve)
    assert not signature_is_valid(jws, other.public_key())


def test_es256_signature_is_raw_r_s_of_64_bytes() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jws = parse_compact(sign_compact({}, {"a": 1}, key))
    assert len(jws.signature) == 64


def test_tampered_payload_does_not_verify() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    header, _, signature = sign_compact({}, {"amount": 1}, key).split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"amount": 1000}).encode()).rstrip(b"=").decode()
    assert not signature_is_valid(parse_compact(f"{header}.{forged}.{signature}"), key.public_key())


def test_alg_must_match_the_key_type() -> None:
    # An ES256 token checked against a P-384 key fails even before the maths.
    p256 = ec.generate_private_key(ec.SECP256R1())
    jws = parse_compact(sign_compact({}, {"a": 1}, p256))
    assert not signature_is_valid(jws, ec.generate_private_key(ec.SECP384R1()).public_key())
    assert not signature_is_valid(jws, ed25519.Ed25519PrivateKey.generate().public_key())


def _segment(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token, message",
    [
        ("a.b", "3 segments"),
        ("a.b.c.d", "3 segments"),
        (_segment({"alg": "none"}) + "." + _segment({}) + ".", "unsupported alg"),
        (_segment({"alg": "HS256"}) + "." + _segment({}) + ".AAAA", "unsupported alg"),
        (
            _segment({"alg": "ES256", "crit": ["b64"], "b64": False}) + "." + _segment({}) + ".AAAA",
            "critical",
        ),
        ("eyJhbGciOiJFUzI1NiIsImFsZyI6Im5vbmUifQ.e30.AAAA", "duplicate"),  # {"alg":"ES256","alg":"none"}
        (_segment({"alg": "ES256"}) + "=.e30.AAAA", "base64url"),
        ("", "non-empty"),
    ],
)
def test_malformed_tokens_are_refused(token: str, message: str) -> None:
    with pytest.raises(JWSError, match=message):
        parse_compact(token)


def test_fixture_proof_header_and_payload_match_their_decoded_files() -> None:
    jws = parse_compact(fixture_text("oid4vci/jwt_proof.txt"))
    assert jws.header == fixture_json("oid4vci/jwt_proof_header.json")
    assert jws.claims() == fixture_json("oid4vci/jwt_proof_payload.json")
    assert signature_is_valid(jws, public_key_from_jwk(jws.header["jwk"]))
