"""The two kinds of speaker and the wallets that the mobile-ID linking tests share (issue 16); the live app and the
demo wallet are fixtures in conftest.py (`mobile_id_app`, `demo_wallet`)."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import requests

from services import Services
from tests.conftest import ROOT
from tests.wallet_bridge.conftest import KAKAO_TOKEN
from wallet_bridge.holder import ReferenceHolder

SPEAKER_FIXTURES = ROOT / "tests" / "fixtures" / "speakers"


SSML_DIGITS = re.compile(r'<say-as interpret-as="digits">(\d+)</say-as>')
SPACED_NUMBER = re.compile(r"(?:번호|number) ((?:\d ){5}\d)")


class NativeSpeaker:
    """A newly registered device on /v1/converse: its own speaker user, unlinked. Registered over HTTP, or (with
    `state`, for tests that need more devices than an address may register a minute) with `app.py device-token`'s
    call."""

    def __init__(self, url: str, locale: str, state: Services | None = None) -> None:
        self.url, self.locale = url, locale
        if state is None:
            registration = requests.post(f"{url}/v1/devices", timeout=30)
            assert registration.status_code == 201, registration.text
            self.user_id = registration.json()["user_id"]
            self.token = registration.json()["device_token"]
        else:
            self.user_id = "speaker-m-" + secrets.token_hex(6)
            self.token = state.devices.issue(self.user_id)
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




def new_wallet_citizen(state: Services, url: str, store: Path, name: str = "김민원", locale: str = "ko-KR",
                       birth_date: str = "1970-01-02") -> tuple[str, ReferenceHolder]:
    """A new citizen with a birth date and a wallet, whose holder has redeemed a fresh mobile ID over HTTP."""
    citizen_id = "citizen-m-" + secrets.token_hex(4)
    state.accounts.create_citizen(citizen_id, name, locale, "2580", birth_date=birth_date)
    wallet_id, token = "wallet-m-" + secrets.token_hex(4), secrets.token_urlsafe(16)
    state.wallets.register(wallet_id, citizen_id, token)
    offer = state.wallet.offer_mobile_id(citizen_id, f"test:{citizen_id}")
    holder = ReferenceHolder(url, wallet_id, token, store)
    [stored] = holder.run(lambda _entry: offer.tx_code)
    assert stored.verification.valid
    return citizen_id, holder
