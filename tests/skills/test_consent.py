"""Consent by voice through /v1/converse, and its effect on POST /v1/mydata/share, in both languages.

Tests that toggle a demo citizen's consent put it back before they end, so every test starts from the
seeded state (citizen-0001: NHIS income on, HF resident registration off, NTS health insurance on).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from domain.consent_ledger import consent_events
from domain.mydata import share_requests

NHIS = {"Authorization": "Bearer demo-agency-key-nhis"}
HF = {"Authorization": "Bearer demo-agency-key-hf"}


def share(client, headers, citizen_id, data_item):
    return client.post("/v1/mydata/share", json={"citizen_id": citizen_id, "data_item": data_item}, headers=headers)


def event_count(services, citizen_id, kind=None) -> int:
    ledger = services.consents
    return sum(1 for r in ledger.records(citizen_id) for e in ledger.events(r.id) if kind in (None, e.event))


def test_list_in_korean(conversation):
    talk = conversation("demo-user-ko")
    assert talk.say("내가 어디에 정보를 공유하고 있어?")["expects"] == "pin"
    speech = talk.say("1357")["speech"]
    assert speech.startswith("지금 정보 공유 동의가 두 건 있어요.")
    assert "국민건강보험공단에 소득 정보를" in speech and "국세청에 건강보험 자격 정보를" in speech
    assert "부터" in speech and "까지" in speech  # since when, until when
    assert speech.endswith("한국주택금융공사 주민등록 정보 공유는 꺼 두었어요.")


def test_off_then_on_by_voice_gates_the_share_endpoint(conversation, client, services):
    assert share(client, NHIS, "citizen-0001", "income").status_code == 200
    talk = conversation("demo-user-ko")
    assert talk.say("건보공단에 소득 정보 공유 꺼줘")["expects"] == "pin"
    confirm = talk.say("1357")
    assert confirm["speech"] == "국민건강보험공단에 소득 정보 공유를 끌까요?" and confirm["expects"] == "confirmation"
    assert share(client, NHIS, "citizen-0001", "income").status_code == 200  # nothing changes before the yes
    done = talk.say("네")
    assert done["speech"].startswith("국민건강보험공단에 소득 정보 공유를 껐어요.")
    refused = share(client, NHIS, "citizen-0001", "income")  # the very next call
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "no_consent"
    assert "data" not in refused.get_json()
    withdrawals = event_count(services, "citizen-0001", "withdrawn")
    # Saying it again: one withdrawal, and the speaker says it was already off.
    again = talk.say("국민건강보험공단에 소득 정보 공유 꺼줘")
    assert again["speech"] == "국민건강보험공단에 소득 정보 공유는 이미 꺼져 있어요." and again["expects"] is None
    assert event_count(services, "citizen-0001", "withdrawn") == withdrawals
    # "No" to turning it back on changes nothing.
    events = event_count(services, "citizen-0001")
    assert talk.say("국민건강보험공단에 소득 정보 공유 켜줘")["speech"].startswith("국민건강보험공단에 소득 정보 공유를 켤까요?")
    assert talk.say("아니요")["speech"] == "알겠어요. 바꾸지 않았어요. 공유는 지금처럼 꺼져 있어요."
    assert event_count(services, "citizen-0001") == events
    assert share(client, NHIS, "citizen-0001", "income").status_code == 403
    talk.say("국민건강보험공단에 소득 정보 공유 켜줘")
    assert talk.say("응")["speech"].startswith("국민건강보험공단에 소득 정보 공유를 켰어요.")
    released = share(client, NHIS, "citizen-0001", "income")
    assert released.status_code == 200
    assert released.get_json()["data"] == {"tax_year": 2024, "total_income_krw": 41200000, "kind": "근로소득"}
    assert services.consents.verify_chain().ok


def test_no_to_turning_off_changes_nothing(conversation, client, services):
    talk = conversation("demo-user-ko")
    talk.say("국세청에 건강보험 정보 공유 중지해줘")
    talk.say("1357")
    events = event_count(services, "citizen-0001")
    assert talk.say("아니")["speech"] == "알겠어요. 바꾸지 않았어요. 공유는 지금처럼 켜져 있어요."
    assert event_count(services, "citizen-0001") == events
    nts = {"Authorization": "Bearer demo-agency-key-nts"}
    assert share(client, nts, "citizen-0001", "health-insurance").status_code == 200


def test_ambiguous_data_item_is_asked_before_the_pin(conversation, services):
    talk = conversation("demo-user-ko")
    question = talk.say("국민건강보험공단에 소득이랑 건강보험 정보 공유 꺼줘")
    assert question["expects"] == "slot"
    assert question["speech"] == "건강보험 자격 정보인가요, 소득 정보인가요?"
    assert talk.say("소득 정보요")["expects"] == "pin"
    assert talk.say("1357")["speech"] == "국민건강보험공단에 소득 정보 공유를 끌까요?"
    events = event_count(services, "citizen-0001")
    talk.say("아니요")
    assert event_count(services, "citizen-0001") == events


def test_missing_recipient_is_asked_among_the_citizens_own_consents(conversation):
    talk = conversation("demo-user-ko")
    talk.say("정보 공유 꺼줘")
    question = talk.say("1357")
    assert question["expects"] == "slot"
    assert question["speech"] == "어느 기관에 공유를 끌까요? 국민건강보험공단과 국세청 중에서 말씀해 주세요."
    # The only consent with that agency fills the data item.
    assert talk.say("국세청이요")["speech"] == "국세청에 건강보험 자격 정보 공유를 끌까요?"
    talk.say("아니")


def test_missing_data_item_for_a_new_consent_is_asked(conversation):
    talk = conversation("demo-user-ko")
    talk.say("정보 공유 켜줘")
    assert talk.say("1357")["speech"] == "어느 기관에 공유할까요?"
    item = talk.say("국세청")
    assert item["expects"] == "slot" and item["speech"].startswith("국세청에 어떤 정보를 공유할까요?")
    assert talk.say("소득 정보")["speech"].startswith("국세청에 소득 정보 공유를 켤까요? 공공서비스 신청에 쓰이고, 1년 동안")
    assert talk.say("아니요")["expects"] is None


def test_nothing_to_withdraw(conversation):
    talk = conversation("demo-user-ko")
    talk.say("한국주택금융공사에 공유 꺼줘")
    assert talk.say("1357")["speech"] == "한국주택금융공사에는 지금 공유하고 있는 정보가 없어요."


def test_retried_confirmation_changes_nothing(conversation, new_citizen, services, client):
    citizen_id, user = new_citizen(pin="2580")
    talk = conversation(user)
    talk.say("한국주택금융공사에 주민등록 정보 제공 동의해줘")
    talk.say("2580")
    first = talk.say("네", request_id="confirm-1")
    assert first["speech"].startswith("한국주택금융공사에 주민등록 정보 공유를 켰어요.")
    retry = talk.say("네", request_id="confirm-1")
    assert retry == first
    assert event_count(services, citizen_id) == 1
    # And the ledger itself refuses a second change under the same request (e.g. after a lost reply).
    ledger = services.consents
    from domain.consent_ledger import idempotency_key
    change = ledger.set_consent(citizen_id, "hf", "resident-registration", "public-service", True, channel="native",
                                actor="principal", idempotency_key=idempotency_key(user, "confirm-1"))
    assert change.replayed and event_count(services, citizen_id) == 1


def test_english_on_off_with_the_share_endpoint(conversation, client, services):
    talk = conversation("demo-user-en")
    talk.say("share my resident registration data with the housing finance corporation")
    confirm = talk.say("2468")
    assert confirm["speech"].startswith(
        "Shall I start sharing your resident registration data with the Korea Housing Finance Corporation?")
    assert "one year" in confirm["speech"]
    assert talk.say("yes")["speech"].startswith("Done: you're now sharing your resident registration data")
    released = share(client, HF, "citizen-0002", "resident-registration")
    assert released.status_code == 200 and released.get_json()["data"]["region"] == "부산광역시 해운대구"
    listing = talk.say("who can see my data?")["speech"]
    assert listing.startswith("You're sharing your data under one consent. Your resident registration data with "
                              "the Korea Housing Finance Corporation, from ")
    assert talk.say("share my resident registration data with HF")["speech"].startswith(
        "You're already sharing your resident registration data")
    talk.say("stop sharing my resident registration data with HF")
    assert talk.say("no")["speech"] == "Okay, I didn't change anything. Sharing stays as it was."
    assert share(client, HF, "citizen-0002", "resident-registration").status_code == 200
    talk.say("stop sharing with the housing finance corporation")
    assert talk.say("yes")["speech"].startswith(
        "Done: I stopped sharing your resident registration data with the Korea Housing Finance Corporation.")
    assert share(client, HF, "citizen-0002", "resident-registration").status_code == 403
    assert talk.say("stop sharing with the housing finance corporation")["speech"] == (
        "You're not sharing any data with the Korea Housing Finance Corporation.")


def test_english_ambiguous_and_missing(conversation):
    talk = conversation("demo-user-en")
    question = talk.say("stop sharing my income and health insurance data with the tax service")
    assert question["expects"] == "slot" and question["speech"] == "Do you mean health insurance data or income data?"
    assert talk.say("income")["expects"] == "pin"
    assert talk.say("2468")["speech"] == "Sharing your income data with the National Tax Service is already off."
    talk.say("turn on data sharing")
    # Jane never had a consent with NHIS (other tests leave only HF and NTS records), so the item is asked.
    assert talk.say("the health insurance service")["speech"].startswith(
        "Which data should the National Health Insurance Service get:")
    assert talk.say("health insurance data")["speech"].startswith(
        "Shall I start sharing your health insurance data with the National Health Insurance Service?")
    assert talk.say("no")["expects"] is None


def test_english_list_when_nothing_is_shared(conversation, new_citizen):
    _, user = new_citizen(pin="1234", locale="en-US")
    talk = conversation(user)
    talk.say("who can see my data?")
    assert talk.say("1234")["speech"] == "You're not sharing your data with anyone right now."


def test_unlinked_speaker_cannot_change_consent(conversation, services):
    before = event_count(services, "citizen-0001")
    reply = conversation("stranger-speaker").say("국민건강보험공단에 소득 정보 공유 꺼줘")
    assert reply["speech"].startswith("이 스피커는 아직 본인 계정에 연결되지 않았어요.")
    assert event_count(services, "citizen-0001") == before


def test_brief_privacy_lists_only_a_count(conversation, new_citizen, services):
    citizen_id, user = new_citizen(pin="2580")
    services.accounts.set_privacy(citizen_id, "brief")
    services.consents.set_consent(citizen_id, "nts", "income", "public-service", True, "app", "principal")
    talk = conversation(user)
    talk.say("내 정보 어디에 공유하고 있어")
    assert talk.say("2580")["speech"] == "정보 공유 동의가 한 건 있어요. 자세한 내용은 앱에서 확인해 주세요."


def test_share_endpoint_rejects_and_records(client, services):
    def count(outcome):
        with services.db.read() as conn:
            return conn.execute(select(func.count()).select_from(share_requests)
                                .where(share_requests.c.outcome == outcome)).scalar()

    released, refused = count("released"), count("refused")
    assert share(client, {}, "citizen-0001", "income").status_code == 401
    assert share(client, {"Authorization": "Bearer not-a-key"}, "citizen-0001", "income").status_code == 401
    # The withdrawn consent (HF) and an unknown citizen get the same 403.
    for citizen, headers, item in (("citizen-0001", HF, "resident-registration"), ("citizen-9999", NHIS, "income"),
                                   ("citizen-0001", NHIS, "health-insurance")):
        response = share(client, headers, citizen, item)
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "no_consent"
    assert share(client, NHIS, "citizen-0001", "income").status_code == 200
    assert count("refused") == refused + 3 and count("released") == released + 1
    bad = client.post("/v1/mydata/share", json={"citizen_id": "citizen-0001", "data_item": "dna"}, headers=NHIS)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "unknown_data_item"
    bad = client.post("/v1/mydata/share", json={"data_item": "income"}, headers=NHIS)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_citizen_id"
    bad = client.post("/v1/mydata/share", data="{", content_type="application/json", headers=NHIS)
    assert bad.status_code == 400
    assert count("refused") == refused + 3  # rejected requests are not share calls


@pytest.mark.parametrize("utterance", ["개인정보 제공 동의 철회는 어떻게 해?", "마이데이터가 뭐야?"])
def test_faq_questions_about_consent_are_not_consent_changes(conversation, utterance):
    reply = conversation("demo-user-ko").say(utterance)
    assert reply["intent"] not in ("consent_list", "consent_off", "consent_on") and reply["expects"] != "pin"


def test_consent_events_are_only_appended(services):
    # The whole session's toggles left a chain that verifies, with no gaps in its numbering.
    with services.db.read() as conn:
        seqs = [row[0] for row in conn.execute(select(consent_events.c.seq).order_by(consent_events.c.seq))]
    assert seqs == list(range(1, len(seqs) + 1))
    assert services.consents.verify_chain().ok


def test_list_for_one_agency(conversation):
    talk = conversation("demo-user-ko")
    talk.say("국세청에 뭐 공유하고 있어?")
    speech = talk.say("1357")["speech"]
    assert speech.startswith("지금 정보 공유 동의가 한 건 있어요. 국세청에 건강보험 자격 정보를")
    assert "국민건강보험공단" not in speech
