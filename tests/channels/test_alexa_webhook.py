"""POST /alexa end to end: signed requests from a test CA through verification, the engine and back out in
Alexa's format, every response validated against the Alexa response schema."""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import create_app
from channels.schemas import response_validator
from channels.speaker_ids import speaker_user_id
from settings import Settings
from skills.sessions import dialog_sessions
from tests.channels.conftest import DEMO_CITIZEN, DEMO_PIN, load_fixture
from tests.channels.signing_ca import CERT_URL, alexa_body

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speakers" / "alexa"


def valid(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    errors = [e.message for e in response_validator("alexa").iter_errors(body)]
    assert errors == [], errors
    return body


def speech(body: dict) -> str:
    return body["response"]["outputSpeech"]["ssml"]


def session_count(services) -> int:
    with services.db.read() as conn:
        return conn.execute(select(func.count()).select_from(dialog_sessions)).scalar()


def test_launch_welcomes_and_keeps_the_session_open(alexa_user):
    body = valid(alexa_user.launch())
    assert "Welcome to Minwon Voice" in speech(body)
    assert body["response"]["shouldEndSession"] is False
    assert body["response"]["reprompt"]["outputSpeech"]["ssml"].startswith("<speak>")


def test_free_question_answers_as_the_native_channel_does(alexa_user, client):
    """The SearchQuery catch-all hands the words to the engine: same answer as /v1/converse."""
    question = "how do i get a resident registration copy"
    body = valid(alexa_user.ask(question))
    native = client.post(
        "/v1/converse", json={"user_id": "native-" + alexa_user.user_id[-12:], "text": question, "locale": "en-US"}
    ).get_json()
    assert speech(body) == native["ssml"]
    assert "didn't catch" not in speech(body)  # the words arrived (an empty turn gets "didn't catch that")


def test_help_built_in_reaches_the_help_skill(alexa_user):
    body = valid(alexa_user.intent("AMAZON.HelpIntent"))
    assert "You can say" in speech(body)
    assert body["response"]["card"] == {
        "type": "Simple",
        "title": "Help",
        "content": body["response"]["card"]["content"],
    }


def test_account_not_linked(alexa_user, probe):
    body = valid(alexa_user.ask("read my channel probe record"))
    assert "not linked to your account" in speech(body)
    assert body["response"]["card"]["title"] == "Account linking needed"
    assert body["response"]["shouldEndSession"] is False


def link(alexa_user, services) -> None:
    code = services.accounts.issue_link_code(DEMO_CITIZEN)
    body = valid(alexa_user.intent("LinkAccountIntent", code=code.lstrip("0") or "0"))
    assert "now linked" in speech(body)


def test_link_code_then_pin_step_up_then_personal_answer(alexa_user, probe, services):
    alexa_user.launch()
    link(alexa_user, services)
    assert services.accounts.citizen_for_user("alexa:" + alexa_user.user_id).id == DEMO_CITIZEN
    body = valid(alexa_user.ask("read my channel probe record"))
    assert "four-digit PIN" in speech(body)
    assert body["response"]["reprompt"]["outputSpeech"]["ssml"] == "<speak>Please say your four-digit PIN.</speak>"
    body = valid(alexa_user.intent("PinIntent", pin=DEMO_PIN))
    assert "three entries" in speech(body)
    # The PIN holds for the rest of the session.
    assert "three entries" in speech(valid(alexa_user.ask("read my channel probe record")))


def test_multi_turn_confirmation_with_yes_and_no(alexa_user, probe, services):
    link(alexa_user, services)
    assert "four-digit PIN" in speech(valid(alexa_user.ask("change my channel probe setting")))
    body = valid(alexa_user.intent("PinIntent", pin=DEMO_PIN))
    assert "Shall I change" in speech(body)
    assert body["response"]["reprompt"]["outputSpeech"]["ssml"] == "<speak>Please answer yes or no.</speak>"
    assert "didn't change anything" in speech(valid(alexa_user.intent("AMAZON.NoIntent")))
    before = len(probe.changes)
    assert "Shall I change" in speech(valid(alexa_user.ask("change my channel probe setting")))
    assert "changed" in speech(valid(alexa_user.intent("AMAZON.YesIntent")))
    assert probe.changes[before:] == [DEMO_CITIZEN]


def test_stop_ends_the_session(alexa_user):
    alexa_user.launch()
    body = valid(alexa_user.intent("AMAZON.StopIntent"))
    assert "Goodbye" in speech(body)
    assert body["response"]["shouldEndSession"] is True and "reprompt" not in body["response"]


def test_session_ended_request_gets_no_speech_and_clears_the_open_question(alexa_user, probe, services):
    link(alexa_user, services)
    valid(alexa_user.ask("read my channel probe record"))  # the PIN question is now open
    body = valid(alexa_user.end())
    assert body == {"version": "1.0", "response": {}}
    # The next session starts afresh: a bare number is no longer taken as the PIN.
    alexa_user.session_id += "-next"
    assert "four-digit PIN" in speech(valid(alexa_user.ask("read my channel probe record")))


def test_intent_this_skill_does_not_define_gets_an_honest_spoken_answer(alexa_user):
    envelope = load_fixture("alexa", "IntentRequestWithSlotResolutionNoMatch.json")
    body = valid(alexa_user.send(envelope))
    assert "can't help with that" in speech(body) and body["response"]["shouldEndSession"] is False


@pytest.mark.parametrize("state", ["STARTED", "IN_PROGRESS", "COMPLETED"])
def test_unknown_intent_in_any_dialog_state_is_answered_not_delegated(alexa_user, state):
    """A Dialog.Delegate for an intent our model does not have would leave the citizen in a dialog that
    nothing fulfils, with no speech at all."""
    request = {"type": "IntentRequest", "dialogState": state,
               "intent": {"name": "deliveryCreationRequest", "confirmationStatus": "NONE", "slots": {}}}
    body = valid(alexa_user.send(alexa_user.envelope(request)))
    assert "directives" not in body["response"]
    assert "can't help with that" in speech(body) and body["response"]["shouldEndSession"] is False


def test_our_own_intent_still_in_dialog_is_delegated_to_alexa(alexa_user):
    request = {"type": "IntentRequest", "dialogState": "STARTED",
               "intent": {"name": "CertificateStatusIntent", "confirmationStatus": "NONE", "slots": {}}}
    body = valid(alexa_user.send(alexa_user.envelope(request)))
    assert body["response"]["directives"][0]["type"] == "Dialog.Delegate"
    assert "outputSpeech" not in body["response"]


def test_unknown_intent_keeps_an_open_question_open(alexa_user, probe, services):
    """During the PIN question, an intent we do not define neither answers nor cancels the question."""
    link(alexa_user, services)
    assert "four-digit PIN" in speech(valid(alexa_user.ask("read my channel probe record")))
    body = valid(alexa_user.intent("OrderPizzaIntent"))
    assert "can't help with that" in speech(body)
    assert "PIN" in body["response"]["reprompt"]["outputSpeech"]["ssml"]


def test_retried_request_is_answered_from_the_log(alexa_user, services):
    envelope = alexa_user.envelope({"type": "IntentRequest", "intent": {"name": "AMAZON.HelpIntent", "slots": {}}})
    first = valid(alexa_user.send(envelope))
    second = valid(alexa_user.send(envelope))
    assert first == second


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_every_fixture_gets_a_schema_valid_answer(alexa_user, path):
    body = valid(alexa_user.send(json.loads(path.read_text(encoding="utf-8"))))
    request_type = json.loads(path.read_text())["request"]["type"]
    if request_type in ("SessionEndedRequest", "System.ExceptionEncountered", "UnknownRequest"):
        assert "outputSpeech" not in body["response"]
    else:
        # The fixtures' intents (deliveryCreationRequest, airport info, MyNameIsIntent) are not ours: whatever
        # the dialog state, they are answered in speech, never delegated.
        assert "directives" not in body["response"]
        assert body["response"]["outputSpeech"]["ssml"].startswith("<speak>")


def test_session_attributes_come_back_unchanged(alexa_user):
    envelope = load_fixture("alexa", "intent_request_airport_info_with_attributes.json")
    body = valid(alexa_user.send(envelope))
    assert body["sessionAttributes"] == {"airportCode": "DAL", "airportName": "Dallas Love Field"}


# -- verification at the endpoint -------------------------------------------------------------------------


def test_unsigned_fixture_is_refused_with_400_and_nothing_runs(client, alexa_channel, services):
    before = session_count(services)
    raw = (FIXTURES / "intent_request_launch.json").read_bytes()
    response = client.post("/alexa", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "signature_missing"
    assert session_count(services) == before


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"SignatureCertChainUrl": "http://s3.amazonaws.com/echo.api/echo-api-cert.pem"}, "bad_cert_url"),
        ({"SignatureCertChainUrl": "https://s3.amazonaws.com:563/echo.api/echo-api-cert.pem"}, "bad_cert_url"),
        ({"Signature-256": "AAAA"}, "bad_signature"),
    ],
)
def test_bad_signatures_are_refused_at_the_endpoint(client, alexa_channel, signing_ca, services, change, code):
    before = session_count(services)
    body = alexa_body(load_fixture("alexa", "intent_request_launch.json"))
    headers = {**signing_ca.signed_headers(body), **change}
    response = client.post("/alexa", data=body, headers=headers, content_type="application/json")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert session_count(services) == before


