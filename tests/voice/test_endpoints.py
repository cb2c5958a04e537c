"""The voice endpoints over HTTP: /v1/asr, /v1/tts and /v1/voice, with the real models and dialog."""

from __future__ import annotations

import base64
from urllib.parse import unquote

import numpy as np
import pytest
import requests

from skills.engine import DialogContext, Reply, nothing_changed
from tests.conftest import device_token, routed_phrases
from voice.audio import decode_audio, encode_wav

from .test_audio import tone, wav_bytes

WAV = {"Content-Type": "audio/wav"}


def error_of(response) -> tuple[int, str]:
    body = response.get_json()
    assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
    return response.status_code, body["error"]["code"]


# --- /v1/asr -------------------------------------------------------------------------------------

def test_asr_returns_text_confidence_words_duration_and_rtf(client, speak_wav):
    response = client.post("/v1/asr", data=speak_wav("주민등록등본은 어떻게 발급받나요"), headers=WAV)
    assert response.status_code == 200
    body = response.get_json()
    assert body["mode"] == "open" and body["heard"]
    assert {"text", "confidence", "words", "duration_s", "rtf", "alternatives"} <= set(body)
    assert body["duration_s"] > 1 and 0 < body["rtf"] < 5
    assert body["words"] and {"word", "start", "end", "conf"} == set(body["words"][0])


def test_asr_limited_to_given_phrases(client, speak_wav):
    response = client.post("/v1/asr?phrase=예&phrase=아니요&phrase=네", data=speak_wav("아니요"), headers=WAV)
    body = response.get_json()
    assert body["mode"] == "limited" and body["understood"] and body["text"] == "아니요"


def test_asr_accepts_raw_l16_at_a_declared_rate(client, speak):
    samples = speak("네")
    response = client.post("/v1/asr?phrase=예&phrase=네&phrase=아니요", data=samples.astype(">i2").tobytes(),
                           headers={"Content-Type": "audio/L16;rate=16000"})
    assert response.get_json()["text"] in {"예", "네"}


BAD = [
    (b"hello, this is text", "audio/wav", 400, "not_audio"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", 400, "corrupt_audio"),
    (b"", "audio/wav", 400, "empty_audio"),
    (encode_wav(np.zeros(16000, np.int16), 16000), "audio/wav", 400, "silent_audio"),
    (wav_bytes(tone(300, 8000, 31.0), 8000), "audio/wav", 413, "audio_too_long"),
    (wav_bytes(tone(300, 16000, 1.0), 16000, fmt_tag=0x55), "audio/wav", 415, "unsupported_audio"),
    (wav_bytes(tone(300, 16000, 1.0), 16000), "audio/mpeg", 415, "unsupported_audio"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code"), BAD)
def test_bad_audio_gets_its_status_and_a_json_error(client, body, content_type, status, code):
    for path in ("/v1/asr", "/v1/voice"):
        response = client.post(path, data=body, headers={"Content-Type": content_type})
        assert error_of(response) == (status, code), path


def test_a_body_over_10_mb_is_refused_as_too_large(client):
    response = client.post("/v1/asr", data=bytes(10 * 1024 * 1024 + 10), headers={"Content-Type": "audio/L16;rate=16000"})
    assert error_of(response) == (413, "audio_too_large")


def test_a_locale_without_a_model_is_422(client, speak_wav):
    response = client.post("/v1/asr?locale=en-US", data=speak_wav("hello", "en"), headers=WAV)
    assert error_of(response) == (422, "asr_locale_unsupported")
    assert "MINWON_ASR_MODEL_EN" in response.get_json()["error"]["message"]


def test_chunked_upload_is_recognised_as_it_streams(live_server, speak_wav):
    wav = speak_wav("아니요")

    def chunks():
        for i in range(0, len(wav), 4096):
            yield wav[i:i + 4096]

    response = requests.post(f"{live_server}/v1/asr?phrase=예&phrase=아니요", data=chunks(), headers=WAV, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["text"] == "아니요"


# --- /v1/tts -------------------------------------------------------------------------------------

def test_tts_returns_wav_of_the_text(client):
    response = client.post("/v1/tts", json={"text": "도움말입니다", "locale": "ko-KR", "sample_rate": 16000})
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    audio = decode_audio(response.data, "audio/wav")
    assert audio.source.rate == 16000 and audio.source.bits == 16 and audio.duration_s > 0.4


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"json": {"text": ""}}, 400, "missing_text"),
    ({"json": {"text": "안녕", "locale": "fr-FR"}}, 400, "unsupported_locale"),
    ({"json": {"text": "안녕", "sample_rate": 12345}}, 400, "invalid_sample_rate"),
    ({"json": {"text": "!!!"}}, 400, "bad_tts_request"),
    ({"data": "text", "content_type": "text/plain"}, 415, "unsupported_media_type"),
])
def test_tts_bad_requests(client, kwargs, status, code):
    assert error_of(client.post("/v1/tts", **kwargs)) == (status, code)


