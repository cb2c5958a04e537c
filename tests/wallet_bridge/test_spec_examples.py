"""The examples of the specifications the mobile ID follows (issue 16), verified as the specifications say: the
IETF SD-JWT (draft 22, published as RFC 9901) and SD-JWT VC (draft 18) documents, and OpenID4VP 1.0's examples.
Sources: tests/fixtures/sd-jwt/SOURCES.md and tests/fixtures/openid4vp/SOURCES.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from domain.crypto import public_jwk, public_key_from_jwk, sign_compact, signature_is_valid
from wallet_bridge.holder import requested_claims
from wallet_bridge.mobile_id import LINK_CLAIMS
from wallet_bridge.presentation import SpeakerPairings
from wallet_bridge.sd_jwt import KB_JWT_TYP, add_key_binding, resolve_disclosures, sd_hash, split_sd_jwt
from wallet_bridge.verification import KeyBindingRequirement, KeySet, _key_binding_problem, verify_credential

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SD_JWT, OPENID4VP = FIXTURES / "sd-jwt", FIXTURES / "openid4vp"
EXAMPLE_NONCE = "1234567890"


def token(path: Path) -> str:
    return "".join(path.read_text(encoding="utf-8").split())  # the specs fold long tokens over lines


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


ISSUER_KEY = load(SD_JWT / "sd-jwt-22-a5-issuer-key.json")


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# --- SD-JWT (draft 22 = RFC 9901) §5: issuance and presentation ------------------------------------------------


def test_sd_jwt_issuance_example_signature_and_every_disclosure_match():
    parsed = split_sd_jwt(token(SD_JWT / "sd-jwt-22-5.1-issuance.txt"))
    assert signature_is_valid(parsed.issuer_jwt, public_key_from_jwk(ISSUER_KEY))
    assert parsed.key_binding_jwt is None and len(parsed.disclosures) == 10
    payload, disclosed = resolve_disclosures(parsed.issuer_jwt.claims(), parsed.disclosures)
    assert payload["given_name"] == "John" and payload["nationalities"] == ["US", "DE"]
    assert payload["address"]["locality"] == "Anytown" and "_sd" not in payload
    assert {"given_name", "family_name", "email", "birthdate", "updated_at"} <= set(disclosed)


def test_sd_jwt_presentation_example_verifies_with_its_key_binding():
    presented = token(SD_JWT / "sd-jwt-22-5.2-presentation.txt")
    expected = load(SD_JWT / "sd-jwt-22-5.2-expected.json")
    parsed = split_sd_jwt(presented)
    assert signature_is_valid(parsed.issuer_jwt, public_key_from_jwk(ISSUER_KEY))
    payload, _ = resolve_disclosures(parsed.issuer_jwt.claims(), parsed.disclosures)
    assert payload == expected["processed_payload"]
    kb = parsed.key_binding_jwt
    assert kb.header["typ"] == KB_JWT_TYP and kb.claims() == expected["key_binding_jwt_payload"]
    assert signature_is_valid(kb, public_key_from_jwk(payload["cnf"]["jwk"]))
    assert kb.claims()["sd_hash"] == sd_hash(parsed.presented_prefix)
    requirement = KeyBindingRequirement(EXAMPLE_NONCE, "https://verifier.example.org")
    assert _key_binding_problem(kb.claims(), requirement, at(kb.claims()["iat"])) is None
    # The same presentation for another verifier, or a day later, is refused.
    other = KeyBindingRequirement(EXAMPLE_NONCE, "https://other.example.org")
    assert "aud" in _key_binding_problem(kb.claims(), other, at(kb.claims()["iat"]))
    assert "too old" in _key_binding_problem(kb.claims(), requirement, at(kb.claims()["iat"] + 86400))


def test_sd_jwt_presentation_example_with_a_swapped_disclosure_fails():
    presented = token(SD_JWT / "sd-jwt-22-5.2-presentation.txt")
    issued = split_sd_jwt(token(SD_JWT / "sd-jwt-22-5.1-issuance.txt"))
    parsed = split_sd_jwt(presented)
    # Swapping in the (genuine) email disclosure changes what the KB-JWT's sd_hash covers.
    email = next(d for d in issued.disclosures if d not in parsed.disclosures and d.startswith("WyI2SWo3"))
    swapped = presented.replace(parsed.disclosures[0], email)
    assert split_sd_jwt(swapped).key_binding_jwt.claims()["sd_hash"] != sd_hash(split_sd_jwt(swapped).presented_prefix)


# --- SD-JWT VC: RFC 9901 Appendix A.3 and draft-ietf-oauth-sd-jwt-vc-18 §2.3 ---------------------------------


def test_sd_jwt_vc_pid_example_verifies_with_the_verifier_checks():
    presented = token(SD_JWT / "sd-jwt-22-a3-sd-jwt-vc-presentation.txt")
    expected = load(SD_JWT / "sd-jwt-22-a3-expected.json")
    kb_iat = expected["key_binding_jwt_payload"]["iat"]
    result = verify_credential(
        presented, KeySet([ISSUER_KEY], issuer="https://pid-issuer.bund.de.example"), at(kb_iat),
        key_binding=KeyBindingRequirement(EXAMPLE_NONCE, "https://verifier.example.org"))
    assert result.valid, result.failed
    assert result.header["typ"] == "dc+sd-jwt"
    processed = {k: v for k, v in expected["processed_payload"].items() if k != "cnf"}
    assert result.credential == processed
    assert result.credential["age_equal_or_over"] == {"18": True}
    # The issued form, with every disclosure and no key binding, verifies too, but not where one is required.
    issued = token(SD_JWT / "sd-jwt-22-a3-sd-jwt-vc-issuance.txt")
    assert verify_credential(issued, KeySet([ISSUER_KEY]), at(kb_iat)).valid
    required = verify_credential(issued, KeySet([ISSUER_KEY]), at(kb_iat),
                                 key_binding=KeyBindingRequirement(EXAMPLE_NONCE, "https://verifier.example.org"))
    assert required.failed.name == "holder_binding"


def test_sd_jwt_vc_example_verifies_with_the_issuers_published_jwks():
    metadata = load(SD_JWT / "sd-jwt-vc-18-4.2-issuer-metadata.json")
    expected = load(SD_JWT / "sd-jwt-vc-18-2.3.2-expected.json")
    keys = KeySet(metadata["jwks"]["keys"], issuer="https://example.com/issuer")
    presented = token(SD_JWT / "sd-jwt-vc-18-2.3.2-presentation.txt")
    kb_iat = split_sd_jwt(presented).key_binding_jwt.claims()["iat"]
    result = verify_credential(presented, keys, at(kb_iat),
                               key_binding=KeyBindingRequirement(EXAMPLE_NONCE, "https://example.com/verifier"))
    assert result.valid, result.failed
    assert result.credential == {k: v for k, v in expected["processed_payload"].items() if k != "cnf"}
    assert set(result.disclosed) == {"address", "is_over_65"}
    # Figure 10: presented without a KB-JWT — fine for a verifier that does not require one, refused by one
    # that does (the mobile ID verifier always does). Its header names no kid: with the issuer's two published
    # keys this verifier does not guess (key), with the one key that signed it, it verifies.
    bare = token(SD_JWT / "sd-jwt-vc-18-2.3.2-presentation-no-kb.txt")
    assert verify_credential(bare, keys, at(kb_iat)).failed.name == "key"
    signer = KeySet([metadata["jwks"]["keys"][0]], issuer="https://example.com/issuer")
    plain = verify_credential(bare, signer, at(kb_iat))
    assert plain.valid and plain.credential == expected["processed_payload_no_kb"]
    strict = verify_credential(bare, signer, at(kb_iat),
                               key_binding=KeyBindingRequirement(EXAMPLE_NONCE, "https://example.com/verifier"))
    assert strict.failed.name == "holder_binding"
    # Its issuer JWT names a kid of the JWKS; under another issuer's name no key is offered.
    assert verify_credential(presented, KeySet(metadata["jwks"]["keys"], issuer="https://example.com"),
                             at(kb_iat)).failed.name == "key"


@pytest.mark.parametrize("nonce, audience, failed", [
    ("0987654321", "https://example.com/verifier", "holder_binding"),
    (EXAMPLE_NONCE, "https://example.com/other", "holder_binding"),
])
def test_sd_jwt_vc_example_for_another_request_fails(nonce, audience, failed):
    metadata = load(SD_JWT / "sd-jwt-vc-18-4.2-issuer-metadata.json")
    presented = token(SD_JWT / "sd-jwt-vc-18-2.3.2-presentation.txt")
    kb_iat = split_sd_jwt(presented).key_binding_jwt.claims()["iat"]
    result = verify_credential(presented, KeySet(metadata["jwks"]["keys"]), at(kb_iat),
                               key_binding=KeyBindingRequirement(nonce, audience))
    assert result.failed.name == failed


# --- OpenID4VP 1.0 ------------------------------------------------------------------------------------------


def test_openid4vp_sd_jwt_presentation_example_verifies():
    presented = token(OPENID4VP / "sd_jwt_vcld_presentation.txt")
    kb = load(OPENID4VP / "sd_jwt_vcld_kb_jwt_payload.json")
    expected = load(OPENID4VP / "sd_jwt_vcld_verified_contents.json")
    result = verify_credential(presented, KeySet([ISSUER_KEY], issuer="https://issuer.example.com"), at(kb["iat"]),
                               key_binding=KeyBindingRequirement(kb["nonce"], kb["aud"]))
    assert result.valid, result.failed
    assert result.credential == {k: v for k, v in expected.items() if k != "cnf"}
    # Five minutes after the KB-JWT was made it is no longer fresh.
    stale = verify_credential(presented, KeySet([ISSUER_KEY]), at(kb["iat"] + 301),
                              key_binding=KeyBindingRequirement(kb["nonce"], kb["aud"]))
    assert stale.failed.name == "holder_binding"


def test_the_holder_reads_the_spec_dcql_query_and_the_verifier_asks_in_the_same_shape():
    spec = load(OPENID4VP / "dcql_simple.json")["credentials"][0]
    assert requested_claims(spec) == ["family_name", "given_name", "address"]
    ours = SpeakerPairings.dcql_query(_Configured())["credentials"][0]
    assert set(ours) == set(spec) and set(ours["meta"]) == set(spec["meta"]) and ours["format"] == spec["format"]
    assert requested_claims(ours) == list(LINK_CLAIMS)


def test_our_verifier_metadata_and_key_binding_have_the_specs_members():
    spec_metadata = load(OPENID4VP / "sd_jwt_vc_verifier_metadata.json")["vp_formats_supported"]["dc+sd-jwt"]
    holder_key = ec.generate_private_key(ec.SECP256R1())
    issuer_jwt = sign_compact({"typ": "dc+sd-jwt"}, {"iss": "https://minwon.test", "vct": "v"}, holder_key)
    bound = add_key_binding(issuer_jwt + "~", holder_key, nonce="n", audience="minwon-voice", issued_at=1)
    kb = split_sd_jwt(bound).key_binding_jwt
    spec_kb = load(OPENID4VP / "kb_jwt_unsecured.json")
    assert set(kb.claims()) == set(spec_kb) - {"transaction_data_hashes"}  # no transaction data is used here
    assert signature_is_valid(kb, public_key_from_jwk(public_jwk(holder_key)))
    assert {"sd-jwt_alg_values", "kb-jwt_alg_values"} == set(spec_metadata)


class _Configured:
    """Just enough of SpeakerPairings for its DCQL query."""

    class config:  # noqa: N801 - stands in for the dataclass instance
        issuer = "https://minwon.test"
