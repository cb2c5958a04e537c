"""The native voice channel: /v1/voice — one spoken dialog turn (audio → recognition → dialog → speech).

The recogniser listens in the mode the dialog expects (yes/no, PIN digits, a slot's choices, or open
speech with the commands that change nothing spotted), and the reply is spoken by the same synthesiser
as /v1/tts.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request

from channels.native import identifier, identifier_schema, speaker_principal
from http_api import ApiError, check_rate, client_address, error_responses, locale_schema, parse_locale, services
from skills.engine import Reply, Turn
from voice.asr import Expectation, SpeechRecognizer, Transcript
from voice.commands import command_phrases
from voice.endpoints import AUDIO_BODY, model, query_parameter, recognise_body
from voice.tts import SpeechSynthesizer, TtsError

bp = Blueprint("voice_channel", __name__)

# Spoken PINs are not echoed back in a header or a body: the transcript shows that digits were heard.
PIN_MASK = "••••"


def _param(name: str, header: str) -> str | None:
    return request.args.get(name) or request.headers.get(header)


def _expectation(expected: Any) -> Expectation:
    if expected.mode != "limited" or not expected.phrases:
        return Expectation()
    return Expectation.limited(expected.phrases, sequence=expected.expects == "pin")




def _wants_wav() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "audio/wav", "audio/x-wav", "audio/wave"])
    return best is not None and best != "application/json"


def voice_expectation(expected: Any) -> tuple[Expectation, bool]:
    """What to listen for on this turn, and whether it is the PIN step (whose digits are never echoed)."""
    return _expectation(expected), expected.expects == "pin"


def answer_transcript(transcript: Transcript, *, user_id: str, session_id: str | None, locale: str | None,
                      device_id: str | None, request_id: str | None, pin_step: bool) -> tuple[Reply, dict[str, Any]]:
    """Runs the dialog turn on what was recognised (the same turn as /v1/converse): the reply, and the JSON
    body /v1/voice and /v1/voice/stream share (without the audio and timings)."""
    turn = Turn(user_id=user_id, text=transcript.text, session_id=session_id, locale=locale, channel="voice",
                device_id=device_id, request_id=request_id, origin=client_address(),
                alternatives=list(transcript.alternatives))
    reply: Reply = services().dialog.converse(turn)
    return reply, {
        "transcript": PIN_MASK if pin_step and transcript.text else transcript.text,
        "understood": transcript.understood,
        "confidence": round(transcript.confidence, 3),
        "asr_mode": transcript.mode,
        # What the recogniser produced before the floor and phrase matching; never shown for a PIN.
        "heard": PIN_MASK if pin_step and transcript.heard else transcript.heard,
        "locale": reply.locale,
        "response": reply.to_api(),
    }


@bp.post("/v1/voice")
def voice() -> Any:
    state = services()
    # Who is calling is settled before a byte of audio is decoded.
    session_id = identifier(_param("session_id", "X-Session-Id"), "session_id")
    request_id = identifier(_param("request_id", "X-Idempotency-Key"), "request_id")
    device_id = identifier(_param("device_id", "X-Device-Id"), "device_id")
    user_id = speaker_principal(identifier(_param("user_id", "X-User-Id"), "user_id"), session_id)
    locale = parse_locale(_param("locale", "X-Locale"))
    check_rate(user=user_id, device=device_id)
    recognizer: SpeechRecognizer = model("asr")
    synthesizer: SpeechSynthesizer = model("tts")
    expected = state.dialog.expected_input(session_id, user_id)
    listen_locale = locale or expected.locale
    expectation, pin_step = voice_expectation(expected)
    started = time.perf_counter()
    transcript = recognise_body(recognizer, listen_locale, expectation, command_phrases(listen_locale))
    recognised = time.perf_counter()
    reply, body = answer_transcript(transcript, user_id=user_id, session_id=session_id, locale=locale,
                                    device_id=device_id, request_id=request_id, pin_step=pin_step)
    answered = time.perf_counter()
    wants_wav = _wants_wav()
    try:
        wav = synthesizer.synthesize(reply.speech, reply.locale) if reply.speech else b""
    except TtsError as exc:
        if wants_wav:
            raise ApiError(503, exc.code, "The reply could not be spoken. Retry with the same request_id.",
                           {"Retry-After": "1"}) from None
        wav = b""
    if wants_wav:
        response = Response(wav, mimetype="audio/wav")
        response.headers["X-Transcript"] = quote(body["transcript"], safe="")
        response.headers["X-Session-Id"] = reply.session_id
        response.headers["X-End-Session"] = "true" if reply.end_session else "false"
        return response
    return jsonify({
        **body,
        "timings_ms": {"asr": round((recognised - started) * 1000, 1),
                       "dialog": round((answered - recognised) * 1000, 1),
                       "tts": round((time.perf_counter() - answered) * 1000, 1)},
        "audio_b64": base64.b64encode(wav).decode() if wav else None,
    })


# -- OpenAPI ----------------------------------------------------------------------------------------------

OPENAPI_COMPONENTS = {
    "VoiceResponse": {
        "type": "object", "required": ["transcript", "response", "audio_b64"],
        "properties": {
            "transcript": {"type": "string"}, "understood": {"type": "boolean"},
            "confidence": {"type": "number"}, "asr_mode": {"enum": ["open", "limited"]},
            "heard": {"type": "string", "description": "the recogniser's output before the confidence floor and "
                                                       "phrase matching (masked during the PIN step)"},
            "locale": {"type": "string"},
            "timings_ms": {"type": "object", "description": "time spent in recognition, dialog and synthesis",
                           "properties": {"asr": {"type": "number"}, "dialog": {"type": "number"},
                                          "tts": {"type": "number"}}},
            "response": {"$ref": "#/components/schemas/ConverseResponse"},
            "audio_b64": {"type": ["string", "null"], "description": "the reply as a base64 WAV"},
        },
    },
}


OPENAPI_PATHS = {
    "/v1/voice": {"post": {
        "summary": "One spoken dialog turn: recognises the audio (in the mode the dialog expects), runs the "
                   "same dialog as /v1/converse and speaks the reply.",
        "description": "Who is speaking comes from the device token (Bearer), checked before the audio is read; "
                       "without one the turn is anonymous, as on /v1/converse.",
        "security": [{"DeviceToken": []}, {}],
        "parameters": [
            query_parameter("user_id", "optional (or header X-User-Id); must be the device token's user",
                            identifier_schema()),
            query_parameter("session_id", "or header X-Session-Id", identifier_schema()),
            query_parameter("locale", "or header X-Locale", locale_schema()),
            query_parameter("request_id", "or header X-Idempotency-Key: a retry returns the same reply",
                            identifier_schema()),
            query_parameter("device_id", "or header X-Device-Id", identifier_schema()),
        ],
        "requestBody": AUDIO_BODY,
        "responses": {
            "200": {
                "description": "Accept: application/json (default) gives the transcript, the converse response "
                               "and the spoken reply; Accept: audio/wav gives the WAV with the transcript in "
                               "X-Transcript (percent-encoded), X-Session-Id and X-End-Session.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/VoiceResponse"}},
                    "audio/wav": {"schema": {"type": "string", "format": "binary"}},
                },
                "headers": {
                    "X-Transcript": {"schema": {"type": "string"}, "description": "percent-encoded UTF-8"},
                    "X-Session-Id": {"schema": {"type": "string"}},
                    "X-End-Session": {"schema": {"type": "string", "enum": ["true", "false"]}},
                },
            },
            **error_responses(400, 401, 403, 413, 415, 422, 429, 503),
        },
    }},
}
