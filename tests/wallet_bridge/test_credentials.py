"""VCDM 2.0 input validation (W3C VCDM 2.0 test-suite inputs) and the vc+jwt this issuer signs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.crypto import parse_compact, signature_is_valid
from tests.wallet_bridge.conftest import ISSUER, fixture_json
from wallet_bridge.credentials import (
    CredentialDocumentError,
    contains_resident_registration_number,
    format_date_time,
    parse_date_time_stamp,
    sign_credential,
    validate_credential_document,
)
from wallet_bridge.documents import VCDM_V2_CONTEXT


def test_credential_ok_is_issued_with_issuer_and_base_context() -> None:
    issued = validate_credential_document(fixture_json("vc-data-model-2.0/credential-ok.json"), ISSUER)
    assert issued["issuer"] == ISSUER
    assert issued["@context"][0] == VCDM_V2_CONTEXT


@pytest.mark.parametrize(
    "name, field",
    [
        ("credential-no-type-fail.json", "type"),
        ("credential-no-subject-fail.json", "credentialSubject"),
        ("credential-issuer-null-fail.json", "issuer"),
        (
            "credential-validUntil-validFrom-fail.json",
            "validFrom",
        ),  # literal placeholders: not dateTimeStamps
    ],
)
def test_failing_inputs_are_rejected(name: str, field: str) -> None:
    with pytest.raises(CredentialDocumentError) as error:
        validate_credential_document(fixture_json(f"vc-data-model-2.0/{name}"), ISSUER)
    assert error.value.field == field


def test_valid_until_before_valid_from_is_rejected_with_real_dates() -> None:
    # The suite replaces the placeholders with now+1 year and now-1 year.
    document = fixture_json("vc-data-model-2.0/credential-validUntil-validFrom-fail.json")
    now = datetime.now(UTC)
    document["validFrom"] = format_date_time(now + timedelta(days=365))
    document["validUntil"] = format_date_time(now - timedelta(days=365))
    with pytest.raises(CredentialDocumentError, match="validUntil is before validFrom") as error:
        validate_credential_document(document, ISSUER)
    assert error.value.field == "validUntil"
    document["validUntil"], document["validFrom"] = document["validFrom"], document["validUntil"]
    assert validate_credential_document(document, ISSUER)["validUntil"] == document["validUntil"]


def test_missing_base_context_is_injected_first() -> None:
    document = fixture_json("vc-data-model-2.0/credential-missing-base-context-fail-or-inject.json")
    issued = validate_credential_document(document, ISSUER)
    assert issued["@context"] == [VCDM_V2_CONTEXT, "https://www.w3.org/ns/credentials/examples/v2"]


def test_base_context_not_first_is_moved_first_once() -> None:
    document = {
        **fixture_json("vc-data-model-2.0/credential-ok.json"),
        "@context": ["https://example.org/ctx", VCDM_V2_CONTEXT],
    }
    assert validate_credential_document(document, ISSUER)["@context"] == [
        VCDM_V2_CONTEXT,
        "https://example.org/ctx",
    ]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"issuer": "not a url"}, "issuer"),
        ({"issuer": {"name": "no id"}}, "issuer"),
        ({"credentialSubject": {}}, "credentialSubject"),
        ({"credentialSubject": []}, "credentialSubject"),
        ({"credentialSubject": {"id": "no url"}}, "credentialSubject"),
        ({"type": ["ExampleCredential"]}, "type"),
        ({"type": ["VerifiableCredential", ""]}, "type"),
        ({"id": "nope"}, "id"),
        ({"@context": 5}, "@context"),
        ({"validFrom": "2026-01-01T00:00:00"}, "validFrom"),  # no time zone: not a dateTimeStamp
        ({"validUntil": "2026-02-30T00:00:00Z"}, "validUntil"),
    ],
)
def test_other_invalid_documents(change: dict, field: str) -> None:
    document = {**fixture_json("vc-data-model-2.0/credential-ok.json"), **change}
    with pytest.raises(CredentialDocumentError) as error:
        validate_credential_document(document, ISSUER)
    assert error.value.field == field


def test_issuer_object_with_url_id_is_accepted() -> None:
    document = {
        **fixture_json("vc-data-model-2.0/credential-ok.json"),
        "issuer": {"id": ISSUER, "name": "민원"},
    }
    assert validate_credential_document(document)["issuer"]["id"] == ISSUER


def test_date_time_stamps() -> None:
    assert parse_date_time_stamp("2010-01-01T19:23:24Z") == datetime(2010, 1, 1, 19, 23, 24, tzinfo=UTC)
    assert parse_date_time_stamp("2026-11-20T09:00:00.123+09:00") == datetime(
        2026, 11, 20, 0, 0, 0, 123000, tzinfo=UTC
    )
    for bad in ("FUTURE DATE", "2026-11-20", "2026-11-20T09:00Z", 1700000000):
        with pytest.raises(ValueError):
            parse_date_time_stamp(bad)


def test_resident_registration_numbers_are_detected() -> None:
    assert contains_resident_registration_number({"a": ["x", {"b": "주민번호 900101-1234567"}]})
    assert contains_resident_registration_number("9001011234567")
    assert not contains_resident_registration_number(
        {"documentNumber": "cert-0001-rrc", "phone": "010-1234-5678"}
    )
    assert not contains_resident_registration_number("991332-1234567")  # month 13 is no date


def test_signed_credential_follows_vc_jose_cose(bridge) -> None:
    key = bridge.keyring.active_key()
    credential = validate_credential_document(
        {
            **fixture_json("vc-data-model-2.0/credential-ok.json"),
            "id": "urn:uuid:00000000-0000-4000-8000-000000000000",
            "validFrom": "2026-01-01T00:00:00Z",
            "validUntil": "2026-04-01T00:00:00Z",
        },
        ISSUER,
    )
    holder = {"kty": "OKP", "crv": "Ed25519", "x": "NvUhsjZe7Mdv8Esoc60o3ma1U5j2tFUTDsOQd39xMnI"}
    token = sign_credential(credential, key, datetime(2026, 1, 2, tzinfo=UTC), holder)
    jws = parse_compact(token)
    assert jws.header == {"typ": "vc+jwt", "cty": "vc", "kid": key.kid, "alg": "ES256"}
    claims = jws.claims()
    assert "vc" not in claims
    assert claims["iss"] == claims["issuer"] == ISSUER
    assert claims["iat"] == int(datetime(2026, 1, 2, tzinfo=UTC).timestamp())
    assert claims["exp"] == int(datetime(2026, 4, 1, tzinfo=UTC).timestamp())
    assert claims["cnf"] == {"jwk": holder}
    assert claims["jti"] == credential["id"]
    assert signature_is_valid(jws, key.private_key.public_key())


def test_signing_refuses_a_resident_registration_number(bridge) -> None:
    key = bridge.keyring.active_key()
    credential = validate_credential_document(
        {
            **fixture_json("vc-data-model-2.0/credential-ok.json"),
            "credentialSubject": {"rrn": "900101-1234567"},
        },
        ISSUER,
    )
    with pytest.raises(CredentialDocumentError, match="resident registration number"):
        sign_credential(credential, key, datetime.now(UTC))
