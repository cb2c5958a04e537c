"""Bad input and attacks on linking by the mobile ID (issue 16): each one is refused with an OpenID4VP error,
nothing is linked, and the speaker's next turn says it could not link. Pairing numbers that are used twice,
guessed or expired are refused, and wrong ones are counted per address and across the service."""

from __future__ import annotations

import dataclasses
import secrets
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, update

from domain.citizens import speaker_links
from domain.clock import utc_now
from domain.crypto import b64url_decode, sign_compact
from tests.wallet_bridge.conftest import SettableClock
from tests.wallet_bridge.mobile_id_support import NativeSpeaker, new_wallet_citizen
from wallet_bridge.holder import ReferenceHolder
from wallet_bridge.mobile_id import MOBILE_ID_DOC_TYPE, mobile_id_vct, sign_mobile_id
from wallet_bridge.oauth_errors import OAuthError
from wallet_bridge.presentation import SpeakerPairings
from wallet_bridge.sd_jwt import (
    add_key_binding,
    issue_sd_jwt,
    make_disclosure,
    sd_hash,
    select_disclosures,
    split_sd_jwt,
)
from wallet_bridge.tables import issued_credentials, pairings

COULD_NOT_LINK = "지갑으로 계정을 연결하지 못했어요."


def refused(response, failed_check: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] in ("access_denied", "invalid_request")
    assert body["error_description"].startswith(f"{failed_check}:"), body


def assert_not_linked_and_told(state, speaker: NativeSpeaker) -> None:
    assert state.accounts.citizen_for_user(speaker.user_id) is None
    assert speaker.say("도움말")["speech"].startswith(COULD_NOT_LINK)
    assert not speaker.say("도움말")["speech"].startswith(COULD_NOT_LINK)  # said once


def open_request(url: str, holder: ReferenceHolder, state):
    speaker = NativeSpeaker(url, "ko-KR", state)
    request = holder.fetch_request(speaker.pairing_number(speaker.say("계정 연결해 줘")))
    return speaker, request


@pytest.mark.parametrize("wrong", ["nonce", "audience", "iat_expired", "iat_future"])
def test_a_key_binding_for_another_request_or_time_is_refused(mobile_id_app, demo_wallet, wrong):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    credential = demo_wallet.find_credential(request)
    now = int(time.time())
    made = {"nonce": {"nonce": secrets.token_urlsafe(24)}, "audience": {"audience": "https://verifier.example"},
            "iat_expired": {"issued_at": now - 3600}, "iat_future": {"issued_at": now + 3600}}[wrong]
    refused(demo_wallet.post_presentation(request, demo_wallet.presentation(request, credential, **made)),
            "holder_binding")
    assert_not_linked_and_told(state, speaker)


def test_a_reused_nonce_and_a_replayed_response_are_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    first, request_a = open_request(url, demo_wallet, state)
    presentation_a = demo_wallet.presentation(request_a, demo_wallet.find_credential(request_a))
    assert demo_wallet.post_presentation(request_a, presentation_a).status_code == 200
    # The same response again (a wallet that lost the answer retries): the same answer, and nothing changes —
    # no second link, no second announcement.
    with state.db.read() as conn:
        linked_at = conn.execute(select(speaker_links.c.linked_at).where(
            speaker_links.c.user_id == first.user_id)).scalar_one()
    assert demo_wallet.post_presentation(request_a, presentation_a).status_code == 200
    with state.db.read() as conn:
        assert conn.execute(select(speaker_links.c.linked_at).where(
            speaker_links.c.user_id == first.user_id)).scalar_one() == linked_at
    assert first.say("도움말")["speech"].startswith("홍길동 (demo) 님으로 연결됐어요.")
    assert not first.say("도움말")["speech"].startswith("홍길동")
    # Another presentation for the answered request is refused.
    other = demo_wallet.presentation(request_a, demo_wallet.find_credential(request_a))
    replay = demo_wallet.post_presentation(request_a, other)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_request"
    # The accepted presentation (request A's nonce) for another speaker's request B.
    second, request_b = open_request(url, demo_wallet, state)
    refused(demo_wallet.post_presentation(request_b, presentation_a), "holder_binding")
    assert state.accounts.citizen_for_user(first.user_id).id == "citizen-0001"
    assert_not_linked_and_told(state, second)


def test_a_tampered_disclosure_is_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    selected = select_disclosures(demo_wallet.find_credential(request), set(request.claims))
    parsed = split_sd_jwt(selected)
    forged = [make_disclosure("name", "김공격") if '"name"' in _decoded(d) else d for d in parsed.disclosures]
    tampered = selected.split("~", 1)[0] + "~" + "".join(d + "~" for d in forged)
    # Bound properly by the holder's own key: only the issuer's digests can tell the name was changed.
    presentation = add_key_binding(tampered, demo_wallet.key, nonce=request.nonce, audience=request.client_id,
                                   issued_at=int(time.time()))
    refused(demo_wallet.post_presentation(request, presentation), "claims")
    assert_not_linked_and_told(state, speaker)


