"""The platform response schemas themselves: they accept the platforms' documented examples and refuse
what the platforms refuse (so that a contract test passing against them means something)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.schemas import response_validator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speakers"


def errors(platform: str, body: dict) -> list[str]:
    return [e.message for e in response_validator(platform).iter_errors(body)]


ALEXA_OK = {
    "version": "1.0",
    "sessionAttributes": {"turn": 1},
    "response": {
        "outputSpeech": {"type": "SSML", "ssml": "<speak>Welcome to Minwon.</speak>"},
        "reprompt": {"outputSpeech": {"type": "SSML", "ssml": "<speak>What would you like?</speak>"}},
        "card": {"type": "Simple", "title": "Minwon", "content": "Welcome"},
        "shouldEndSession": False,
    },
}


def test_alexa_documented_shape_is_valid():
    assert errors("alexa", ALEXA_OK) == []
    assert errors("alexa", {"version": "1.0", "response": {}}) == []  # SessionEndedRequest answer


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["response"]["outputSpeech"].update(ssml="Welcome without speak tags"),
        lambda b: b["response"]["outputSpeech"].update(type="Markdown"),
        lambda b: b["response"]["card"].pop("content"),
        lambda b: b["response"].update(shouldEndSession="no"),
        lambda b: b.update(version="2.0"),
        lambda b: b["response"].update(directives=[{"type": "Dialog.Delegate"}]),  # delegate with speech
        lambda b: b["response"].update(directives=[{"type": "Dialog.ElicitSlot"}]),  # no slotToElicit
        lambda b: b["response"]["outputSpeech"].update(ssml="<speak>" + "a" * 8000 + "</speak>"),
    ],
)
def test_alexa_schema_refuses_malformed_responses(mutate):
    body = json.loads(json.dumps(ALEXA_OK))
    mutate(body)
    assert errors("alexa", body)


def test_alexa_delegate_without_speech_is_valid():
    body = {
        "version": "1.0",
        "response": {"directives": [{"type": "Dialog.Delegate"}], "shouldEndSession": False},
    }
    assert errors("alexa", body) == []


KAKAO_OK = {
    "version": "2.0",
    "template": {
        "outputs": [{"simpleText": {"text": "주민등록등본은 정부24에서 발급할 수 있어요."}}],
        "quickReplies": [
            {"label": "네", "action": "message", "messageText": "네"},
            {"label": "아니요", "action": "message", "messageText": "아니요"},
        ],
    },
}


def test_kakao_documented_shapes_are_valid():
    assert errors("kakao", KAKAO_OK) == []
    assert errors("kakao", {"version": "2.0", "useCallback": True, "data": {"text": "잠시만요"}}) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["template"].update(outputs=[{"simpleText": {"text": "x"}}] * 4),
        lambda b: b["template"].update(outputs=[]),
        lambda b: b["template"].update(
            quickReplies=[{"label": str(i), "action": "message", "messageText": str(i)} for i in range(11)]
        ),
        lambda b: b["template"]["quickReplies"][0].pop("messageText"),
        lambda b: b["template"]["quickReplies"][0].update(label="열다섯 글자를 넘는 아주 긴 빠른 응답 라벨"),
        lambda b: b["template"]["outputs"][0]["simpleText"].update(text="가" * 1001),
        lambda b: b["template"]["outputs"].append({"simpleText": {"text": "a"}, "textCard": {"title": "b"}}),
        lambda b: b.update(version="1.0"),
        lambda b: b.update(useCallback=True),  # a callback answer carries no template
        lambda b: b.pop("template"),
    ],
)
def test_kakao_schema_refuses_malformed_responses(mutate):
    body = json.loads(json.dumps(KAKAO_OK))
    mutate(body)
    assert errors("kakao", body)


@pytest.mark.parametrize("name", ["backend_proxy_response_ok.json", "backend_proxy_response_exception.json"])
def test_nugu_documented_responses_are_valid(name):
    body = json.loads((FIXTURES / "nugu" / name).read_text(encoding="utf-8"))
    assert errors("nugu", body) == []


@pytest.mark.parametrize(
    "body",
    [
        {"version": "2.0", "output": {}, "directives": []},  # no resultCode
        {"version": "2.0", "resultCode": "OK", "output": {"ment": {"nested": "no"}}, "directives": []},
        {"version": "1.0", "resultCode": "OK", "output": {}, "directives": []},
        {"version": "2.0", "resultCode": "OK", "output": {}, "directives": [{"no": "type"}]},
        {"version": "2.0", "resultCode": "", "output": {}},
    ],
)
def test_nugu_schema_refuses_malformed_responses(body):
    assert errors("nugu", body)


def test_unknown_platform_has_no_schema():
    with pytest.raises(ValueError):
        response_validator("clova")