# --- /v1/voice -----------------------------------------------------------------------------------

def test_spoken_help_returns_korean_help_speech_as_audio(client, speak_wav):
    # Anonymous: public help needs no device token.
    response = client.post("/v1/voice", data=speak_wav("도움말"), headers={**WAV, "Accept": "audio/wav"})
    assert response.status_code == 200 and response.mimetype == "audio/wav"
    assert unquote(response.headers["X-Transcript"]) == "도움말"
    assert response.headers["X-End-Session"] == "false" and response.headers["X-Session-Id"]
    assert decode_audio(response.data, "audio/wav").duration_s > 2
    # The same turn as JSON: the converse response says what the audio says.
    body = client.post("/v1/voice", data=speak_wav("도움말"), headers=WAV).get_json()
    assert body["response"]["intent"] == "help"
    assert any("\uac00" <= ch <= "\ud7a3" for ch in body["response"]["speech"])
    assert decode_audio(base64.b64decode(body["audio_b64"]), "audio/wav").duration_s > 2


class ConfirmSkill:
    """Needs the PIN, then asks for a yes or a no before it does anything."""

    name = "voice-probe"
    intents = ("voice_probe",)

    def __init__(self) -> None:
        self.done: list[str] = []

    def can_handle(self, ctx: DialogContext) -> bool:
        return ctx.intent == "voice_probe"

    def handle(self, ctx: DialogContext) -> Reply:
        if gate := ctx.require_personal():
            return gate
        return ctx.ask_confirmation("보낼까요?", "Shall I send it?", {"what": "등본"})

    def confirmed(self, ctx: DialogContext, action: dict) -> Reply:
        self.done.append(action["what"])
        return ctx.say("보냈어요.", "Sent.")

    def declined(self, ctx: DialogContext, action: dict) -> Reply:
        return nothing_changed(ctx)


@pytest.fixture()
def confirm_skill(services):
    skill = ConfirmSkill()
    services.dialog.add_skill(skill)
    with routed_phrases(services.dialog.router, {"voice_probe": ["음성시험"]}):
        yield skill
    services.dialog.skills.remove(skill)


def test_pin_then_yes_by_voice_in_limited_mode(client, services, new_citizen, confirm_skill, speak_wav):
    _, user = new_citizen(pin="5342")
    auth = {"Authorization": "Bearer " + device_token(services, user)}
    first = client.post("/v1/converse", json={"text": "음성시험"}, headers=auth).get_json()
    assert first["expects"] == "pin"
    session = first["session_id"]
    assert services.dialog.expected_input(session, user).expects == "pin"

    pin = client.post(f"/v1/voice?session_id={session}", data=speak_wav("오 삼 사 이"),
                      headers={**WAV, **auth}).get_json()
    assert pin["asr_mode"] == "limited" and pin["understood"]
    assert pin["transcript"] == "••••"          # a spoken PIN is not echoed back
    assert pin["response"]["expects"] == "confirmation"

    # Speech that is not an answer is not taken as one: the question stays, nothing is done.
    other = client.post(f"/v1/voice?session_id={session}", data=speak_wav("주민등록등본 발급"),
                        headers={**WAV, **auth}).get_json()
    assert not other["understood"] and other["response"]["expects"] == "confirmation"
    assert confirm_skill.done == []

    yes = client.post(f"/v1/voice?session_id={session}", data=speak_wav("예"),
                      headers={**WAV, **auth, "Accept": "audio/wav"})
    assert yes.status_code == 200 and unquote(yes.headers["X-Transcript"]) in {"예", "네"}
    assert confirm_skill.done == ["등본"]


def test_voice_checks_who_is_calling_before_it_reads_the_audio(client):
    # Not audio at all: had it been decoded first, this would be a 400/415 about the audio.
    garbage, kind = b"not audio", {"Content-Type": "application/octet-stream"}
    response = client.post("/v1/voice?user_id=demo-user-ko", data=garbage, headers=kind)
    assert error_of(response) == (401, "device_token_required")
    response = client.post("/v1/voice", data=garbage, headers={**kind, "Authorization": "Bearer forged"})
    assert error_of(response) == (401, "invalid_device_token")
