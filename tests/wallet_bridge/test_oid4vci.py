"""OID4VCI 1.0 pre-authorized code flow: offers, token endpoint, nonces, key proofs, credential endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from domain.crypto import parse_compact
from tests.wallet_bridge.conftest import ISSUER, CertificateBook, Holder, SettableClock, fixture_json, fixture_text
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.config import WalletConfig
from wallet_bridge.issuance import IssuableDocument, parse_credential_request, subject_pseudonym
from wallet_bridge.metadata import authorization_server_metadata, credential_issuer_metadata
from wallet_bridge.oauth_errors import OAuthError
from wallet_bridge.proofs import check_proof_jwt
from wallet_bridge.tables import issued_credentials, offers, status_entries

GRANT = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
CONFIG_ID = "ResidentRegistrationCopyCredential"


def make_offer(bridge: WalletBridge, key: str = "confirm-1", **kw):
    args = dict(
        citizen_id="citizen-0001",
        wallet_id="wallet-0001",
        certificate_id="cert-0001-rrc",
        doc_type="resident-registration-copy",
        idempotency_key=key,
    )
    return bridge.offers.create_offer(**{**args, **kw})


def code_of(offer) -> str:
    return offer.credential_offer["grants"][GRANT]["pre-authorized_code"]


def token_request(offer, tx_code: str | None = "use-offer", **extra) -> dict:
    form = {"grant_type": GRANT, "pre-authorized_code": code_of(offer), **extra}
    if tx_code == "use-offer":
        form["tx_code"] = offer.tx_code
    elif tx_code is not None:
        form["tx_code"] = tx_code
    return form


def access_token(bridge: WalletBridge, offer) -> str:
    return bridge.offers.exchange_token(token_request(offer), "127.0.0.1")["access_token"]


def oauth_error(call, *args, **kwargs) -> OAuthError:
    with pytest.raises(OAuthError) as error:
        call(*args, **kwargs)
    return error.value


def wrong_code(offer) -> str:
    return "0" * len(offer.tx_code) if offer.tx_code != "0" * len(offer.tx_code) else "1" * len(offer.tx_code)


# --- offers ------------------------------------------------------------------------------------------


def test_offer_is_an_oid4vci_credential_offer(bridge: WalletBridge, clock: SettableClock) -> None:
    offer = make_offer(bridge)
    body = offer.credential_offer
    assert body["credential_issuer"] == ISSUER
    assert body["credential_configuration_ids"] == [CONFIG_ID]
    grant = body["grants"][GRANT]
    assert len(grant["pre-authorized_code"]) >= 40
    assert grant["tx_code"]["input_mode"] == "numeric" and grant["tx_code"]["length"] == 6
    assert offer.tx_code.isdigit() and len(offer.tx_code) == 6
    assert offer.expires_at == clock.now + timedelta(minutes=10)
    assert set(body) == set(fixture_json("oid4vci/credential_offer_pre-authz_code.json"))


def test_tx_codes_are_random_digits_of_the_configured_length(db, certificates, clock, tmp_path) -> None:
    config = WalletConfig(issuer=ISSUER, data_dir=tmp_path / "d", secret_key=b"s", tx_code_length=4)
    bridge = WalletBridge(db, config, certificates, clock)
    codes = [make_offer(bridge, key=f"k{i}").tx_code for i in range(40)]
    assert all(len(c) == 4 and c.isdigit() for c in codes)
    assert len(set(codes)) > 20
    with pytest.raises(ValueError):
        WalletConfig(issuer=ISSUER, data_dir=tmp_path, secret_key=b"s", tx_code_length=3)


def test_secrets_are_not_stored_in_the_clear(bridge: WalletBridge) -> None:
    offer = make_offer(bridge)
    token = access_token(bridge, offer)
    with bridge.db.read() as conn:
        row = dict(conn.execute(select(offers)).mappings().one())
    stored = " ".join(str(v) for v in row.values())
    for secret in (code_of(offer), offer.tx_code, token):
        assert secret not in stored


def test_retried_confirmation_returns_the_same_offer(bridge: WalletBridge) -> None:
    first = make_offer(bridge, key="session-1:confirm")
    again = make_offer(bridge, key="session-1:confirm")
    assert first.is_new and not again.is_new
    assert (again.offer_id, again.tx_code, again.credential_offer) == (
        first.offer_id,
        first.tx_code,
        first.credential_offer,
    )
    assert len(bridge.offers.pending_for_wallet("wallet-0001")) == 1


def test_unknown_document_type_cannot_be_offered(bridge: WalletBridge) -> None:
    with pytest.raises(ValueError, match="cannot be sent"):
        make_offer(bridge, doc_type="passport")


def test_mailbox_lists_pending_offers_only(bridge: WalletBridge, clock: SettableClock) -> None:
    first = make_offer(bridge, key="a")
    clock.advance(minutes=1)
    second = make_offer(bridge, key="b", certificate_id="cert-0001-vac", doc_type="vaccination-certificate")
    make_offer(bridge, key="c", wallet_id="wallet-0002")
    mailbox = bridge.offers.pending_for_wallet("wallet-0001")
    assert [m["offer_id"] for m in mailbox] == [first.offer_id, second.offer_id]
    assert mailbox[0]["credential_offer"] == first.credential_offer
    access_token(bridge, first)  # redeemed: leaves the mailbox
    assert [m["offer_id"] for m in bridge.offers.pending_for_wallet("wallet-0001")] == [second.offer_id]
    clock.advance(minutes=10)  # expired: leaves the mailbox
    assert bridge.offers.pending_for_wallet("wallet-0001") == []


# --- token endpoint ----------------------------------------------------------------------------------


def test_token_response(bridge: WalletBridge) -> None:
    response = bridge.offers.exchange_token(token_request(make_offer(bridge)), "127.0.0.1")
    assert response["token_type"] == "Bearer" and response["expires_in"] == 300
    assert len(response["access_token"]) >= 40


@pytest.mark.parametrize(
    "form, error",
    [
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({"grant_type": GRANT}, "invalid_request"),
        ({"grant_type": GRANT, "pre-authorized_code": "not-a-code", "tx_code": "123456"}, "invalid_grant"),
        ({"grant_type": GRANT, "pre-authorized_code": "x" * 500, "tx_code": "123456"}, "invalid_grant"),
    ],
)
def test_malformed_token_requests(bridge: WalletBridge, form: dict, error: str) -> None:
    assert oauth_error(bridge.offers.exchange_token, form, "127.0.0.1").error == error


def test_missing_tx_code_is_invalid_request(bridge: WalletBridge) -> None:
    offer = make_offer(bridge)
    failure = oauth_error(bridge.offers.exchange_token, token_request(offer, tx_code=None), "127.0.0.1")
    assert (failure.error, failure.status) == ("invalid_request", 400)
    assert access_token(bridge, offer)  # a missing code is not a wrong guess: the offer stays usable


def test_wrong_tx_code_is_invalid_grant_and_the_code_burns_after_five(bridge: WalletBridge) -> None:
    offer = make_offer(bridge)
    for attempt in range(4):
        failure = oauth_error(
            bridge.offers.exchange_token, token_request(offer, wrong_code(offer)), f"10.0.0.{attempt}"
        )
        assert failure.error == "invalid_grant" and failure.description == "wrong tx_code"
    burnt = oauth_error(bridge.offers.exchange_token, token_request(offer, wrong_code(offer)), "10.0.0.9")
    assert burnt.error == "invalid_grant" and "too many" in burnt.description
    # Now even the right code is refused, and the offer has left the mailbox.
    assert (
        oauth_error(bridge.offers.exchange_token, token_request(offer), "10.0.0.10").error == "invalid_grant"
    )
    assert bridge.offers.pending_for_wallet("wallet-0001") == []


def test_non_string_tx_code_is_a_wrong_guess(bridge: WalletBridge) -> None:
    offer = make_offer(bridge)
    form = {**token_request(offer), "tx_code": ["123456"]}
    assert oauth_error(bridge.offers.exchange_token, form, "127.0.0.1").error == "invalid_grant"


def test_code_is_single_use(bridge: WalletBridge) -> None:
    offer = make_offer(bridge)
    access_token(bridge, offer)
    reused = oauth_error(bridge.offers.exchange_token, token_request(offer), "127.0.0.1")
    assert reused.error == "invalid_grant" and "already used" in reused.description


def test_expired_code_is_invalid_grant(bridge: WalletBridge, clock: SettableClock) -> None:
    offer = make_offer(bridge)
    clock.advance(minutes=10, seconds=1)
    expired = oauth_error(bridge.offers.exchange_token, token_request(offer), "127.0.0.1")
    assert expired.error == "invalid_grant" and "expired" in expired.description


def test_token_requests_are_rate_limited_per_client(bridge: WalletBridge, clock: SettableClock) -> None:
    offer = make_offer(bridge)
    for _ in range(10):
        oauth_error(
            bridge.offers.exchange_token,
            {"grant_type": GRANT, "pre-authorized_code": "guess", "tx_code": "1"},
            "203.0.113.7",
        )
    limited = oauth_error(bridge.offers.exchange_token, token_request(offer), "203.0.113.7")
    assert limited.status == 429 and limited.error == "slow_down" and int(limited.headers["Retry-After"]) > 0
    # Another client is not affected, and the limit lifts after the window.
    assert access_token(bridge, make_offer(bridge, key="other"))
    clock.advance(seconds=61)
    assert access_token(bridge, offer)


def test_error_bodies_and_headers_hold_no_secrets(bridge: WalletBridge) -> None:
    offer = make_offer(bridge)
    failure = oauth_error(bridge.offers.exchange_token, token_request(offer, wrong_code(offer)), "127.0.0.1")
    assert failure.body() == {"error": "invalid_grant", "error_description": "wrong tx_code"}
    assert failure.headers["Cache-Control"] == "no-store"
    text = str(failure.body()) + str(failure.headers)
    assert offer.tx_code not in text and code_of(offer) not in text


# --- nonces and key proofs ---------------------------------------------------------------------------


def test_nonce_is_single_use_and_expires(bridge: WalletBridge, clock: SettableClock) -> None:
    first, second = bridge.nonces.issue(), bridge.nonces.issue()
    assert first != second
    with bridge.db.transaction() as conn:
        assert bridge.nonces.consume(conn, first)
        assert not bridge.nonces.consume(conn, first)
        assert not bridge.nonces.consume(conn, "never-issued")
    clock.advance(minutes=5, seconds=1)
    with bridge.db.transaction() as conn:
        assert not bridge.nonces.consume(conn, second)


FIXTURE_AUD = "https://credential-issuer.example.com"
FIXTURE_NONCE = "LarRGSbmUPYtRYO6BQ4yn8"
FIXTURE_IAT = datetime.fromtimestamp(1701960444, UTC)


def test_spec_proof_is_accepted_with_clock_audience_and_nonce_pinned() -> None:
    proof = check_proof_jwt(
        fixture_text("oid4vci/jwt_proof.txt"), FIXTURE_AUD, FIXTURE_IAT, lambda nonce: nonce == FIXTURE_NONCE
    )
    assert proof.jwk == fixture_json("oid4vci/jwt_proof_header.json")["jwk"]


@pytest.mark.parametrize(
    "audience, now, nonce_ok, error",
    [
        (FIXTURE_AUD, FIXTURE_IAT, False, "invalid_nonce"),  # the server never issued that nonce
        (FIXTURE_AUD, datetime.now(UTC), True, "invalid_proof"),  # iat is two years old
        (FIXTURE_AUD, FIXTURE_IAT - timedelta(minutes=5), True, "invalid_proof"),  # iat is in the future
        (ISSUER, FIXTURE_IAT, True, "invalid_proof"),  # another audience
    ],
)
def test_spec_proof_is_rejected_in_a_live_flow(
    audience: str, now: datetime, nonce_ok: bool, error: str
) -> None:
    failure = oauth_error(
        check_proof_jwt, fixture_text("oid4vci/jwt_proof.txt"), audience, now, lambda _n: nonce_ok
    )
    assert failure.error == error


def test_bad_proofs(holder: Holder) -> None:
    now = datetime.now(UTC)
    fresh = lambda _n: True  # noqa: E731
    cases = {
        "typ": holder.proof(ISSUER, "n", now, typ="JWT"),
        "kid": holder.proof(ISSUER, "n", now, kid="did:example:1#k"),
        "private": holder.proof(ISSUER, "n", now, jwk={**holder.jwk, "d": "AAAA"}),
        "other key": holder.proof(ISSUER, "n", now, jwk=Holder().jwk),
        "no nonce": holder.proof(ISSUER, None, now),
        "not a string": 42,
        "truncated": holder.proof(ISSUER, "n", now).rsplit(".", 1)[0],
    }
    for name, proof in cases.items():
        failure = oauth_error(check_proof_jwt, proof, ISSUER, now, fresh)
        assert failure.error == "invalid_proof", name
    # A proof whose nonce checks out is accepted, and the nonce check comes last.
    calls = []
    check_proof_jwt(holder.proof(ISSUER, "n", now), ISSUER, now, lambda n: calls.append(n) or True)
    assert calls == ["n"]
    oauth_error(check_proof_jwt, cases["other key"], ISSUER, now, lambda n: calls.append(n) or True)
    assert calls == ["n"]


# --- credential endpoint -----------------------------------------------------------------------------


def credential_request(bridge: WalletBridge, holder: Holder, **body) -> dict:
    proof = holder.proof(ISSUER, bridge.nonces.issue(), bridge.clock())
    return {"credential_configuration_id": CONFIG_ID, "proofs": {"jwt": [proof]}, **body}


def test_credential_is_issued_bound_to_the_proof_key(
    bridge: WalletBridge, holder: Holder, clock: SettableClock
) -> None:
    offer = make_offer(bridge)
    response = bridge.issuance.handle(
        f"Bearer {access_token(bridge, offer)}", credential_request(bridge, holder)
    )
    token = response["credentials"][0]["credential"]
    jws = parse_compact(token)
    assert jws.header["typ"] == "vc+jwt" and jws.header["cty"] == "vc" and jws.header["alg"] == "ES256"
    assert jws.header["kid"] == bridge.keyring.active_key().kid
    claims = jws.claims()
    assert claims["cnf"]["jwk"] == holder.jwk
    assert claims["iss"] == claims["issuer"] == ISSUER
    assert claims["type"] == ["VerifiableCredential", CONFIG_ID]
    assert claims["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        f"{ISSUER}/contexts/minwon-v1.jsonld",
    ]
    # From the issue day (KST midnight) to the end of the record's last valid day (issued -30, valid +60).
    assert claims["validFrom"] == "2026-10-20T15:00:00Z"
    assert claims["validUntil"] == "2027-01-19T15:00:00Z"
    assert claims["exp"] == int(datetime(2027, 1, 19, 15, tzinfo=UTC).timestamp())
    subject = claims["credentialSubject"]
    assert subject["id"] == subject_pseudonym(bridge.config.secret_key, "citizen-0001")
    assert subject["id"].startswith("urn:uuid:") and "citizen-0001" not in token
    assert subject["documentName"] == {"ko": "주민등록표 등본", "en": "Resident registration copy"}
    assert subject["holderName"] == "홍길동"
    purposes = [entry["statusPurpose"] for entry in claims["credentialStatus"]]
    assert purposes == ["revocation", "suspension"]
    assert bridge.verify(token, holder.jwk).valid


def test_issuance_and_its_status_indices_are_one_transaction(
    bridge: WalletBridge, holder: Holder, certificates: CertificateBook
) -> None:
    offer = make_offer(bridge)
    token = access_token(bridge, offer)
    # Make the signing step fail after the indices were allocated: nothing of the issuance may remain.
    original = bridge.keyring.active_key
    bridge.keyring.active_key = lambda: (_ for _ in ()).throw(RuntimeError("HSM unavailable"))
    with pytest.raises(RuntimeError):
        bridge.issuance.handle(f"Bearer {token}", credential_request(bridge, holder))
    bridge.keyring.active_key = original
    with bridge.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(status_entries)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(issued_credentials)).scalar() == 0
        assert conn.execute(select(offers.c.state)).scalar() == "redeemed"
    # And the wallet can simply try again.
    assert bridge.issuance.handle(f"Bearer {token}", credential_request(bridge, holder))["credentials"]


def test_retried_credential_request_does_not_issue_twice(bridge: WalletBridge, holder: Holder) -> None:
    offer = make_offer(bridge)
    bearer = f"Bearer {access_token(bridge, offer)}"
    first = bridge.issuance.handle(bearer, credential_request(bridge, holder))
    again = bridge.issuance.handle(bearer, credential_request(bridge, holder))
    assert again == first
    with bridge.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(issued_credentials)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(status_entries)).scalar() == 2
    stolen = oauth_error(bridge.issuance.handle, bearer, credential_request(bridge, Holder()))
    assert stolen.error == "credential_request_denied"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic abc", "Bearer ", "Bearer not-a-token", "Bearer " + "x" * 300],
)
def test_credential_endpoint_needs_a_valid_access_token(
    bridge: WalletBridge, holder: Holder, authorization: str | None
) -> None:
    failure = oauth_error(bridge.issuance.handle, authorization, credential_request(bridge, holder))
    assert (failure.error, failure.status) == ("invalid_token", 401)
    assert failure.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_expired_access_token(bridge: WalletBridge, holder: Holder, clock: SettableClock) -> None:
    bearer = f"Bearer {access_token(bridge, make_offer(bridge))}"
    clock.advance(minutes=5, seconds=1)
    assert (
        oauth_error(bridge.issuance.handle, bearer, credential_request(bridge, holder)).error
        == "invalid_token"
    )


@pytest.mark.parametrize(
    "fixture, error",
    [
        ("credential_request_configuration_id_mdoc.json", "invalid_proof"),
        ("credential_request_identifier_two_jwt_proofs.json", "invalid_proof"),
        ("credential_request_iso_mdl.json", "invalid_credential_request"),
    ],
)
def test_spec_credential_requests_are_rejected(bridge: WalletBridge, fixture: str, error: str) -> None:
    bearer = f"Bearer {access_token(bridge, make_offer(bridge))}"
    failure = oauth_error(bridge.issuance.handle, bearer, fixture_json(f"oid4vci/{fixture}"))
    assert (failure.error, failure.status) == (error, 400)


def test_request_shapes() -> None:
    ok = parse_credential_request(
        {"credential_identifier": "CivilEngineeringDegree-2023", "proofs": {"jwt": ["a"]}}
    )
    assert ok.credential_identifier == "CivilEngineeringDegree-2023" and ok.configuration_id is None
    for body, error in [
        ([], "invalid_credential_request"),
        ({"proofs": {"jwt": ["a"]}}, "invalid_credential_request"),
        (
            {"credential_configuration_id": "A", "credential_identifier": "B", "proofs": {"jwt": ["a"]}},
            "invalid_credential_request",
        ),
        ({"credential_configuration_id": 5, "proofs": {"jwt": ["a"]}}, "invalid_credential_request"),
        (
            {"credential_configuration_id": "A", "proof": {"proof_type": "jwt", "jwt": "a"}},
            "invalid_credential_request",
        ),
        ({"credential_configuration_id": "A"}, "invalid_proof"),
        ({"credential_configuration_id": "A", "proofs": {"jwt": []}}, "invalid_proof"),
        ({"credential_configuration_id": "A", "proofs": {"ldp_vp": [{}]}}, "invalid_proof"),
        (
            {"credential_configuration_id": "A", "proofs": {"jwt": ["a"], "attestation": ["b"]}},
            "invalid_proof",
        ),
        (
            {
                "credential_configuration_id": "A",
                "proofs": {"jwt": ["a"]},
                "credential_response_encryption": {"enc": "A128GCM"},
            },
            "invalid_encryption_parameters",
        ),
    ]:
        assert oauth_error(parse_credential_request, body).error == error, body


def test_stale_or_unknown_nonce_is_invalid_nonce(bridge: WalletBridge, holder: Holder) -> None:
    bearer = f"Bearer {access_token(bridge, make_offer(bridge))}"
    body = {
        "credential_configuration_id": CONFIG_ID,
        "proofs": {"jwt": [holder.proof(ISSUER, "made-up-nonce", bridge.clock())]},
    }
    assert oauth_error(bridge.issuance.handle, bearer, body).error == "invalid_nonce"
    nonce = bridge.nonces.issue()
    used = {
        "credential_configuration_id": CONFIG_ID,
        "proofs": {"jwt": [holder.proof(ISSUER, nonce, bridge.clock())]},
    }
    bridge.issuance.handle(bearer, used)
    replay = {**used, "proofs": {"jwt": [holder.proof(ISSUER, nonce, bridge.clock())]}}
    assert oauth_error(bridge.issuance.handle, bearer, replay).error == "invalid_nonce"


def test_wrong_configuration_identifier_and_batch(bridge: WalletBridge, holder: Holder) -> None:
    bearer = f"Bearer {access_token(bridge, make_offer(bridge))}"
    other = credential_request(bridge, holder, credential_configuration_id="VaccinationCertificateCredential")
    assert oauth_error(bridge.issuance.handle, bearer, other).error == "unknown_credential_configuration"
    by_identifier = {"credential_identifier": "x", "proofs": credential_request(bridge, holder)["proofs"]}
    assert oauth_error(bridge.issuance.handle, bearer, by_identifier).error == "unknown_credential_identifier"
    two = {
        "credential_configuration_id": CONFIG_ID,
        "proofs": {
            "jwt": [
                holder.proof(ISSUER, bridge.nonces.issue(), bridge.clock()),
                holder.proof(ISSUER, bridge.nonces.issue(), bridge.clock()),
            ]
        },
    }
    assert oauth_error(bridge.issuance.handle, bearer, two).error == "invalid_credential_request"


@pytest.mark.parametrize("status", ["revoked", "suspended", "expired", "in_progress"])
def test_document_that_is_no_longer_issued_is_denied(
    bridge: WalletBridge, holder: Holder, certificates: CertificateBook, status: str
) -> None:
    bearer = f"Bearer {access_token(bridge, make_offer(bridge))}"
    current = certificates("citizen-0001", "cert-0001-rrc")
    certificates.add(
        "citizen-0001",
        IssuableDocument(
            current.certificate_id,
            current.doc_type,
            status,
            current.issued_on,
            current.valid_until,
            current.holder_name,
        ),
    )
    failure = oauth_error(bridge.issuance.handle, bearer, credential_request(bridge, holder))
    assert failure.error == "credential_request_denied" and status in failure.description


def test_document_without_an_end_date_gets_the_type_default(bridge: WalletBridge, holder: Holder) -> None:
    offer = make_offer(bridge, certificate_id="cert-0001-vac", doc_type="vaccination-certificate")
    body = credential_request(bridge, holder, credential_configuration_id="VaccinationCertificateCredential")
    token = bridge.issuance.handle(f"Bearer {access_token(bridge, offer)}", body)["credentials"][0][
        "credential"
    ]
    claims = parse_compact(token).claims()
    assert claims["validFrom"] == "2026-04-30T15:00:00Z"
    assert claims["validUntil"] == "2027-04-30T15:00:00Z"  # 365 days


# --- metadata ----------------------------------------------------------------------------------------


def test_issuer_metadata(config: WalletConfig) -> None:
    metadata = credential_issuer_metadata(config)
    assert metadata["credential_issuer"] == ISSUER
    assert metadata["credential_endpoint"] == f"{ISSUER}/oid4vci/credential"
    assert metadata["nonce_endpoint"] == f"{ISSUER}/oid4vci/nonce"
    configuration = metadata["credential_configurations_supported"][CONFIG_ID]
    assert configuration["format"] == "vc+jwt"
    assert configuration["cryptographic_binding_methods_supported"] == ["jwk"]
    assert configuration["proof_types_supported"]["jwt"]["proof_signing_alg_values_supported"] == ["ES256"]
    # The seven documents, and the mobile ID as an SD-JWT VC (issue 16), with the keys the spec's example has.
    assert len(metadata["credential_configurations_supported"]) == 8
    mobile_id = metadata["credential_configurations_supported"]["MobileIdCredential"]
    assert mobile_id["format"] == "dc+sd-jwt" and mobile_id["vct"] == f"{ISSUER}/vct/mobile-id"
    example = fixture_json("oid4vci/credential_issuer_metadata_sd_jwt_long.json")[
        "credential_configurations_supported"]["SD_JWT_VC_example_in_OpenID4VCI"]
    assert example["format"] == mobile_id["format"] and set(example) - {"proof_types_supported"} >= {"vct"}
    assert {claim["path"][0] for claim in mobile_id["credential_metadata"]["claims"]} == {
        "name", "birthdate", "citizen_ref"}
    spec = fixture_json("oid4vci/credential_issuer_metadata_sd_jwt_long.json")
    shared = set(spec["credential_configurations_supported"]["SD_JWT_VC_example_in_OpenID4VCI"]) & set(
        configuration
    )
    assert {"format", "scope", "proof_types_supported", "credential_metadata"} <= shared
    server = authorization_server_metadata(config)
    assert server["issuer"] == ISSUER and server["token_endpoint"] == f"{ISSUER}/oid4vci/token"
    assert server["grant_types_supported"] == [GRANT]
    assert server["pre-authorized_grant_anonymous_access_supported"] is True
