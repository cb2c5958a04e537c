"""The engine's cross-cutting flows: linking, PIN step-up and lockout, confirmation, slot questions.

The personal skills of later issues use exactly these flows; here a small skill written for the test
drives them, so the engine is checked on its own.
"""

from __future__ import annotations

import secrets

import pytest

from skills.engine import DialogContext, Reply, nothing_changed
from tests.conftest import routed_phrases


class ProbeSkill:
    """Needs the PIN, asks for a document when it is missing, and confirms before it changes anything."""

    name = "probe"
    intents = ("probe",)

    def __init__(self) -> None:
        self.done: list[str] = []

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "probe"

    def handle(self, ctx: DialogContext) -> Reply:
        if gate := ctx.require_personal():
            return gate
        if "document" not in ctx.slots:
            return ctx.ask_slot("document", "어떤 서류요?", "Which document?")
        return ctx.ask_confirmation("진행할까요?", "Shall I go ahead?", {"document": ctx.slots["document"]})

    def confirmed(self, ctx: DialogContext, action: dict) -> Reply:
        self.done.append(action["document"])
        return ctx.say(f"완료: {action['document']}", f"done: {action['document']}")

    def declined(self, ctx: DialogContext, action: dict) -> Reply:
        return nothing_changed(ctx)


@pytest.fixture()
def probe(services):
    skill = ProbeSkill()
    engine = services.dialog
    engine.add_skill(skill)
    with routed_phrases(engine.router, {"probe": ["프로브", "probe"]}):
        yield skill
    engine.skills.remove(skill)


def test_unlinked_speaker_gets_linking_instructions(conversation, probe):
    reply = conversation("nobody-linked").say("프로브")
    assert "연결 코드" in reply["speech"] and reply["expects"] is None
    assert probe.done == []


def test_pin_then_slot_then_confirmation(conversation, new_citizen, probe):
    _, user = new_citizen(pin="2580")
    talk = conversation(user)
    assert talk.say("프로브")["expects"] == "pin"
    assert talk.say("이 오 팔 공")["expects"] == "slot"
    reply = talk.say("가족관계 증명서요")
    assert reply["expects"] == "confirmation"
    assert talk.say("응")["speech"] == "완료: family-relation-certificate"
    # The PIN holds for the rest of the session: the next request goes straight to the question.
    assert talk.say("프로브 등본")["expects"] == "confirmation"
    assert talk.say("아니요")["speech"] == "알겠어요. 아무것도 바꾸지 않았어요."
    assert probe.done == ["family-relation-certificate"]


@pytest.mark.parametrize("spoken", ["2580", "이오팔공", "둘 다섯 여덟 공", "비밀번호는 2580이에요"])
def test_pin_spoken_in_different_ways(conversation, new_citizen, probe, spoken):
    _, user = new_citizen(pin="2580")
    talk = conversation(user)
    talk.say("프로브 등본")
    assert talk.say(spoken)["expects"] == "confirmation"


def test_english_pin_and_yes(conversation, new_citizen, probe):
    _, user = new_citizen(pin="1234", locale="en-US")
    talk = conversation(user)
    assert talk.say("probe")["speech"].startswith("To confirm it's you")
    assert talk.say("one two three four")["expects"] == "slot"
    assert talk.say("family relation certificate")["speech"] == "Shall I go ahead?"
    assert talk.say("yes")["speech"] == "done: family-relation-certificate"


def test_five_wrong_pins_lock_across_sessions(conversation, new_citizen, probe, services):
    citizen_id, user = new_citizen(pin="1111")
    talk = conversation(user)
    talk.say("프로브")
    for left in ("네 번", "세 번", "두 번", "한 번"):
        assert left in talk.say("2222")["speech"]
    assert "15분" in talk.say("2222")["speech"]
    assert services.accounts.lock_state(citizen_id) is not None
    # A new session (or another process) sees the same lock, even with the right PIN.
    other = conversation(user)
    assert "15분" in other.say("프로브")["speech"]
    assert probe.done == []


