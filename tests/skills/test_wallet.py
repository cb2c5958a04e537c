"""The send-to-wallet voice skill over /v1/converse: slot, confirmation, PIN step-up, offer, tx_code."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain.certificates import Certificate
from domain.clock import korean_today
from wallet_bridge.tables import offers

DIGITS = re.compile(r'<say-as interpret-as="digits">(\d+)</say-as>')
TODAY = korean_today()  # the service's day (Seoul), not the test machine's


@pytest.fixture()
def citizen(services, new_citizen):
    """A linked citizen with a wallet and one certificate in each state."""

    def create(locale: str = "ko-KR", wallet: bool = True) -> tuple[str, str, str | None]:
        citizen_id, user_id = new_citizen(pin="2580", locale=locale)
        records = services.certificates
        for suffix, doc_type, state, issued, valid in (
            ("rrc", "resident-registration-copy", "issued", -30, 60),
            ("frc", "family-relation-certificate", "in_progress", None, None),
            ("hie", "health-insurance-eligibility", "issued", -95, -5),
            ("vac", "vaccination-certificate", "revoked", -100, None),
            ("bas", "basic-certificate", "suspended", -10, 80),
        ):
            records.add(Certificate(
                id=f"{citizen_id}-{suffix}", citizen_id=citizen_id, doc_type=doc_type, state=state, applied_on=None,
                issued_on=None if issued is None else TODAY + timedelta(days=issued),
                valid_until=None if valid is None else TODAY + timedelta(days=valid),
            ))
        wallet_id = None
        if wallet:
            wallet_id = "wallet-t-" + secrets.token_hex(4)
            services.wallet.wallets.register(wallet_id, citizen_id, "token-" + wallet_id)
        return citizen_id, user_id, wallet_id

    return create


def offer_count(services, citizen_id: str) -> int:
    with services.db.read() as conn:
        return conn.execute(select(func.count()).select_from(offers).where(offers.c.citizen_id == citizen_id)).scalar()


def test_whole_flow_puts_an_offer_in_the_mailbox_and_reads_the_code(services, citizen, conversation):
    citizen_id, user_id, wallet_id = citizen()
    talk = conversation(user_id)
    asked = talk.say("주민등록표 등본 지갑으로 보내줘")
    assert asked["expects"] == "confirmation" and asked["speech"] == "주민등록표 등본을 전자지갑으로 보낼까요?"
    assert offer_count(services, citizen_id) == 0
    assert talk.say("네")["expects"] == "pin"
    assert offer_count(services, citizen_id) == 0  # nothing is sent before the PIN
    done = talk.say("이 오 팔 공")
    codes = DIGITS.findall(done["ssml"])
    assert len(codes) == 2 and codes[0] == codes[1] and len(codes[0]) == 6
    code = codes[0]
    assert f"확인 코드는 {' '.join(code)}" in done["speech"]  # plain speech spaces the digits out
    assert "10분" in done["speech"] and done["display"]["body"].startswith(code)
    mailbox = services.wallet.offers.pending_for_wallet(wallet_id)
    assert len(mailbox) == 1
    assert mailbox[0]["credential_offer"]["credential_configuration_ids"] == ["ResidentRegistrationCopyCredential"]
    # The code that was read out is the offer's tx_code: it redeems the pre-authorized code.
    grant = mailbox[0]["credential_offer"]["grants"]["urn:ietf:params:oauth:grant-type:pre-authorized_code"]
    token = services.wallet.offers.exchange_token({
        "grant_type": "urn:ietf:params:oauth:grant-type:pre-authorized_code",
        "pre-authorized_code": grant["pre-authorized_code"], "tx_code": code}, "127.0.0.1")
    assert token["token_type"] == "Bearer"


def test_a_retried_confirmation_makes_one_offer(services, citizen, conversation):
    citizen_id, user_id, wallet_id = citizen()
    talk = conversation(user_id)
    talk.say("등본 지갑으로 보내줘")
    talk.say("네")
    first = talk.say("이 오 팔 공", request_id="pin-turn-1")
    again = talk.say("이 오 팔 공", request_id="pin-turn-1")
    assert again == first
    assert offer_count(services, citizen_id) == 1
    # With the PIN already given, a new request in the same session goes straight to the offer after "네".
    talk.say("등본 지갑으로 보내줘")
    confirm = talk.say("네", request_id="confirm-2")
    assert DIGITS.findall(confirm["ssml"]) and talk.say("네", request_id="confirm-2") == confirm
    assert offer_count(services, citizen_id) == 2
    assert len(services.wallet.offers.pending_for_wallet(wallet_id)) == 2


def test_missing_document_is_asked_for(services, citizen, conversation):
    citizen_id, user_id, _ = citizen()
    talk = conversation(user_id)
    asked = talk.say("지갑으로 보내줘")
    assert asked["expects"] == "slot" and "어떤 서류" in asked["speech"]
    assert talk.say("등본이요")["speech"] == "주민등록표 등본을 전자지갑으로 보낼까요?"


def test_saying_no_sends_nothing(services, citizen, conversation):
    citizen_id, user_id, _ = citizen()
    talk = conversation(user_id)
    talk.say("등본 지갑으로 보내줘")
    assert "바꾸지 않았어요" in talk.say("아니요")["speech"]
    assert offer_count(services, citizen_id) == 0


@pytest.mark.parametrize(
    "utterance, expected",
    [
        ("가족관계증명서 지갑으로 보내줘", "가족관계증명서는 아직 발급 처리 중이라"),
        ("건강보험 지갑으로 보내줘", "건강보험자격득실확인서는 유효기간이 지나서"),
        ("예방접종증명서 지갑으로 보내줘", "예방접종증명서는 취소된 서류라서"),
        ("기본증명서 지갑으로 보내줘", "기본증명서는 효력이 정지된 상태라서"),
        ("초본 지갑으로 보내줘", "주민등록표 초본은 발급받은 기록이 없어요"),
    ],
)
def test_documents_that_are_not_issued_are_explained(services, citizen, conversation, utterance, expected):
    citizen_id, user_id, _ = citizen()
    talk = conversation(user_id)
    talk.say(utterance)
    talk.say("네")
    reply = talk.say("이 오 팔 공")
    assert reply["speech"].startswith(expected), reply["speech"]
    assert offer_count(services, citizen_id) == 0


def test_citizen_without_a_wallet_is_told_how_to_register(services, citizen, conversation):
    citizen_id, user_id, _ = citizen(wallet=False)
    reply = conversation(user_id).say("등본 지갑으로 보내줘")
    assert "등록된 전자지갑이 없어요" in reply["speech"] and "지갑 등록" in reply["speech"]
    assert reply["expects"] is None and offer_count(services, citizen_id) == 0


def test_unlinked_speaker_gets_linking_instructions(conversation):
    reply = conversation("speaker-nobody-" + secrets.token_hex(3)).say("등본 지갑으로 보내줘")
    assert "연결 코드" in reply["speech"] and reply["expects"] is None


def test_wrong_pin_sends_nothing(services, citizen, conversation):
    citizen_id, user_id, _ = citizen()
    talk = conversation(user_id)
    talk.say("등본 지갑으로 보내줘")
    talk.say("네")
    assert talk.say("일 일 일 일")["expects"] == "pin"
    assert offer_count(services, citizen_id) == 0


def test_a_different_request_at_the_pin_prompt_does_not_send_the_confirmed_one(services, citizen, conversation):
    citizen_id, user_id, wallet_id = citizen()
    talk = conversation(user_id)
    talk.say("등본 지갑으로 보내줘")
    talk.say("네")  # now at the PIN prompt for the 등본
    switched = talk.say("가족관계증명서 지갑으로 보내줘")
    assert switched["speech"] == "가족관계증명서를 전자지갑으로 보낼까요?"
    talk.say("네")
    assert talk.say("이 오 팔 공")["speech"].startswith("가족관계증명서는 아직 발급 처리 중")
    assert offer_count(services, citizen_id) == 0


def test_english_flow(services, citizen, conversation):
    citizen_id, user_id, wallet_id = citizen(locale="en-US")
    talk = conversation(user_id, locale="en-US")
    assert talk.say("send my resident registration copy to my wallet")["speech"] == (
        "Shall I send your resident registration copy to your digital wallet?")
    talk.say("yes")
    done = talk.say("two five eight zero")
    code = DIGITS.findall(done["ssml"])[0]
    assert done["speech"].startswith("I sent your resident registration copy to your digital wallet.")
    assert f"The code is {' '.join(code)}." in done["speech"]
    assert len(services.wallet.offers.pending_for_wallet(wallet_id)) == 1
