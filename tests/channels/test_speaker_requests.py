"""Every real platform payload parses into the common Turn, with what SOURCES.md says a correct adapter reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.alexa.interaction_model import AlexaCatalog
from channels.alexa.request import parse_alexa_request
from channels.kakao.request import parse_kakao_request
from channels.nugu.request import parse_nugu_request
from http_api import ApiError
from settings import PROJECT_DATA

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "speakers"


def load(platform: str, name: str) -> dict:
    return json.loads((FIXTURES / platform / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def catalog() -> AlexaCatalog:
    return AlexaCatalog.load(PROJECT_DATA)


@pytest.mark.parametrize("path", sorted((FIXTURES / "alexa").glob("*.json")), ids=lambda p: p.name)
def test_every_alexa_fixture_parses_into_an_alexa_turn(path, catalog):
    parsed = parse_alexa_request(json.loads(path.read_text(encoding="utf-8")))
    turn = parsed.to_turn(catalog)
    assert turn.channel == "alexa"
    assert turn.user_id.startswith("alexa:amzn1.")
    assert turn.locale == "en-US"
    assert turn.request_id and turn.request_id.startswith("amzn1.echo-api.request.")
    # Alexa's session id is only a key to look the service's session up by; the turn names no session itself.
    assert turn.session_id is None
    assert turn.platform_session is None or (turn.platform_session.startswith("alexa-h-")
                                             and len(turn.platform_session) <= 64)


def test_alexa_launch(catalog):
    parsed = parse_alexa_request(load("alexa", "intent_request_launch.json"))
    assert parsed.session_new is True
    turn = parsed.to_turn(catalog)
    assert (turn.event, turn.text, turn.intent) == ("launch", "", None)
    assert turn.user_id == "alexa:amzn1.account.AM3B227HF3FAM1B261HK7FFM3A2"


def test_alexa_resolved_slot_value_wins_over_the_spoken_words():
    parsed = parse_alexa_request(load("alexa", "intent_request_airport_info_resolutions.json"))
    slot = parsed.slots["AirportCode"]
    assert (slot.spoken, slot.resolved_name, slot.resolved_id, slot.value) == ("my home airport", "JFK", "200", "JFK")
    assert parsed.access_token is None  # accessToken: null is read as "not linked", not as a string


def test_alexa_unmatched_resolution_keeps_the_spoken_value(catalog):
    parsed = parse_alexa_request(load("alexa", "IntentRequestWithSlotResolutionNoMatch.json"))
    assert parsed.slots["name"].value == "Jeff" and parsed.slots["name"].resolved_id is None
    assert parsed.application_id == "amzn1.ask.skill.5023bec0-da4f-4bfd-b17f-2df8826fce08"
    assert parsed.device_id.startswith("amzn1.ask.device.")
    turn = parsed.to_turn(catalog)
    # MyNameIsIntent is not ours: an empty turn, which the engine answers with a re-prompt.
    assert (turn.intent, turn.text) == (None, "")


def test_alexa_session_attributes_survive_empty_slots(catalog):
    parsed = parse_alexa_request(load("alexa", "intent_request_airport_info_with_attributes.json"))
    assert parsed.session_attributes == {"airportCode": "DAL", "airportName": "Dallas Love Field"}
    assert parsed.slots == {}
    assert parsed.to_turn(catalog).intent is None


@pytest.mark.parametrize(
    ("name", "state", "in_dialog", "confirmation"),
    [
        ("intent_request_food_delivery_dialog_started.json", "STARTED", True, "NONE"),
        ("intent_request_food_delivery_dialog_in_progress.json", "IN_PROGRESS", True, "NONE"),
        ("intent_request_food_delivery_dialog_completed.json", "COMPLETED", False, "CONFIRMED"),
    ],
)
def test_alexa_dialog_states(name, state, in_dialog, confirmation):
    parsed = parse_alexa_request(load("alexa", name))
    assert (parsed.dialog_state, parsed.in_dialog, parsed.confirmation_status) == (state, in_dialog, confirmation)
    genre = parsed.slots["genre"]
    assert genre.value == (None if state == "STARTED" else "chinese")  # a slot without value is not an error


@pytest.mark.parametrize("name", ["session_ended_request.json", "SessionEndedRequest.json"])
def test_alexa_session_end(name, catalog):
    parsed = parse_alexa_request(load("alexa", name))
    assert parsed.to_turn(catalog).event == "session_end"


def test_alexa_session_end_reason_is_read():
    assert parse_alexa_request(load("alexa", "SessionEndedRequest.json")).reason == "USER_INITIATED"
    assert parse_alexa_request(load("alexa", "session_ended_request.json")).reason is None


def test_alexa_request_without_session(catalog):
    parsed = parse_alexa_request(load("alexa", "System.ExceptionEncountered.json"))
    assert parsed.platform_session is None and parsed.error_type == "INVALID_RESPONSE"
    assert parsed.user_id == "alexa:amzn1.account.AM3B00000000000000000000000"
    assert parsed.locale == "en-US"  # de-DE is answered in the skill's only language


def test_alexa_unknown_request_type(catalog):
    parsed = parse_alexa_request(load("alexa", "unknown_type_request.json"))
    turn = parsed.to_turn(catalog)
    assert parsed.request_type == "UnknownRequest" and (turn.event, turn.intent, turn.text) == (None, None, "")


def intent_request(name: str, slots: dict | None = None) -> dict:
    envelope = load("alexa", "intent_request_food_delivery_dialog_completed.json")
    envelope["request"].pop("dialogState")
    envelope["request"]["intent"] = {"name": name, "confirmationStatus": "NONE", "slots": slots or {}}
    return envelope


@pytest.mark.parametrize(
    ("name", "text", "intent"),
    [
        ("AMAZON.YesIntent", "yes", None),
        ("AMAZON.NoIntent", "no", None),
        ("AMAZON.StopIntent", "stop", "stop"),
        ("AMAZON.CancelIntent", "cancel", "cancel"),
        ("AMAZON.NavigateHomeIntent", "cancel", "cancel"),
        ("AMAZON.HelpIntent", "help", "help"),
        ("AMAZON.FallbackIntent", "", None),
    ],
)
def test_alexa_built_ins(catalog, name, text, intent):
    turn = parse_alexa_request(intent_request(name)).to_turn(catalog)
    assert (turn.text, turn.intent) == (text, intent)
    # Alexa's fallback means words outside the model: the honest "can't help", not "didn't catch that".
    assert turn.event == ("unsupported" if name == "AMAZON.FallbackIntent" else None)


def test_alexa_pin_and_link_code_become_digits(catalog):
    pin = parse_alexa_request(intent_request("PinIntent", {"pin": {"name": "pin", "value": "1357"}}))
    assert pin.to_turn(catalog).text == "1357"
    # AMAZON.NUMBER drops the leading zeros of "zero zero one two three four five six".
    link = parse_alexa_request(intent_request("LinkAccountIntent", {"code": {"name": "code", "value": "123456"}}))
    turn = link.to_turn(catalog)
    assert (turn.intent, turn.slots, turn.text) == ("link_account", {"code": "00123456"}, "link code 00123456")


def test_alexa_search_query_hands_over_the_words(catalog):
    slots = {"query": {"name": "query", "value": "how do i get a resident registration copy"}}
    turn = parse_alexa_request(intent_request("AskQuestionIntent", slots)).to_turn(catalog)
    assert (turn.text, turn.intent) == ("how do i get a resident registration copy", None)


def test_alexa_slot_answer_uses_the_resolved_value_id(catalog):
    slot = {
        "name": "document",
        "value": "family certificate",
        "resolutions": {
            "resolutionsPerAuthority": [
                {
                    "authority": "amzn1.er-authority.echo-sdk.x.DOCUMENT_TYPE",
                    "status": {"code": "ER_SUCCESS_MATCH"},
                    "values": [{"value": {"name": "family relation certificate", "id": "family-relation-certificate"}}],
                }
            ]
        },
    }
    turn = parse_alexa_request(intent_request("DocumentAnswerIntent", {"document": slot})).to_turn(catalog)
    assert turn.slots == {"document": "family-relation-certificate"}
    assert turn.text == "family relation certificate"


def test_alexa_long_user_ids_are_bounded(catalog):
    envelope = load("alexa", "intent_request_launch.json")
    envelope["session"]["user"]["userId"] = "amzn1.ask.account." + "A" * 230
    turn = parse_alexa_request(envelope).to_turn(catalog)
    assert turn.user_id.startswith("alexa:h:") and len(turn.user_id) <= 200


def test_alexa_request_naming_no_user_is_refused():
    envelope = load("alexa", "intent_request_launch.json")
    del envelope["session"]["user"], envelope["context"]["System"]["user"]
    with pytest.raises(ApiError) as caught:
        parse_alexa_request(envelope)
    assert (caught.value.status, caught.value.code) == (400, "malformed_request")


def test_kakao_fixture():
    parsed = parse_kakao_request(load("kakao", "skill_request_keyword_search.json"))
    assert parsed.utterance == "2021 검색"  # trailing newline trimmed
    assert parsed.params == {"sys_text": "2021"}
    assert parsed.locale == "ko-KR"  # "kr"
    assert parsed.callback_url is None and parsed.bot_id == "id" and parsed.block_name == "공지 키워드 검색"
    turn = parsed.to_turn()
    assert (turn.user_id, turn.text, turn.channel, turn.locale) == ("kakao:id", "2021 검색", "kakao", "ko-KR")
    # Kakao's user key does not become a session id: the conversation key is a digest of the bot id.
    assert turn.session_id is None and turn.platform_session == parsed.platform_session
    assert turn.platform_session.startswith("kakao-h-") and "id" not in turn.platform_session[len("kakao-h-"):]


def test_kakao_detail_params_and_callback_url():
    payload = load("kakao", "skill_request_keyword_search.json")
    payload["action"]["params"]["document"] = "등본"
    payload["action"]["detailParams"]["document"] = {"origin": "등본", "value": "주민등록표 등본", "groupName": ""}
    payload["userRequest"]["callbackUrl"] = "https://bot-api.kakao.com/callback/abc"
    payload["userRequest"]["lang"] = "en"
    parsed = parse_kakao_request(payload)
    assert parsed.params["document"] == "주민등록표 등본"
    assert parsed.callback_url == "https://bot-api.kakao.com/callback/abc"
    assert parsed.locale == "en-US"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p["userRequest"]["user"].pop("id"),
        lambda p: p["userRequest"].pop("utterance"),
        lambda p: p["userRequest"].update(utterance="가" * 1001),
        lambda p: p.pop("userRequest"),
    ],
)
def test_kakao_malformed_payloads_are_refused(mutate):
    payload = load("kakao", "skill_request_keyword_search.json")
    mutate(payload)
    with pytest.raises(ApiError) as caught:
        parse_kakao_request(payload)
    assert caught.value.status == 400


def test_nugu_fixture():
    parsed = parse_nugu_request(load("nugu", "backend_proxy_request_foodfighter.json"), "FoodFighter")
    assert parsed.action == "FoodFighter"
    assert parsed.parameters == {"food": "김치", "price": "1000"}  # string values, read from .value
    assert parsed.parameter_types == {"food": "korean", "price": "won"}
    assert parsed.linked and parsed.session_new and parsed.platform_session.startswith("nugu-h-")
    assert "def456" not in parsed.platform_session
    assert parsed.device_type == "speaker.nugu.nu200" and parsed.event_type == "AudioPlayer.PlaybackStarted"
    assert "abc123" not in parsed.user_id and parsed.user_id.startswith("nugu:h:")  # the token is a secret
    turn = parsed.to_turn()
    # An action this service does not define: its entity values are not a question for the FAQ.
    assert (turn.channel, turn.locale, turn.intent, turn.text, turn.event) == ("nugu", "ko-KR", None, "", "unsupported")


def test_nugu_ask_action_passes_the_utterance():
    body = load("nugu", "backend_proxy_request_foodfighter.json")
    body["action"] = {"actionName": "ask", "parameters": {"utterance": {"type": "TEXT", "value": "등본 떼려면 어떻게 해"}}}
    turn = parse_nugu_request(body, "ask").to_turn(intents={"help"})
    assert (turn.text, turn.intent, turn.event) == ("등본 떼려면 어떻게 해", None, None)


def test_nugu_service_action_with_slot_parameter():
    body = load("nugu", "backend_proxy_request_foodfighter.json")
    body["action"] = {"actionName": "link_account", "parameters": {"code": {"type": "NUMBER", "value": "482913"}}}
    parsed = parse_nugu_request(body, "link_account")
    turn = parsed.to_turn(intents={"link_account"}, resolve_slot=lambda name, words: None)
    assert (turn.intent, turn.text, turn.slots) == ("link_account", "482913", {})


def test_nugu_answer_actions():
    body = load("nugu", "backend_proxy_request_foodfighter.json")
    body["action"] = {"actionName": "answer.pin", "parameters": {"pin": {"type": "NUMBER", "value": "1357"}}}
    assert parse_nugu_request(body, "answer.pin").to_turn().text == "1357"
    body["action"] = {"actionName": "answer.yes", "parameters": {}}
    assert parse_nugu_request(body, "answer.yes").to_turn().text == "네"


def test_nugu_without_token_is_a_session_only_user():
    body = load("nugu", "backend_proxy_request_foodfighter.json")
    del body["context"]["session"]["accessToken"]
    parsed = parse_nugu_request(body, "FoodFighter")
    assert not parsed.linked and parsed.user_id.startswith("nugu:h:")


@pytest.mark.parametrize(
    ("mutate", "path", "code"),
    [
        (lambda b: None, "OtherAction", "action_mismatch"),
        (lambda b: b["action"].pop("actionName"), "FoodFighter", "malformed_request"),
        (lambda b: b["context"].pop("session"), "FoodFighter", "malformed_request"),
    ],
)
def test_nugu_malformed_requests_are_refused(mutate, path, code):
    body = load("nugu", "backend_proxy_request_foodfighter.json")
    mutate(body)
    with pytest.raises(ApiError) as caught:
        parse_nugu_request(body, path)
    assert (caught.value.status, caught.value.code) == (400, code)
