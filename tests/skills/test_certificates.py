"""Certificate status through /v1/converse: every state in both languages, PIN step-up, lockout, privacy.

The demo citizens are used as seeded (data/demo.yaml); states the demo lacks (suspended, expiring
today, valid without end date in English …) get a fresh citizen with certificates of its own.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from domain.certificates import Certificate
from domain.clock import korean_today

TODAY = korean_today()  # the service's day (Seoul), not the test machine's


def ko_date(offset: int) -> str:
    day = TODAY + timedelta(days=offset)
    text = f"{day.month}월 {day.day}일"
    return text if day.year == TODAY.year else f"{day.year}년 {text}"


def en_date(offset: int) -> str:
    day = TODAY + timedelta(days=offset)
    text = day.strftime("%B ") + str(day.day)
    return text if day.year == TODAY.year else f"{text}, {day.year}"


@pytest.fixture()
def citizen_with(services, new_citizen):
    """A linked citizen holding the given certificates: (doc_type, state, applied, issued, valid) day offsets."""

    def create(certs, locale="ko-KR", pin="4321", privacy="full"):
        citizen_id, user_id = new_citizen(pin=pin, locale=locale)
        if privacy != "full":
            services.accounts.set_privacy(citizen_id, privacy)
        records = services.certificates
        for doc_type, state, applied, issued, valid in certs:
            records.add(Certificate(
                id=f"cert-{secrets.token_hex(4)}", citizen_id=citizen_id, doc_type=doc_type, state=state,
                applied_on=None if applied is None else TODAY + timedelta(days=applied),
                issued_on=None if issued is None else TODAY + timedelta(days=issued),
                valid_until=None if valid is None else TODAY + timedelta(days=valid)))
        return citizen_id, user_id

    return create


def test_summary_counts_first_then_what_needs_attention_then_details(conversation):
    talk = conversation("demo-user-ko")
    assert talk.say("내 증명서 상태 알려줘")["expects"] == "pin"
    summary = talk.say("1357")
    speech = summary["speech"]
    assert speech.startswith("증명서 다섯 건 중 두 건은 확인이 필요해요.")
    assert f"건강보험자격득실확인서는 {ko_date(-5)}에 만료되었어요." in speech
    assert f"소득금액증명은 열흘 뒤인 {ko_date(10)}에 만료돼요." in speech
    assert "가족관계증명서는 처리 중이에요." in speech
    # The ones without trouble are only offered, not read out.
    assert "주민등록표 등본" not in speech and "예방접종증명서" not in speech
    assert summary["expects"] == "confirmation" and speech.endswith("나머지도 자세히 들으시겠어요?")
    details = talk.say("응")["speech"]
    assert f"주민등록표 등본은 {ko_date(60)}까지 유효해요." in details
    assert "예방접종증명서는 발급되어 있고 유효기간이 따로 없어요." in details
    assert f"이틀 전인 {ko_date(-2)}에 신청하신 가족관계증명서는 처리 중이에요. 담당 기관이 확인을 마치면" in details
    assert "건강보험자격득실확인서" not in details  # already said


def test_declining_the_details_is_answered_without_talk_of_changes(conversation):
    talk = conversation("demo-user-ko")
    talk.say("증명서 상태 알려 줘")
    talk.say("1357")
    reply = talk.say("아니요")
    assert reply["speech"] == "알겠어요. 다른 도움이 필요하면 말씀해 주세요." and reply["expects"] is None


@pytest.mark.parametrize(("utterance", "expected"), [
    ("가족관계증명서 어떻게 됐어?", f"이틀 전인 {ko_date(-2)}에 신청하신 가족관계증명서는 처리 중이에요."),
    ("등본 아직 유효해?", f"주민등록표 등본은 {ko_date(60)}까지 유효해요."),
    ("소득금액증명 언제까지 유효해", f"소득금액증명은 열흘 뒤인 {ko_date(10)}에 만료돼요."),
    ("건강보험 자격득실 어떻게 됐어", f"건강보험자격득실확인서는 {ko_date(-5)}에 만료되었어요."),
    ("예방접종 증명서 상태 알려줘", "예방접종증명서는 발급되어 있고 유효기간이 따로 없어요."),
    ("기본증명서 어떻게 됐어", "기본증명서는 발급받았거나 신청한 기록이 없어요."),
])
def test_one_document_answers_only_that_one(conversation, utterance, expected):
    talk = conversation("demo-user-ko")
    assert talk.say(utterance)["expects"] == "pin"
    reply = talk.say("일 삼 오 칠")
    assert reply["speech"].startswith(expected), reply["speech"]
    others = {"주민등록표 등본", "가족관계증명서", "건강보험자격득실확인서", "소득금액증명", "예방접종증명서"}
    named = {name for name in others if name in reply["speech"]}
    assert len(named) <= 1


def test_pin_is_asked_once_per_session(conversation):
    talk = conversation("demo-user-ko")
    talk.say("가족관계증명서 어떻게 됐어?")
    talk.say("1357")
    assert talk.say("등본 아직 유효해?")["expects"] is None
    assert conversation("demo-user-ko").say("등본 아직 유효해?")["expects"] == "pin"  # a new session asks again


def test_expiring_question_lists_expiring_then_expired(conversation):
    talk = conversation("demo-user-ko")
    talk.say("곧 만료되는 증명서 있어?")
    speech = talk.say("1357")["speech"]
    assert speech.startswith(f"곧 만료되는 증명서는 한 건이에요. 소득금액증명은 열흘 뒤인 {ko_date(10)}에 만료돼요.")
    assert f"건강보험자격득실확인서는 {ko_date(-5)}에 만료되었어요." in speech
    assert "주민등록표 등본" not in speech


def test_english_demo_user_summary_and_revoked(conversation):
    talk = conversation("demo-user-en")
    assert talk.say("What's the status of my certificates?")["speech"].startswith("To confirm it's you")
    speech = talk.say("two four six eight")["speech"]
    assert speech.startswith("Of your two certificates, one needs attention. Your vaccination certificate was revoked.")
    assert speech.endswith("Would you like the details of the others?")
    assert talk.say("yes")["speech"] == f"Your resident registration copy is valid until {en_date(60)}."
    assert talk.say("is my vaccination certificate still valid")["speech"].startswith(
        "Your vaccination certificate was revoked.")
    assert talk.say("which of my certificates expire soon?")["speech"] == (
        "None of your certificates is expiring or expired.")


@pytest.mark.parametrize(("cert", "ko", "en"), [
    (("basic-certificate", "issued", None, -10, 40), f"기본증명서는 {ko_date(40)}까지 유효해요.",
     f"Your basic certificate is valid until {en_date(40)}."),
    (("basic-certificate", "issued", None, -10, None), "기본증명서는 발급되어 있고 유효기간이 따로 없어요.",
     "Your basic certificate is issued and has no expiry date."),
    (("basic-certificate", "issued", None, -10, 3), f"기본증명서는 사흘 뒤인 {ko_date(3)}에 만료돼요.",
     f"Your basic certificate expires in 3 days, on {en_date(3)}."),
    (("basic-certificate", "issued", None, -10, 14), f"기본증명서는 14일 뒤인 {ko_date(14)}에 만료돼요.",
     f"Your basic certificate expires in 14 days, on {en_date(14)}."),
    (("basic-certificate", "issued", None, -10, 0), "기본증명서는 오늘까지만 유효해요.",
     "Your basic certificate expires today."),
    (("basic-certificate", "issued", None, -40, -1), f"기본증명서는 {ko_date(-1)}에 만료되었어요.",
     f"Your basic certificate expired on {en_date(-1)}."),
    (("basic-certificate", "revoked", None, -40, 30), "기본증명서는 취소되었어요.",
     "Your basic certificate was revoked."),
    (("basic-certificate", "suspended", None, -40, 30), "기본증명서는 효력이 정지되어 있어요. 발급 기관에 문의해 주세요.",
     "Your basic certificate is suspended. Please contact the issuing office."),
    (("basic-certificate", "in_progress", -3, None, None), f"사흘 전인 {ko_date(-3)}에 신청하신 기본증명서는 처리 중이에요.",
     f"Your basic certificate application from {en_date(-3)} is in progress. Next, the issuing office checks it"),
])
def test_every_state_in_both_languages(conversation, citizen_with, cert, ko, en):
    _, user_ko = citizen_with([cert])
    talk = conversation(user_ko)
    talk.say("기본증명서 어떻게 됐어")
    assert talk.say("4321")["speech"].startswith(ko)
    _, user_en = citizen_with([cert], locale="en-US")
    talk = conversation(user_en)
    talk.say("what's the status of my basic certificate")
    assert talk.say("4321")["speech"].startswith(en)


def test_fifteen_days_left_is_valid_not_expiring(conversation, citizen_with):
    _, user = citizen_with([("basic-certificate", "issued", None, -10, 15)])
    talk = conversation(user)
    talk.say("내 증명서 상태 알려줘")
    assert talk.say("4321")["speech"].startswith("증명서 한 건 중 확인이 필요한 것은 없어요.")


def test_brief_privacy_says_only_a_count(conversation, citizen_with):
    _, user = citizen_with([("basic-certificate", "issued", None, -40, -1),
                            ("family-relation-certificate", "issued", None, -1, 80)], privacy="brief")
    for utterance in ("내 증명서 상태 알려줘", "기본증명서 어떻게 됐어", "곧 만료되는 증명서 있어?"):
        talk = conversation(user)
        talk.say(utterance)
        reply = talk.say("4321")
        assert reply["speech"] == "확인이 필요한 증명서가 한 건 있어요. 앱에서 확인해 주세요."
        assert "증명서는" not in reply["speech"] and reply["display"] is None
    _, user_en = citizen_with([("basic-certificate", "suspended", None, -40, 10)], locale="en-US", privacy="brief")
    talk = conversation(user_en)
    talk.say("check my certificates")
    assert talk.say("4321")["speech"] == "You have one certificate that needs attention. Please check the app."


def test_no_wallet_copy_is_said_for_one_document(conversation, citizen_with):
    _, user = citizen_with([("basic-certificate", "issued", None, -1, 30)])
    talk = conversation(user)
    talk.say("기본증명서 어떻게 됐어")
    assert talk.say("4321")["speech"].endswith("전자문서지갑에는 아직 사본이 없어요.")
    # Copies in the wallet (valid, then revoked) are covered end to end in tests/wallet_bridge/test_end_to_end.py.


def test_wrong_pin_then_right_pin(conversation):
    talk = conversation("demo-user-ko")
    talk.say("가족관계증명서 어떻게 됐어?")
    wrong = talk.say("0000")
    assert wrong["expects"] == "pin" and "네 번 더" in wrong["speech"] and "가족관계" not in wrong["speech"]
    assert "처리 중이에요" in talk.say("1357")["speech"]
    # The right PIN resets the counter: a later wrong PIN starts again from four tries left.
    again = conversation("demo-user-ko")
    again.say("등본 아직 유효해?")
    assert "네 번 더" in again.say("9999")["speech"]
    again.say("1357")


def test_english_wrong_pin(conversation):
    talk = conversation("demo-user-en")
    talk.say("is my resident registration copy still valid")
    reply = talk.say("one one one one")
    assert reply["speech"].startswith("That PIN is not right. You have 4 more tries.")
    assert "valid until" in talk.say("2468")["speech"]


def test_five_wrong_pins_lock_personal_data(conversation, citizen_with, services):
    citizen_id, user = citizen_with([("basic-certificate", "issued", None, -1, 30)], pin="2580")
    talk = conversation(user)
    talk.say("내 증명서 상태 알려줘")
    for _ in range(4):
        assert talk.say("1111")["expects"] == "pin"
    locked = talk.say("1111")
    assert "15분" in locked["speech"] and "기본증명서" not in locked["speech"]
    assert services.accounts.lock_state(citizen_id) is not None
    other = conversation(user)
    assert "15분" in other.say("기본증명서 어떻게 됐어")["speech"]
    # Even the right PIN opens nothing while the lock holds.
    assert "기본증명서" not in other.say("2580")["speech"]
    assert "15분" in other.say("내 증명서 상태 알려줘")["speech"]


@pytest.mark.parametrize(("locale", "utterance", "start"), [
    ("ko-KR", "내 증명서 상태 알려줘", "이 스피커는 아직 본인 계정에 연결되지 않았어요."),
    ("en-US", "is my family relation certificate ready?", "This speaker is not linked to your account yet."),
])
def test_unlinked_speaker_gets_linking_instructions(conversation, locale, utterance, start):
    reply = conversation("speaker-" + secrets.token_hex(4), locale).say(utterance)
    assert reply["speech"].startswith(start) and reply["expects"] is None


@pytest.mark.parametrize("question", ["등본 떼려면 어떻게 해?", "가족관계증명서 발급 방법 알려줘", "초본 어디서 떼"])
def test_faq_questions_do_not_turn_into_status_requests(conversation, question):
    reply = conversation("demo-user-ko").say(question)
    assert reply["intent"] not in ("certificate_status", "certificate_expiring") and reply["expects"] != "pin"


def test_a_document_type_the_vocabulary_does_not_know_is_said_by_its_id(conversation, citizen_with):
    _, user = citizen_with([("marriage-relation-certificate", "issued", None, -1, 30)])
    talk = conversation(user)
    talk.say("내 증명서 상태 알려줘")
    assert talk.say("4321")["expects"] == "confirmation"
    assert talk.say("네")["speech"].startswith(f"marriage relation certificate은 {ko_date(30)}까지 유효해요.")
