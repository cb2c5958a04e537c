"""The voice endpoints: /v1/asr (audio → text), /v1/tts (text → WAV), /v1/voice (audio → dialog → audio).

Audio bodies are read from the request stream chunk by chunk and recognised as they arrive, so the
work left when the upload ends is the last chunk and the final result. Models are loaded once per
process by the Services loaders that `install()` registers.
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request

from channels.errors import ApiError, json_object
from channels.native import check_rate, services, turn_from_json
from settings import SUPPORTED_LOCALES
from skills.engine import Reply, Turn
from voice.asr import AsrConfig, AsrError, Expectation, SpeechRecognizer, Transcript
from voice.audio import MAX_BYTES, AudioError, AudioStreamDecoder
from voice.tts import OUTPUT_RATES, SpeechSynthesizer, TtsConfig, TtsError

if TYPE_CHECKING:
    from services import Services

bp = Blueprint("voice", __name__)

READ_CHUNK = 32 * 1024
# Spoken PINs are not echoed back in a header or a body: the transcript shows that digits were heard.
PIN_MASK = "••••"


def install(state: Services) -> None:
    """Register the speech models with the per-process loader (called once by create_app)."""

    def load_asr(s: Services) -> SpeechRecognizer:
        return SpeechRecognizer.load(AsrConfig.from_settings(s.settings))

    def load_tts(s: Services) -> SpeechSynthesizer:
        synthesizer = SpeechSynthesizer(TtsConfig.from_settings(s.settings))
        synthesizer.start()
        return synthesizer

    state.add_loader("asr", load_asr)
    state.add_loader("tts", load_tts)


def _component(name: str) -> Any:
    component = services().components.get(name)
    if component is None:
        raise ApiError(503, "starting", "Speech models are still loading. Please retry.", {"Retry-After": "2"})
    return component


def _locale(value: str | None, default: str | None = None) -> str | None:
    if value is None or value == "":
        return default
    if value not in SUPPORTED_LOCALES:
        raise ApiError(400, "unsupported_locale", "locale must be one of: " + ", ".join(SUPPORTED_LOCALES) + ".")
    return value


def _param(name: str, header: str) -> str | None:
    return request.args.get(name) or request.headers.get(header)


# Commands that change nothing, listened for during open speech (see SpeechRecognizer.start).
SPOTTED_INTENTS = ("help", "cancel", "stop", "repeat")


def _commands(locale: str) -> list[str]:
    examples = services().dialog.matcher.examples
    return [text for intent in SPOTTED_INTENTS for example_locale, text in examples.get(intent, [])
            if example_locale == locale and "{" not in text]


def _recognise_body(recognizer: SpeechRecognizer, locale: str | None, expectation: Expectation,
                    commands: list[str] | None = None) -> Transcript:
    """Decode and recognise the request body as it streams in."""
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise ApiError(413, "audio_too_large", f"audio larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        decoder = AudioStreamDecoder(request.headers.get("Content-Type"))
        stream = recognizer.start(locale, expectation, commands or ())
        while chunk := request.stream.read(READ_CHUNK):
            stream.accept(decoder.feed(chunk))
        stream.accept(decoder.finish())
    except (AudioError, AsrError) as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return stream.finish()


@bp.post("/v1/asr")
def asr() -> Any:
    check_rate()
    recognizer: SpeechRecognizer = _component("asr")
    locale = _locale(request.args.get("locale"), "ko-KR")
    phrases = request.args.getlist("phrase")
    sequence = request.args.get("sequence", "").lower() in {"1", "true", "yes"}
    expectation = Expectation.limited(phrases, sequence) if phrases else Expectation()
    transcript = _recognise_body(recognizer, locale, expectation)
    body = transcript.to_json()
    return jsonify(body)


@bp.post("/v1/tts")
def tts() -> Any:
    state = services()
    body = json_object(state.settings.max_json_bytes)
    check_rate()
    synthesizer: SpeechSynthesizer = _component("tts")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "missing_text", "text must be a non-empty string.")
    locale = _locale(body.get("locale"), "ko-KR")
    rate, sample_rate = body.get("rate"), body.get("sample_rate")
    if rate is not None and not isinstance(rate, int):
        raise ApiError(400, "invalid_rate", "rate must be a whole number of words per minute.")
    if sample_rate is not None and sample_rate not in OUTPUT_RATES:
        raise ApiError(400, "invalid_sample_rate", "sample_rate must be one of " + ", ".join(map(str, OUTPUT_RATES)))
    try:
        wav = synthesizer.synthesize(text, locale, rate=rate, sample_rate=sample_rate)
    except TtsError as exc:
        raise ApiError(exc.status, exc.code, exc.message, {"Retry-After": "1"} if exc.status == 503 else None) from None
    return Response(wav, mimetype="audio/wav")


def _expectation(expected: Any) -> Expectation:
    if expected.mode != "limited" or not expected.phrases:
        return Expectation()
    return Expectation.limited(expected.phrases, sequence=expected.expects == "pin")


def _voice_turn(transcript: Transcript, user_id: str, session_id: str | None, locale: str | None) -> Turn:
    # Validated exactly like a /v1/converse body; that check wants text, so a stand-in is checked when
    # nothing was understood, and the turn then carries the empty text the dialog reprompts on.
    body: dict[str, Any] = {"user_id": user_id, "text": transcript.text or "?", "session_id": session_id,
                            "locale": locale, "request_id": _param("request_id", "X-Idempotency-Key"),
                            "device_id": _param("device_id", "X-Device-Id")}
    turn = turn_from_json({k: v for k, v in body.items() if v is not None}, channel="voice")
    turn.text = transcript.text
    turn.alternatives = list(transcript.alternatives)
    return turn


def _wants_wav() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "audio/wav", "audio/x-wav", "audio/wave"])
    return best is not None and best != "application/json"


@bp.post("/v1/voice")
def voice() -> Any:
    state = services()
    user_id = _param("user_id", "X-User-Id")
    if not user_id:
        raise ApiError(400, "invalid_user_id", "user_id (query) or X-User-Id (header) is required.")
    session_id = _param("session_id", "X-Session-Id")
    locale = _locale(_param("locale", "X-Locale"))
    check_rate(user=user_id, device=_param("device_id", "X-Device-Id"))
    recognizer: SpeechRecognizer = _component("asr")
    synthesizer: SpeechSynthesizer = _component("tts")
    expected = state.dialog.expected_input(session_id, user_id)
    listen_locale = locale or expected.locale
    started = time.perf_counter()
    transcript = _recognise_body(recognizer, listen_locale, _expectation(expected), _commands(listen_locale))
    recognised = time.perf_counter()
    reply: Reply = state.dialog.converse(_voice_turn(transcript, user_id, session_id, locale))
    answered = time.perf_counter()
    pin_step = expected.expects == "pin"
    shown = PIN_MASK if pin_step and transcript.text else transcript.text
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
        response.headers["X-Transcript"] = quote(shown, safe="")
        response.headers["X-Session-Id"] = reply.session_id
        response.headers["X-End-Session"] = "true" if reply.end_session else "false"
        return response
    return jsonify({
        "transcript": shown,
        "understood": transcript.understood,
        "confidence": round(transcript.confidence, 3),
        "asr_mode": transcript.mode,
        # What the recogniser produced before the floor and phrase matching; never shown for a PIN.
        "heard": PIN_MASK if pin_step and transcript.heard else transcript.heard,
        "locale": reply.locale,
        "timings_ms": {"asr": round((recognised - started) * 1000, 1),
                       "dialog": round((answered - recognised) * 1000, 1),
                       "tts": round((time.perf_counter() - answered) * 1000, 1)},
        "response": reply.to_api(),
        "audio_b64": base64.b64encode(wav).decode() if wav else None,
    })


# -- OpenAPI ----------------------------------------------------------------------------------------------

_ERROR = {"$ref": "#/components/schemas/Error"}
_AUDIO_BODY = {
    "required": True,
    "description": "WAV (PCM 8/16/24/32-bit or float, any rate, mono or stereo) or raw big-endian PCM "
                   "declared as audio/L16;rate=N[;channels=2]. At most 30 s and 10 MB; may be sent chunked.",
    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}},
                "audio/L16": {"schema": {"type": "string", "format": "binary"}}},
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}} for c in codes}


def _query(name: str, description: str, schema: dict | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


OPENAPI_COMPONENTS = {
    "AsrResult": {
        "type": "object", "required": ["text", "confidence", "words", "duration_s", "rtf"],
        "properties": {
            "text": {"type": "string", "description": "empty when not understood"},
            "heard": {"type": "string", "description": "the recogniser's output before phrase matching"},
            "confidence": {"type": "number"}, "understood": {"type": "boolean"},
            "mode": {"enum": ["open", "limited"]},
            "words": {"type": "array", "items": {"type": "object", "properties": {
                "word": {"type": "string"}, "start": {"type": "number"}, "end": {"type": "number"},
                "conf": {"type": "number"}}}},
            "alternatives": {"type": "array", "items": {"type": "string"}, "description": "N-best after text"},
            "duration_s": {"type": "number"}, "decode_s": {"type": "number"}, "rtf": {"type": "number"},
        },
    },
    "TtsRequest": {
        "type": "object", "required": ["text"],
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 1000},
            "locale": {"type": "string", "enum": list(SUPPORTED_LOCALES)},
            "rate": {"type": "integer", "minimum": 80, "maximum": 450, "description": "words per minute"},
            "sample_rate": {"type": "integer", "enum": list(OUTPUT_RATES)},
        },
    },
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
    "/v1/asr": {"post": {
        "summary": "Speech recognition: audio in, transcript with confidence, word timings and N-best out.",
        "parameters": [
            _query("locale", "ko-KR (default) or en-US"),
            _query("phrase", "an expected phrase; repeat it for several: recognition is then limited to them",
                   {"type": "array", "items": {"type": "string"}}),
            _query("sequence", "true: accept a run of the phrases (PIN digits)", {"type": "boolean"}),
        ],
        "requestBody": _AUDIO_BODY,
        "responses": {
            "200": {"description": "the transcript", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/AsrResult"}}}},
            **_errors(400, 413, 415, 422, 429, 503),
        },
    }},
    "/v1/tts": {"post": {
        "summary": "Speech synthesis: text in, 16-bit mono WAV out.",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/TtsRequest"}}}},
        "responses": {
            "200": {"description": "speech", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
            **_errors(400, 413, 415, 429, 503),
        },
    }},
    "/v1/voice": {"post": {
        "summary": "One spoken dialog turn: recognises the audio (in the mode the dialog expects), runs the "
                   "same dialog as /v1/converse and speaks the reply.",
        "parameters": [
            _query("user_id", "required (or header X-User-Id)"),
            _query("session_id", "or header X-Session-Id"),
            _query("locale", "or header X-Locale"),
            _query("request_id", "or header X-Idempotency-Key: a retry returns the same reply"),
            _query("device_id", "or header X-Device-Id"),
        ],
        "requestBody": _AUDIO_BODY,
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
            **_errors(400, 413, 415, 422, 429, 503),
        },
    }},
}