def test_a_different_request_leaves_the_pin_question(conversation, new_citizen, probe):
    _, user = new_citizen()
    talk = conversation(user)
    talk.say("프로브")
    reply = talk.say("도움말")
    assert reply["intent"] == "help" and reply["expects"] is None


def test_unclear_confirmation_is_asked_again(conversation, new_citizen, probe):
    _, user = new_citizen(pin="2580")
    talk = conversation(user)
    talk.say("프로브 등본")
    talk.say("2580")
    assert talk.say("음")["speech"] == "네 또는 아니요로 답해 주세요."
    assert talk.say("네")["speech"] == "완료: resident-registration-copy"


def test_link_code_links_a_speaker(conversation, services, new_citizen, probe):
    citizen_id, _ = new_citizen(pin="9090")
    code = services.accounts.issue_link_code(citizen_id)
    talk = conversation("brand-new-speaker")
    assert "연결되었어요" in talk.say(f"연결 코드 {code}")["speech"]
    assert services.accounts.citizen_for_user("brand-new-speaker").id == citizen_id
    # One-time: the same code does not link a second speaker.
    assert "맞지 않거나" in conversation("second-speaker").say(f"연결 코드 {code}")["speech"]
    assert talk.say("프로브")["expects"] == "pin"


def test_expected_input_follows_the_dialog(conversation, new_citizen, probe, services):
    _, user = new_citizen(pin="2580")
    talk = conversation(user)
    talk.say("프로브 등본")
    expected = services.dialog.expected_input(talk.session_id, user)
    assert expected.mode == "limited" and "삼" in expected.phrases
    talk.say("2580")
    expected = services.dialog.expected_input(talk.session_id, user)
    assert expected.mode == "limited" and "네" in expected.phrases
    talk.say("네")
    assert services.dialog.expected_input(talk.session_id, user).mode == "open"


def test_session_of_another_user_is_not_reused(conversation):
    alice, mallory = conversation("dev-alice-" + secrets.token_hex(3)), conversation("dev-mallory-" + secrets.token_hex(3))
    first = alice.say("help")
    mallory.session_id = first["session_id"]
    other = mallory.say("help")
    assert other["session_id"] != first["session_id"]
    # … and the session stays Alice's: her next turn continues it.
    assert alice.say("help")["session_id"] == first["session_id"]


@pytest.mark.parametrize(("text", "locale", "intent", "expected"), [
    ("안녕", "ko-KR", "greeting", "안녕하세요."),
    ("고마워", "ko-KR", "thanks", "천만에요."),
    ("응", "ko-KR", "small_talk", "무엇을 도와드릴까요?"),
    ("아니", "ko-KR", "small_talk", "무엇을 도와드릴까요?"),
    ("hello", "en-US", "greeting", "Hello."),
    ("yes", "en-US", "small_talk", "What would you like to do?"),
])
def test_small_talk_and_a_bare_yes_outside_a_question_get_a_fitting_answer(conversation, text, locale, intent,
                                                                           expected):
    reply = conversation(None, locale).say(text)
    assert reply["intent"] == intent and reply["speech"].startswith(expected)


@pytest.mark.parametrize("template", ["my link code is {code}", "link code {code} please", "연결 코드는 {code}이에요"])
def test_link_code_said_in_a_sentence_links_a_speaker(conversation, services, new_citizen, template):
    citizen_id, _ = new_citizen(pin="9090")
    code = services.accounts.issue_link_code(citizen_id)
    user = "sentence-speaker-" + "-".join(template.split()[:2])
    reply = conversation(user, "ko-KR" if "코드" in template else "en-US").say(template.format(code=code))
    assert reply["intent"] == "link_account"
    assert services.accounts.citizen_for_user(user).id == citizen_id
