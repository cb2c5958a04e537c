"""Fixtures for the speaker-platform tests: the test signing CA, a verified Alexa channel, and a probe skill.

The probe skill exists because the certificate and consent skills belong to another issue: the channel
tests need one intent that reads personal data (PIN step-up, account linking) and one that changes
something after a confirmation. It runs inside the real dialog engine, with the engine's own
``require_personal`` and ``ask_confirmation``, so what the channels are tested against is the engine's
behaviour, not the probe's.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.alexa.verification import AlexaRequestVerifier
from channels.alexa.webhook import AlexaChannel
from skills.engine import DialogContext, Reply, nothing_changed
from tests.channels.signing_ca import SKILL_ID, SigningCA, alexa_body
from tests.conftest import routed_phrases

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speakers"
DEMO_CITIZEN, DEMO_PIN = "citizen-0001", "1357"  # demo-user-ko's citizen in data/demo.yaml


def load_fixture(platform: str, name: str) -> dict:
    return json.loads((FIXTURES / platform / name).read_text(encoding="utf-8"))


class ChannelProbeSkill:
    name = "channel_probe"
    intents = ("probe_record", "probe_change")
    examples = {
        "probe_record": [("ko-KR", "채널 시험 기록 알려줘"), ("en-US", "read my channel probe record")],
        "probe_change": [("ko-KR", "채널 시험 설정 바꿔줘"), ("en-US", "change my channel probe setting")],
    }

    def __init__(self) -> None:
        self.changes: list[str] = []

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent in self.intents

    def handle(self, ctx: DialogContext) -> Reply:
        gate = ctx.require_personal()
        if gate is not None:
            return gate
        if ctx.intent == "probe_record":
            return ctx.say("시험 기록은 세 건이에요.", "Your probe record has three entries.", title="Probe")
        return ctx.ask_confirmation("시험 설정을 바꿀까요?", "Shall I change your probe setting?", {"setting": "probe"})

    def confirmed(self, ctx: DialogContext, action: dict) -> Reply:
        self.changes.append(ctx.citizen.id if ctx.citizen else "")
        return ctx.say("시험 설정을 바꿨어요.", "Done. Your probe setting is changed.")

    def declined(self, ctx: DialogContext, action: dict) -> Reply:
        return nothing_changed(ctx)


@pytest.fixture(scope="module")
def probe(services) -> Iterator[ChannelProbeSkill]:
    engine = services.dialog
    skill = ChannelProbeSkill()
    saved_skills = list(engine.skills)
    engine.add_skill(skill)
    phrases = {intent: [text for _, text in examples] for intent, examples in skill.examples.items()}
    with routed_phrases(engine.router, phrases):
        yield skill
    engine.skills[:] = saved_skills


@pytest.fixture(scope="session")
def signing_ca() -> SigningCA:
    return SigningCA.create()


@pytest.fixture
def alexa_channel(app, signing_ca, monkeypatch) -> AlexaChannel:
    """The app's Alexa channel, verifying against the test CA (served by an in-memory fetcher) and skill id."""
    current: AlexaChannel = app.extensions["minwon_alexa"]
    pem = signing_ca.chain_pem()
    channel = AlexaChannel(
        verify=True,
        verifier=AlexaRequestVerifier(SKILL_ID, trust_roots=[signing_ca.root], fetch_certificate=lambda url: pem),
        catalog=current.catalog,
    )
    monkeypatch.setitem(app.extensions, "minwon_alexa", channel)
    return channel


class AlexaUser:
    """One Alexa user talking to the skill through signed requests, one session at a time."""

    def __init__(self, client, ca: SigningCA) -> None:
        self.client = client
        self.ca = ca
        self.user_id = "amzn1.ask.account.TEST" + secrets.token_hex(6).upper()
        self.session_id = "amzn1.echo-api.session." + secrets.token_hex(8)
        self.attributes: dict = {}

    def envelope(self, request: dict, new: bool = False) -> dict:
        envelope = load_fixture("alexa", "intent_request_launch.json")
        envelope["session"].update(new=new, sessionId=self.session_id, attributes=self.attributes)
        envelope["session"]["user"]["userId"] = self.user_id
        envelope["context"]["System"]["user"]["userId"] = self.user_id
        envelope["request"] = {
            "requestId": "amzn1.echo-api.request." + secrets.token_hex(8),
            "locale": "en-US",
            **request,
        }
        return envelope

    def send(self, envelope: dict):
        body = alexa_body(envelope)
        return self.client.post(
            "/alexa", data=body, headers=self.ca.signed_headers(body), content_type="application/json"
        )

    def launch(self):
        return self.send(self.envelope({"type": "LaunchRequest"}, new=True))

    def intent(self, name: str, **slots: str):
        intent = {
            "name": name,
            "confirmationStatus": "NONE",
            "slots": {k: {"name": k, "value": v, "confirmationStatus": "NONE"} for k, v in slots.items()},
        }
        response = self.send(self.envelope({"type": "IntentRequest", "intent": intent}))
        body = response.get_json()
        if response.status_code == 200 and "sessionAttributes" in body:
            self.attributes = body["sessionAttributes"]
        return response

    def ask(self, words: str):
        return self.intent("AskQuestionIntent", query=words)

    def end(self, reason: str = "USER_INITIATED"):
        return self.send(self.envelope({"type": "SessionEndedRequest", "reason": reason}))


@pytest.fixture
def alexa_user(client, signing_ca, alexa_channel) -> AlexaUser:
    return AlexaUser(client, signing_ca)