def test_stale_and_foreign_requests_are_refused_at_the_endpoint(client, alexa_channel, signing_ca):
    fixture = load_fixture("alexa", "intent_request_launch.json")
    for body, code in (
        ((FIXTURES / "intent_request_launch.json").read_bytes(), "stale_request"),
        (alexa_body(fixture, skill_id="amzn1.ask.skill.other"), "wrong_application"),
    ):
        response = client.post(
            "/alexa", data=body, headers=signing_ca.signed_headers(body), content_type="application/json"
        )
        assert response.status_code == 400 and response.get_json()["error"]["code"] == code


def test_verification_is_on_by_default_and_refuses_without_a_skill_id(client):
    # The shared app has no MINWON_ALEXA_SKILL_ID and uses Amazon's real roots: nothing gets through.
    body = alexa_body(load_fixture("alexa", "intent_request_launch.json"))
    response = client.post(
        "/alexa", data=body, headers={"SignatureCertChainUrl": CERT_URL}, content_type="application/json"
    )
    assert response.status_code == 400


def test_verification_off_logs_a_warning_at_every_start_and_accepts_raw_fixtures(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    for attempt in range(2):
        caplog.clear()
        settings = Settings.from_env({"MINWON_DEMO": "1", "MINWON_DATA_DIR": str(tmp_path / str(attempt)), "MINWON_ALEXA_VERIFY": "0"})
        app = create_app(settings, start=False)
        assert any("verification is OFF" in r.getMessage() for r in caplog.records)
    raw = (FIXTURES / "intent_request_launch.json").read_bytes()
    body = valid(app.test_client().post("/alexa", data=raw, content_type="application/json"))
    assert "Welcome" in speech(body)


def test_wrong_content_type_and_malformed_body(client, alexa_channel):
    assert client.post("/alexa", data="x", content_type="text/plain").status_code == 415
    assert client.post("/alexa", data=b"{" * 70_000, content_type="application/json").status_code == 413


def test_a_linked_user_with_a_long_user_id_has_it_sealed_for_pushes(alexa_user, services):
    # Real Alexa userIds are longer than a service user id may be, so the service keeps a digest; for the proactive
    # events of notifications (channels/pushes.py) the userId itself is kept, sealed, once the user is linked.
    alexa_user.user_id = "amzn1.ask.account." + secrets.token_hex(110).upper()
    user_id = speaker_user_id("alexa", alexa_user.user_id)
    valid(alexa_user.launch())
    assert services.push_addresses.address_of(user_id) is None  # not linked: not kept
    link(alexa_user, services)
    assert services.push_addresses.address_of(user_id) == alexa_user.user_id