def _decoded(disclosure: str) -> str:
    return b64url_decode(disclosure).decode("utf-8")


def test_a_presentation_without_key_binding_is_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    bare = select_disclosures(demo_wallet.find_credential(request), set(request.claims))
    refused(demo_wallet.post_presentation(request, bare), "holder_binding")
    assert_not_linked_and_told(state, speaker)


def test_a_credential_presented_with_another_wallets_key_fails_the_key_binding(mobile_id_app, demo_wallet,
                                                                                tmp_path):
    url, state = mobile_id_app
    thief = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path / "thief")
    speaker, request = open_request(url, thief, state)
    stolen = demo_wallet.find_credential(request)  # a copy of the demo wallet's mobile ID, without its key
    refused(thief.post_presentation(request, thief.presentation(request, stolen)), "holder_binding")
    assert_not_linked_and_told(state, speaker)


def test_a_credential_from_an_untrusted_issuer_is_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    foreign = ec.generate_private_key(ec.SECP256R1())
    kid = state.wallet.keyring.active_key().kid  # it even claims to be signed by the cluster's key
    now = int(time.time())
    forged = issue_sd_jwt({"typ": "dc+sd-jwt", "kid": kid},
                          {"iss": url, "iat": now, "exp": now + 3600, "vct": mobile_id_vct(url),
                           "cnf": {"jwk": demo_wallet.jwk}},
                          {"name": "홍길동 (demo)", "citizen_ref": "0" * 32}, foreign)
    refused(demo_wallet.post_presentation(request, demo_wallet.presentation(request, forged)), "signature")
    # And one that names another issuer: no key of this cluster is offered for it.
    speaker_2, request_2 = open_request(url, demo_wallet, state)
    other = issue_sd_jwt({"typ": "dc+sd-jwt", "kid": "k1"},
                         {"iss": "https://issuer.example", "iat": now, "vct": mobile_id_vct(url),
                          "cnf": {"jwk": demo_wallet.jwk}}, {"name": "x", "citizen_ref": "0" * 32}, foreign)
    refused(demo_wallet.post_presentation(request_2, demo_wallet.presentation(request_2, other)), "key")
    assert_not_linked_and_told(state, speaker)
    assert_not_linked_and_told(state, speaker_2)


@pytest.mark.parametrize("change", ["revoke", "suspend"])
def test_a_revoked_or_suspended_mobile_id_is_refused(mobile_id_app, tmp_path, change):
    url, state = mobile_id_app
    citizen_id, holder = new_wallet_citizen(state, url, tmp_path / "wallet")
    with state.db.read() as conn:
        credential_id = conn.execute(select(issued_credentials.c.id).where(
            issued_credentials.c.citizen_id == citizen_id, issued_credentials.c.doc_type == MOBILE_ID_DOC_TYPE)
        ).scalar_one()
    getattr(state.wallet.status_control, change)(credential_id)
    speaker, request = open_request(url, holder, state)
    refused(holder.post_presentation(request, holder.presentation(request, holder.find_credential(request))),
            "status")
    assert_not_linked_and_told(state, speaker)


def test_a_mobile_id_whose_citizen_does_not_exist_is_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    # Genuinely signed by the cluster, bound to this wallet's key, but its reference names no citizen here.
    orphan = sign_mobile_id(issuer=url, key=state.wallet.keyring.active_key(), holder_jwk=demo_wallet.jwk,
                            name="유령", birth_date="1999-09-09", ref=secrets.token_hex(16), status_entries=[],
                            now=utc_now())
    refused(demo_wallet.post_presentation(request, demo_wallet.presentation(request, orphan)), "citizen")
    assert_not_linked_and_told(state, speaker)


