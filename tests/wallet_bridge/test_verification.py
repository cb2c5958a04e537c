"""Verification: the W3C VC-JOSE-COSE and OID4VCI vectors, and each check failing on its own."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from domain.crypto import b64url_encode, parse_compact, public_jwk, sign_compact
from domain.signing_keys import IssuerKey
from tests.wallet_bridge.conftest import ISSUER, Holder, SettableClock, fixture_json, fixture_text, redeem_offer
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.credentials import sign_credential, validate_credential_document
from wallet_bridge.sd_jwt import SDJWTError, resolve_disclosures, split_sd_jwt
from wallet_bridge.verification import KeySet, StatusListUnavailable, verify_credential

W3C_ISSUER = "https://example.issuer/vc-jose-cose"
NOW = datetime.now(UTC)


def w3c_keys(*names: str) -> KeySet:
    return KeySet([fixture_json(f"vc-jose-cose/{n}")["publicKeyJwk"] for n in names], issuer=W3C_ISSUER)


ALL_W3C_KEYS = ("vm-p256.json", "vm-p384.json", "vm-ed25519.json")


@pytest.mark.parametrize(
    "name",
    ["credential-jose-minimal.txt", "credential-issuer-match-signed.txt", "credential-sdjwt-selective.txt"],
)
def test_w3c_vectors_that_must_verify(name: str) -> None:
    result = verify_credential(fixture_text(f"vc-jose-cose/{name}"), w3c_keys(*ALL_W3C_KEYS), NOW)
    assert result.valid, result.to_json()
    assert result.credential["issuer"] == W3C_ISSUER


def test_minimal_vector_has_a_string_iat_and_still_verifies() -> None:
    token = fixture_text("vc-jose-cose/credential-jose-minimal.txt")
    assert isinstance(parse_compact(token).claims()["iat"], str)
    result = verify_credential(token, w3c_keys("vm-p256.json"), NOW)
    assert [c.name for c in result.checks if c.ok] == ["format", "key", "signature", "claims", "dates"]


def test_w3c_bad_signature_is_rejected_for_its_signature() -> None:
    result = verify_credential(
        fixture_text("vc-jose-cose/credential-jose-bad-signature.txt"), w3c_keys(*ALL_W3C_KEYS), NOW
    )
    assert not result.valid
    assert result.failed.name == "signature"
    assert result.credential is None  # nothing from an unverified payload is handed back


def test_w3c_sd_jwt_returns_both_disclosed_claims() -> None:
    result = verify_credential(
        fixture_text("vc-jose-cose/credential-sdjwt-selective.txt"), w3c_keys("vm-p384.json"), NOW
    )
    assert result.disclosed == {"firstName": "Jane", "lastName": "Doe"}
    subject = result.credential["credentialSubject"]
    assert subject["firstName"] == "Jane" and subject["lastName"] == "Doe" and "_sd" not in subject


def test_sd_jwt_with_an_unmatched_disclosure_is_rejected() -> None:
    token = fixture_text("vc-jose-cose/credential-sdjwt-selective.txt").strip()
    extra = b64url_encode(json.dumps(["salt", "age", 99]).encode())
    result = verify_credential(token + extra + "~", w3c_keys("vm-p384.json"), NOW)
    assert result.failed.name == "claims" and "match no digest" in result.failed.detail


def test_sd_jwt_dropping_a_disclosure_hides_only_that_claim() -> None:
    issuer_jwt, first, _second, _ = (
        fixture_text("vc-jose-cose/credential-sdjwt-selective.txt").strip().split("~")
    )
    result = verify_credential(f"{issuer_jwt}~{first}~", w3c_keys("vm-p384.json"), NOW)
    assert result.valid and result.disclosed == {"firstName": "Jane"}


def test_oid4vci_sd_jwt_vc_disclosures_all_match() -> None:
    # The issuer key is not published, so only the disclosures can be checked (as SOURCES.md says).
    token = fixture_json("oid4vci/credential_response_sd_jwt_vc.body.json")["credentials"][0]["credential"]
    sd = split_sd_jwt(token)
    assert sd.issuer_jwt.header["typ"] == "dc+sd-jwt"
    resolved, disclosed = resolve_disclosures(sd.issuer_jwt.claims(), sd.disclosures)
    assert len(sd.disclosures) == 9 and len(disclosed) == 9
    assert resolved["given_name"] == "John" and resolved["address"]["locality"] == "Anytown"
    assert "_sd" not in resolved and "_sd_alg" not in resolved
    with pytest.raises(SDJWTError, match="twice"):
        resolve_disclosures(sd.issuer_jwt.claims(), sd.disclosures + sd.disclosures[:1])


def test_wrong_issuer_keys_fail_the_key_check() -> None:
    token = fixture_text("vc-jose-cose/credential-jose-minimal.txt")
    assert verify_credential(token, w3c_keys("vm-p384.json"), NOW).failed.name == "key"
    # The right key, but published by another issuer, is not offered for this credential.
    other = KeySet(
        [fixture_json("vc-jose-cose/vm-p256.json")["publicKeyJwk"]], issuer="https://other.example"
    )
    assert verify_credential(token, other, NOW).failed.name == "key"


def test_oid4vci_jwt_vc_json_verifies_with_its_jwks() -> None:
    token = fixture_json("oid4vci/credential_response_jwt_vc_json.body.json")["credentials"][0]["credential"]
    keys = KeySet(
        fixture_json("oid4vci/issuer_jwks.json")["jwks"]["keys"],
        issuer="https://credential-issuer.example.com",
    )
    result = verify_credential(token, keys, NOW)
    assert result.valid, result.to_json()
    assert result.checks[0].detail.startswith("jwt_vc_json")
    assert result.credential["credentialSubject"]["degree"]["type"] == "BachelorDegree"
    # Before its nbf (2025-01-01) it is not yet valid.
    early = verify_credential(token, keys, datetime(2024, 12, 1, tzinfo=UTC))
    assert early.failed.name == "dates" and "nbf" in early.failed.detail


@pytest.mark.parametrize("token, message", [("", "non-empty"), ("abc", "3 segments"), ("a~", "segments")])
def test_garbage_fails_the_format_check(token: str, message: str) -> None:
    result = verify_credential(token, KeySet([]), NOW)
    assert result.failed.name == "format" and message in result.failed.detail
    assert [c.ok for c in result.checks[1:]] == [None] * 6


def test_unsupported_typ_fails_the_format_check() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = sign_compact({"typ": "JWT"}, {"iss": ISSUER}, key)  # a plain JWT with no credential
    assert verify_credential(token, KeySet([public_jwk(key)]), NOW).failed.name == "format"


# --- this issuer's own credentials -------------------------------------------------------------------


def test_issued_credential_verifies_with_the_published_keys(bridge: WalletBridge, holder: Holder) -> None:
    token, _ = redeem_offer(bridge, holder)
    result = bridge.verify(token, holder_jwk=holder.jwk)
    assert result.valid, result.to_json()
    assert {c.name: c.ok for c in result.checks} == {
        "format": True,
        "key": True,
        "signature": True,
        "claims": True,
        "dates": True,
        "holder_binding": True,
        "status": True,
    }
    assert result.status == {"revocation": 0, "suspension": 0}
    # The same result from only the public JWKS document, as an outside verifier would have it.
    outside = KeySet(json.loads(json.dumps(bridge.keyring.jwks()))["keys"], issuer=ISSUER)
    assert verify_credential(token, outside, bridge.clock()).valid


def test_expired_credential_fails_the_dates_check(
    bridge: WalletBridge, holder: Holder, clock: SettableClock
) -> None:
    token, _ = redeem_offer(bridge, holder)
    clock.advance(days=61)
    result = bridge.verify(token)
    assert not result.valid and result.failed.name == "dates" and "expired" in result.failed.detail


def test_other_holder_key_fails_the_holder_binding_check(bridge: WalletBridge, holder: Holder) -> None:
    token, _ = redeem_offer(bridge, holder)
    result = bridge.verify(token, holder_jwk=Holder().jwk)
    assert result.failed.name == "holder_binding"


def test_revoked_and_suspended_fail_the_status_check(bridge: WalletBridge, holder: Holder) -> None:
    token, _ = redeem_offer(bridge, holder)
    credential_id = parse_compact(token).claims()["id"]
    bridge.status_control.suspend(credential_id)
    suspended = bridge.verify(token)
    assert suspended.failed.name == "status" and suspended.failed.detail == "suspended"
    bridge.status_control.resume(credential_id)
    assert bridge.verify(token).valid
    bridge.status_control.revoke(credential_id)
    revoked = bridge.verify(token)
    assert revoked.failed.name == "status" and revoked.failed.detail == "revoked"
    assert revoked.status == {"revocation": 1, "suspension": 0}


def test_tampered_credential_fails_the_signature_check(bridge: WalletBridge, holder: Holder) -> None:
    token, _ = redeem_offer(bridge, holder)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["validUntil"] = "2099-01-01T00:00:00Z"
    forged = b64url_encode(json.dumps(claims).encode())
    assert bridge.verify(f"{header}.{forged}.{signature}").failed.name == "signature"


def test_credential_signed_by_a_stranger_fails_the_key_check(bridge: WalletBridge) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    credential = validate_credential_document(fixture_json("vc-data-model-2.0/credential-ok.json"), ISSUER)
    token = sign_credential(credential, IssuerKey("made-up-kid", 0, stranger), bridge.clock())
    assert bridge.verify(token).failed.name == "key"


def test_iss_differing_from_issuer_fails_the_claims_check(bridge: WalletBridge) -> None:
    key = bridge.keyring.active_key()
    credential = validate_credential_document(fixture_json("vc-data-model-2.0/credential-ok.json"), ISSUER)
    token = sign_compact(
        {"typ": "vc+jwt", "cty": "vc", "kid": key.kid},
        {**credential, "iss": "https://evil.example"},
        key.private_key,
    )
    # The key is only offered for credentials naming this issuer, and the claims check catches the rest.
    result = verify_credential(token, KeySet(bridge.keyring.jwks()["keys"]), bridge.clock())
    assert result.failed.name == "claims" and "iss" in result.failed.detail


def test_credentials_from_before_a_rotation_still_verify(bridge: WalletBridge, holder: Holder) -> None:
    token, _ = redeem_offer(bridge, holder)
    old_kid = parse_compact(token).header["kid"]
    bridge.keyring.rotate()
    assert bridge.keyring.active_key().kid != old_kid
    assert bridge.verify(token).valid
    later, _ = redeem_offer(
        bridge, Holder(), certificate_id="cert-0001-vac", doc_type="vaccination-certificate", key="confirm-2"
    )
    assert parse_compact(later).header["kid"] == bridge.keyring.active_key().kid
    assert bridge.verify(later).valid


def test_status_list_that_cannot_be_fetched_fails_the_status_check(
    bridge: WalletBridge, holder: Holder
) -> None:
    token, _ = redeem_offer(bridge, holder)

    def unreachable(url: str) -> str:
        raise StatusListUnavailable("connection refused")

    result = verify_credential(token, bridge.key_set(), bridge.clock(), unreachable)
    assert result.failed.name == "status" and "cannot be read" in result.failed.detail


def test_status_list_signed_by_someone_else_is_not_trusted(bridge: WalletBridge, holder: Holder) -> None:
    token, _ = redeem_offer(bridge, holder)
    url = parse_compact(token).claims()["credentialStatus"][0]["statusListCredential"]
    stranger = ec.generate_private_key(ec.SECP256R1())
    genuine = parse_compact(bridge.fetch_own_status_list(url)).claims()
    forged = sign_compact({"typ": "vc+jwt", "kid": bridge.keyring.active_key().kid}, genuine, stranger)
    result = verify_credential(token, bridge.key_set(), bridge.clock(), lambda _url: forged)
    assert result.failed.name == "status" and "does not verify" in result.failed.detail


def test_dates_one_by_one(bridge: WalletBridge) -> None:
    key = bridge.keyring.active_key()
    now = bridge.clock()
    base = validate_credential_document(fixture_json("vc-data-model-2.0/credential-ok.json"), ISSUER)
    future = {**base, "validFrom": (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    early = verify_credential(sign_credential(future, key, now), bridge.key_set(), now).failed
    assert early.name == "dates" and early.detail.endswith("is in the future")
    assert verify_credential(
        sign_credential(base, key, now + timedelta(hours=1)), bridge.key_set(), now
    ).failed.detail.startswith("iat")
    ok = verify_credential(sign_credential(base, key, now), bridge.key_set(), now)
    assert ok.valid and {c.name: c.detail for c in ok.checks}["dates"] == "within its validity period"
