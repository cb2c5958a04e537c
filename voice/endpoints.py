"""The speech endpoints: /v1/asr (audio → text) and /v1/tts (text → WAV).

Audio bodies are read from the request stream chunk by chunk and recognised as they arrive, so the
work left when the upload ends is the last chunk and the final result. The models are loaded once per
process by the loaders `services.py` registers; `model(name)` answers 503 until they are ready.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from http_api import (
    ApiError,
    check_rate,
    error_responses,
    is_json_integer,
    json_object,
    locale_schema,
    parse_locale,
    services,
)
from settings import parse_flag
from voice.asr import AsrError, Expectation, SpeechRecognizer, Transcript
from voice.audio import MAX_BYTES, AudioError, AudioStreamDecoder
from voice.tts import OUTPUT_RATES, SpeechSynthesizer, TtsError

bp = Blueprint("voice", __name__)

READ_CHUNK = 32 * 1024
# Each phrase is segmented into the model's vocabulary and compiled into a grammar per request (the cache
# does not help against phrase sets that change each time), so a client may not ask for unbounded work.
MAX_PHRASES = 50
MAX_PHRASE_CHARS = 100


def model(name: str) -> Any:
    """A loaded speech component ("asr" or "tts"), or a 503 while the models are still loading."""
    component = services().components.get(name)
    if component is None:
        raise ApiError(503, "starting", "Speech models are still loading. Please retry.", {"Retry-After": "2"})
    return component


def recognise_body(recognizer: SpeechRecognizer, locale: str | None, expectation: Expectation,
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
    recognizer: SpeechRecognizer = model("asr")
    locale = parse_locale(request.args.get("locale"), "ko-KR")
    phrases = request.args.getlist("phrase")
    if len(phrases) > MAX_PHRASES:
        raise ApiError(400, "too_many_phrases", f"Send at most {MAX_PHRASES} phrase parameters.")
    if any(len(phrase) > MAX_PHRASE_CHARS for phrase in phrases):
        raise ApiError(400, "phrase_too_long", f"Each phrase must be at most {MAX_PHRASE_CHARS} characters.")
    sequence = parse_flag(request.args.get("sequence"), False)
    expectation = Expectation.limited(phrases, sequence) if phrases else Expectation()
    transcript = recognise_body(recognizer, locale, expectation)
    body = transcript.to_json()
    return jsonify(body)


@bp.post("/v1/tts")
def tts() -> Any:
    body = json_object()
    check_rate()
    synthesizer: SpeechSynthesizer = model("tts")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "missing_text", "text must be a non-empty string.")
    locale = parse_locale(body.get("locale"), "ko-KR")
    rate, sample_rate = body.get("rate"), body.get("sample_rate")
    # JSON true is a Python int and 16000.0 equals 16000, so both pass a plain isinstance or `in` test;
    # neither is a whole number of the kind the synthesiser and the WAV writer need.
    if rate is not None and not is_json_integer(rate):
        raise ApiError(400, "invalid_rate", "rate must be a whole number of words per minute.")
    if sample_rate is not None and (not is_json_integer(sample_rate) or sample_rate not in OUTPUT_RATES):
        raise ApiError(400, "invalid_sample_rate", "sample_rate must be one of " + ", ".join(map(str, OUTPUT_RATES)))
    try:
        wav = synthesizer.synthesize(text, locale, rate=rate, sample_rate=sample_rate)
    except TtsError as exc:
        raise ApiError(exc.status, exc.code, exc.message, {"Retry-After": "1"} if exc.status == 503 else None) from None
    return Response(wav, mimetype="audio/wav")


# -- OpenAPI ----------------------------------------------------------------------------------------------

AUDIO_BODY = {
    "required": True,
    "description": "WAV (PCM 8/16/24/32-bit or float, any rate, mono or stereo) or raw big-endian PCM "
                   "declared as audio/L16;rate=N[;channels=2]. At most 30 s and 10 MB; may be sent chunked.",
    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}},
                "audio/L16": {"schema": {"type": "string", "format": "binary"}}},
}



def query_parameter(name: str, description: str, schema: dict | None = None) -> dict[str, Any]:
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
            "text": {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S",
                     "description": "Not only white space."},
            "locale": locale_schema(),
            "rate": {"type": "integer", "minimum": 80, "maximum": 450, "description": "words per minute"},
            "sample_rate": {"type": "integer", "enum": list(OUTPUT_RATES)},
        },
    },
}

OPENAPI_PATHS = {
    "/v1/asr": {"post": {
        "summary": "Speech recognition: audio in, transcript with confidence, word timings and N-best out.",
        "parameters": [
            query_parameter("locale", "ko-KR (default) or en-US", locale_schema("ko-KR")),
            query_parameter("phrase", "an expected phrase; repeat it for several: recognition is then limited to "
                            f"them. At most {MAX_PHRASES} phrases of {MAX_PHRASE_CHARS} characters each.",
                            {"type": "array", "maxItems": MAX_PHRASES,
                             "items": {"type": "string", "maxLength": MAX_PHRASE_CHARS}}),
            query_parameter("sequence", "true: accept a run of the phrases (PIN digits)", {"type": "boolean"}),
        ],
        "requestBody": AUDIO_BODY,
        "responses": {
            "200": {"description": "the transcript", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/AsrResult"}}}},
            **error_responses(400, 413, 415, 422, 429, 503),
        },
    }},
    "/v1/tts": {"post": {
        "summary": "Speech synthesis: text in, 16-bit mono WAV out.",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/TtsRequest"}}}},
        "responses": {
            "200": {"description": "speech", "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
            **error_responses(400, 413, 415, 429, 503),
        },
    }},
}
