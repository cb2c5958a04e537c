"""Linking a speaker by presenting the mobile ID, end to end over real HTTP (issue 16).

The speaker asks to be linked (native API and Kakao, Korean and English) → it reads out a pairing number → the
reference holder presents the mobile ID for that number (OpenID4VP, direct_post) → the speaker is linked → its
next turn says to whom → a personal request works after the PIN.

This app has its own live server because the issuer identifier (and so the response URI of the request object)
must be the address wallets reach it at.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from app import create_app
from services import Services
from settings import Settings
from tests.conftest import ROOT
from wallet_bridge.holder import HolderError, ReferenceHolder
from wallet_bridge.mobile_id import MOBILE_ID_CONFIGURATION, MOBILE_ID_FORMAT
from wallet_bridge.sd_jwt import split_sd_jwt

KAKAO_TOKEN = "kakao-e2e-" + secrets.token_hex(8)
SPEAKER_FIXTURES = ROOT / "tests" / "fixtures" / "speakers"
DEMO_MOBILE_ID_TX_CODE = "135790"  # data/demo.yaml: published with the demo data
SSML_DIGITS = re.compile(r'<say-as interpret-as="digits">(\d+)</say-as>')
SPACED_NUMBER = re.compile(r"(?:번호|number) ((?:\d ){5}\d)")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Services]]:
    data_dir = tmp_path_factory.mktemp("mobile-id-data")
    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(data_dir), "MINWON_ISSUER_URL": url,
                                  "MINWON_KAKAO_TOKEN": KAKAO_TOKEN}, load_models=False,
                                 rate_limit_per_minute=100_000)
    app = create_app(settings)
    server.app = app  # the port had to exist before the app could know its own issuer URL
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url, app.extensions["minwon"]
    server.shutdown()
    app.extensions["minwon"].wallet.outbox_worker.stop()


@pytest.fixture(scope="module")
def demo_wallet(live, tmp_path_factory) -> ReferenceHolder:
    """wallet-0001 with the mobile ID the demo seeding offered, redeemed with the published tx_code."""
    url, _ = live
    holder = ReferenceHolder(url, "wallet-0001", "demo-wallet-token-0001", tmp_path_factory.mktemp("demo-wallet"))
    [entry] = holder.mailbox()
    assert entry["credential_offer"]["credential_configuration_ids"] == [MOBILE_ID_CONFIGURATION]
    [stored] = holder.run(lambda _entry: DEMO_MOBILE_ID_TX_CODE)
    assert stored.verification.valid, stored.verification.failed
    assert stored.verification.status == {"revocation": 0, "suspension": 0}
    return holder


class NativeSpeaker:
    """A newly registered device on /v1/converse: its own speaker user, unlinked."""

    def __init__(self, url: str, locale: str) -> None:
        registration = requests.post(f"{url}/v1/devices", timeout=30)
        assert registration.status_code == 201, registration.text
        self.url, self.locale = url, locale
        self.user_id = registration.json()["user_id"]
        self.token = registration.json()["device_token"]
        self.session_id: str | None = None

    def say(self, text: str) -> dict:
        body = {"text": text, "locale": self.locale, **({"session_id": self.session_id} if self.session_id else {})}
        response = requests.post(f"{self.url}/v1/converse", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200, response.text
        reply = response.json()
        self.session_id = reply["session_id"]
        return {"speech": reply["speech"], "ssml": reply["ssml"]}

    def pairing_number(self, reply: dict) -> str:
        [number] = set(SSML_DIGITS.findall(reply["ssml"]))
        return number


class KakaoSpeaker:
    """A Kakao i Open Builder user: the bot's skill requests, with the shared skill token."""

    def __init__(self, url: str, locale: str) -> None:
        self.url = url
        self.lang = "ko" if locale.startswith("ko") else "en"
        self.bot_user = "e2e-" + secrets.token_hex(6)
        self.user_id = f"kakao:{self.bot_user}"

    def say(self, text: str) -> dict:
        payload = json.loads((SPEAKER_FIXTURES / "kakao" / "skill_request_keyword_search.json").read_text("utf-8"))
        payload["userRequest"].update(utterance=text, lang=self.lang)
        payload["userRequest"]["user"]["id"] = self.bot_user
        payload["userRequest"]["block"]["name"] = "민원 폴백 블록"
        response = requests.post(f"{self.url}/kakao", json=payload, timeout=30, headers={"X-Skill-Token": KAKAO_TOKEN})
        assert response.status_code == 200, response.text
        speech = " ".join(o["simpleText"]["text"] for o in response.json()["template"]["outputs"])
        return {"speech": speech, "ssml": ""}

    def pairing_number(self, reply: dict) -> str:
        # Kakao shows text, not SSML: the number is spaced out digit by digit.
        return SPACED_NUMBER.search(reply["speech"]).group(1).replace(" ", "")


LINK_PHRASES = {"ko-KR": ("계정 연결해 줘", "내 증명서 상태 알려줘", "일 삼 오 칠"),
                "en-US": ("link my account", "what's the status of my certificates", "1 3 5 7")}


@pytest.mark.parametrize("channel", [NativeSpeaker, KakaoSpeaker], ids=["native", "kakao"])
@pytest.mark.parametrize("locale", ["ko-KR", "en-US"])
def test_a_speaker_is_linked_by_presenting_the_mobile_id(live, demo_wallet, channel, locale):
    url, state = live
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

    told = speaker.say(personal)["speech"]
    assert told.startswith("홍길동 (demo) 님으로 연결됐어요." if locale == "ko-KR"
                           else "This speaker is now linked to 홍길동 (demo).")
    assert ("비밀번호" in told) if locale == "ko-KR" else ("PIN" in told)
    after_pin = speaker.say(pin)["speech"]
    assert "연결됐어요" not in after_pin and "now linked" not in after_pin  # told once
    # citizen-0001's certificates in data/demo.yaml: five of them, the PIN having been right.
    assert after_pin.startswith("증명서 다섯 건" if locale == "ko-KR" else "Of your five certificates"), after_pin


def test_the_number_is_single_use_and_the_presentation_holds_only_the_asked_claims(live, demo_wallet):
    url, _ = live
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


def test_the_holder_command_line_presents(live, demo_wallet):
    url, state = live
    speaker = NativeSpeaker(url, "en-US")
    number = speaker.pairing_number(speaker.say("link my account"))
    result = subprocess.run(
        [sys.executable, "-m", "wallet_bridge.holder", "--wallet", "wallet-0001", "--token", "demo-wallet-token-0001",
         "--url", url, "--store", str(Path(demo_wallet.store)), "present", number],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "citizen_ref, name" in result.stderr and json.loads(result.stdout) == {"presented": True}
    assert state.accounts.citizen_for_user(speaker.user_id).id == "citizen-0001"


def test_the_old_link_code_still_links(live):
    url, state = live
    speaker = NativeSpeaker(url, "ko-KR")
    code = state.accounts.issue_link_code("citizen-0002")
    assert "연결되었어요" in speaker.say(f"연결 코드 {code}")["speech"]
    assert state.accounts.citizen_for_user(speaker.user_id).id == "citizen-0002"
