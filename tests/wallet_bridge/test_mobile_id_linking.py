"""Linking a speaker by presenting the mobile ID, end to end over real HTTP (issue 16).

The speaker asks to be linked (native API and Kakao, Korean and English) → it reads out a pairing number → the
reference holder presents the mobile ID for that number (OpenID4VP, direct_post) → the speaker is linked → its
next turn says to whom → a personal request works after the PIN.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from skills.sessions import dialog_sessions
from tests.conftest import ROOT
from tests.wallet_bridge.mobile_id_support import KakaoSpeaker, NativeSpeaker
from wallet_bridge.holder import HolderError, PresentationRequest, ReferenceHolder
from wallet_bridge.mobile_id import MOBILE_ID_FORMAT
from wallet_bridge.sd_jwt import split_sd_jwt

LINK_PHRASES = {"ko-KR": ("계정 연결해 줘", "내 증명서 상태 알려줘", "일 삼 오 칠"),
                "en-US": ("link my account", "what's the status of my certificates", "1 3 5 7")}


@pytest.mark.parametrize("channel", [NativeSpeaker, KakaoSpeaker], ids=["native", "kakao"])
@pytest.mark.parametrize("locale", ["ko-KR", "en-US"])
def test_a_speaker_is_linked_by_presenting_the_mobile_id(mobile_id_app, demo_wallet, channel, locale):
    url, state = mobile_id_app
    speaker = channel(url, locale)
    ask, personal, pin = LINK_PHRASES[locale]

    # Before: a personal request gets the linking instructions, which name both ways.
    before = speaker.say(personal)["speech"]
    assert ("계정 연결해 줘" in before) if locale == "ko-KR" else ("link my account" in before)

    reply = speaker.say(ask)
    number = speaker.pairing_number(reply)
    assert len(number) == 6
    if locale == "ko-KR":
        assert "지갑 앱에서 연결 번호" in reply["speech"]
    if channel is NativeSpeaker:
        assert f'<say-as interpret-as="digits">{number}</say-as>' in reply["ssml"]

    shown = []
    demo_wallet.present(number, shown.append)
    assert shown[0].claims == ["citizen_ref", "name"]  # only what linking needs: never the birth date
    assert state.accounts.citizen_for_user(speaker.user_id).id == "citizen-0001"

    if channel is NativeSpeaker:
        # The link ended the user's sessions: the session the number was read out in is gone.
        with state.db.read() as conn:
            assert conn.execute(select(dialog_sessions.c.id).where(
                dialog_sessions.c.user_id == speaker.user_id)).first() is None
    told = speaker.say(personal)["speech"]
    assert told.startswith("홍길동 (demo) 님으로 연결됐어요." if locale == "ko-KR"
                           else "This speaker is now linked to 홍길동 (demo).")
    assert ("비밀번호" in told) if locale == "ko-KR" else ("PIN" in told)
    after_pin = speaker.say(pin)["speech"]
    assert "연결됐어요" not in after_pin and "now linked" not in after_pin  # told once
    # citizen-0001's certificates in data/demo.yaml: five of them, the PIN having been right.
    assert after_pin.startswith("증명서 다섯 건" if locale == "ko-KR" else "Of your five certificates"), after_pin


def test_the_number_is_single_use_and_the_presentation_holds_only_the_asked_claims(mobile_id_app, demo_wallet):
    url, _ = mobile_id_app
    speaker = NativeSpeaker(url, "ko-KR")
    number = speaker.pairing_number(speaker.say("계정 연결해 줘"))
    request = demo_wallet.fetch_request(number)
    presentation = demo_wallet.presentation(request, demo_wallet.find_credential(request))
    parsed = split_sd_jwt(presentation)
    assert parsed.issuer_jwt.header["typ"] == MOBILE_ID_FORMAT and len(parsed.disclosures) == 2
    assert "1985-03-15" not in json.dumps([split_sd_jwt(presentation).disclosures])
    with pytest.raises(HolderError, match="pairing: HTTP 400 invalid_request"):
        demo_wallet.fetch_request(number)  # spent when it was resolved
    assert demo_wallet.post_presentation(request, presentation).status_code == 200


def test_the_holder_command_line_presents(mobile_id_app, demo_wallet):
    url, state = mobile_id_app
    speaker = NativeSpeaker(url, "en-US")
    number = speaker.pairing_number(speaker.say("link my account"))
    result = subprocess.run(
        [sys.executable, "-m", "wallet_bridge.holder", "--wallet", "wallet-0001", "--token", "demo-wallet-token-0001",
         "--url", url, "--store", str(Path(demo_wallet.store)), "present", number],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "citizen_ref, name" in result.stderr and json.loads(result.stdout) == {"presented": True}
    assert state.accounts.citizen_for_user(speaker.user_id).id == "citizen-0001"


def test_the_old_link_code_still_links(mobile_id_app):
    url, state = mobile_id_app
    speaker = NativeSpeaker(url, "ko-KR")
    code = state.accounts.issue_link_code("citizen-0002")
    assert "연결되었어요" in speaker.say(f"연결 코드 {code}")["speech"]
    assert state.accounts.citizen_for_user(speaker.user_id).id == "citizen-0002"


def test_agencies_verify_a_presentation_over_http(mobile_id_app, demo_wallet):
    """POST /v1/presentations/verify: the disclosed claims when every check passes, the failed check otherwise."""
    url, state = mobile_id_app
    credential = next(p.read_text().strip() for p in (demo_wallet.store / "credentials").glob("*.jwt"))
    request = PresentationRequest(client_id="agency-42", response_uri="", nonce="n-" + secrets.token_hex(8),
                                  state="", credential_query_id="id", format="dc+sd-jwt", vct_values=[],
                                  claims=["name", "birthdate"])
    presentation = demo_wallet.presentation(request, credential)
    body = {"presentation": presentation, "nonce": request.nonce, "audience": "agency-42"}
    answer = requests.post(f"{url}/v1/presentations/verify", json=body, timeout=30).json()
    assert answer["valid"] is True and answer["failed_check"] is None
    assert answer["disclosed"] == {"name": "홍길동 (demo)", "birthdate": "1985-03-15"}  # and not citizen_ref
    assert answer["status"] == {"revocation": 0, "suspension": 0}
    for changed, failed in (({"nonce": "another"}, "holder_binding"), ({"audience": "agency-7"}, "holder_binding"),
                            ({"presentation": presentation.rsplit("~", 1)[0] + "~"}, "holder_binding")):
        refused = requests.post(f"{url}/v1/presentations/verify", json={**body, **changed}, timeout=30).json()
        assert refused["valid"] is False and refused["failed_check"] == failed
    for bad in ({}, {**body, "nonce": ""}, {**body, "presentation": "not-an-sd-jwt"}, {**body, "audience": 7}):
        response = requests.post(f"{url}/v1/presentations/verify", json=bad, timeout=30)
        assert response.status_code == 400 and "code" in response.json()["error"]


def test_the_mobile_id_offer_command_prints_a_tx_code_the_holder_redeems(mobile_id_app, demo_wallet, tmp_path):
    """(`demo_wallet` has taken the seeded offer: the mailbox holds only the one the command makes.)"""
    url, state = mobile_id_app
    env = {**os.environ, "MINWON_DEMO": "1", "MINWON_DATA_DIR": str(state.settings.data_dir),
           "MINWON_ISSUER_URL": url}
    made = subprocess.run([sys.executable, "app.py", "mobile-id-offer", "citizen-0001"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    offer = json.loads(made.stdout)
    assert len(offer["tx_code"]) == 6 and offer["tx_code"] not in made.stderr
    holder = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path / "wallet")
    [stored] = holder.run(lambda entry: offer["tx_code"])
    assert stored.offer_id == offer["offer_id"] and stored.verification.valid
    no_wallet = subprocess.run([sys.executable, "app.py", "mobile-id-offer", "citizen-0002"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=120)
    assert no_wallet.returncode == 1 and "no registered wallet" in no_wallet.stderr


def test_the_pairing_number_is_never_logged(mobile_id_app, demo_wallet, caplog):
    url, _ = mobile_id_app
    speaker = NativeSpeaker(url, "ko-KR")
    with caplog.at_level(logging.DEBUG):
        number = speaker.pairing_number(speaker.say("계정 연결해 줘"))
        demo_wallet.present(number)
        told = speaker.say("도움말")["speech"]
    assert told.startswith("홍길동 (demo) 님으로 연결됐어요.")
    assert number not in caplog.text and "홍길동" not in caplog.text and "citizen_ref" not in caplog.text