def test_a_wallet_that_declines_links_nothing(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    response = demo_wallet.http.post(request.response_uri, data={"error": "access_denied", "state": request.state},
                                     timeout=10)
    assert response.status_code == 200
    assert_not_linked_and_told(state, speaker)


def test_malformed_responses_are_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    _, request = open_request(url, demo_wallet, state)
    post = demo_wallet.http.post
    assert post(request.response_uri, data={"vp_token": "{}"}, timeout=10).json()["error"] == "invalid_request"
    assert post(request.response_uri, json={"state": request.state}, timeout=10).status_code == 400
    refused(post(request.response_uri, data={"state": request.state, "vp_token": "[1]"}, timeout=10), "format")
    # The request is closed after a refusal: a good presentation now comes too late.
    good = demo_wallet.presentation(request, demo_wallet.find_credential(request))
    assert demo_wallet.post_presentation(request, good).json()["error"] == "invalid_request"
    assert demo_wallet.http.get(f"{url}/oid4vp/requests/{'x' * 32}", timeout=10).status_code == 404


# --- pairing numbers: in-process on both backends, budgets of their own (a secret key of their own) -----------


@pytest.fixture
def own_pairings(stores):
    config = dataclasses.replace(stores.wallet.config, secret_key=secrets.token_bytes(32),
                                 pairing_failures_per_address=3, pairing_failures_total=5)
    clock = SettableClock(utc_now())
    return SpeakerPairings(stores.db, config, stores.wallet.keyring, stores.wallet.verify_presentation, clock), clock


def wrong_number(right: str) -> str:
    while (guess := f"{secrets.randbelow(10**6):06d}") == right:
        pass
    return guess


def test_a_number_works_once(own_pairings):
    pairing, _ = own_pairings
    number = pairing.start("speaker-" + secrets.token_hex(4)).number
    assert pairing.resolve(number, "198.51.100.1")["request_uri"].startswith(pairing.config.issuer)
    with pytest.raises(OAuthError) as used:
        pairing.resolve(number, "198.51.100.1")
    assert used.value.error == "invalid_request"


def test_an_expired_number_is_refused(own_pairings):
    pairing, clock = own_pairings
    number = pairing.start("speaker-" + secrets.token_hex(4)).number
    clock.advance(seconds=pairing.config.pairing_ttl_s + 1)
    with pytest.raises(OAuthError) as expired:
        pairing.resolve(number, "198.51.100.2")
    assert expired.value.error == "invalid_request"


def test_a_newer_number_replaces_the_users_earlier_one(own_pairings):
    pairing, _ = own_pairings
    user = "speaker-" + secrets.token_hex(4)
    first = pairing.start(user).number
    second = pairing.start(user).number
    with pytest.raises(OAuthError):
        pairing.resolve(first, "198.51.100.3")
    assert pairing.resolve(second, "198.51.100.3")["client_id"] == pairing.config.verifier_client_id


def test_guessing_is_limited_per_address_and_across_the_service(own_pairings):
    pairing, _ = own_pairings
    number = pairing.start("speaker-" + secrets.token_hex(4)).number
    guesser = "203.0.113.9"
    for _ in range(3):
        with pytest.raises(OAuthError) as wrong:
            pairing.resolve(wrong_number(number), guesser)
        assert wrong.value.error == "invalid_request"
    with pytest.raises(OAuthError) as throttled:
        pairing.resolve(number, guesser)  # even the right number: the address's budget is spent
    assert throttled.value.error == "slow_down" and throttled.value.status == 429
    # Two more wrong guesses from other addresses spend the service-wide budget of five.
    for address in ("203.0.113.10", "203.0.113.11"):
        with pytest.raises(OAuthError):
            pairing.resolve(wrong_number(number), address)
    with pytest.raises(OAuthError) as everyone:
        pairing.resolve(number, "203.0.113.12")
    assert everyone.value.status == 429
    # The number itself was never spent by the refusals: it was not looked at.
    with pairing.db.read() as conn:
        assert conn.execute(select(pairings.c.status).where(pairings.c.number_hash.is_not(None),
                                                            pairings.c.expires_at > pairing.clock())).first()


def test_the_number_is_stored_only_as_a_keyed_digest(own_pairings):
    pairing, _ = own_pairings
    user = "speaker-" + secrets.token_hex(4)
    number = pairing.start(user).number
    with pairing.db.read() as conn:
        row = conn.execute(select(pairings).where(pairings.c.user_id == user)).mappings().one()
    assert number not in str(dict(row)) and len(row["number_hash"]) == 64


def test_an_expired_request_refuses_the_presentation(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    good = demo_wallet.presentation(request, demo_wallet.find_credential(request))
    with state.db.transaction() as conn:  # five minutes pass
        conn.execute(update(pairings).where(pairings.c.state == request.state)
                     .values(expires_at=utc_now() - timedelta(seconds=1)))
    response = demo_wallet.post_presentation(request, good)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert_not_linked_and_told(state, speaker)


def test_a_key_binding_signed_with_the_issuer_format_but_wrong_typ_is_refused(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker, request = open_request(url, demo_wallet, state)
    selected = select_disclosures(demo_wallet.find_credential(request), set(request.claims))
    kb = sign_compact({"typ": "JWT"}, {"iat": int(time.time()), "aud": request.client_id, "nonce": request.nonce,
                                       "sd_hash": sd_hash(selected)}, demo_wallet.key)
    refused(demo_wallet.post_presentation(request, selected + kb), "holder_binding")
    assert_not_linked_and_told(state, speaker)


def test_old_pairings_are_purged(own_pairings):
    pairing, clock = own_pairings
    user = "speaker-" + secrets.token_hex(4)
    pairing.start(user)
    clock.advance(days=1, seconds=pairing.config.pairing_ttl_s + 1)
    assert pairing.purge() >= 1
    with pairing.db.read() as conn:
        assert conn.execute(select(pairings.c.id).where(pairings.c.user_id == user)).first() is None
