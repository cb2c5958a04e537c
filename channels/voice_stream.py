"""Streaming voice: `GET /v1/voice/stream` (WebSocket), the Vosk WebSocket protocol plus an optional dialog turn.

Without query parameters it is a vosk-server: config, binary PCM, eof; partials and results (voice/streaming.py).
With `?dialog=1` (and `locale`, `session_id`, `request_id`, `device_id`, the device token as on /v1/voice) the
stream is one spoken turn: recognition listens in the mode the dialog expects, and after the final result the
server sends the reply (/v1/voice's JSON, with `sentences`), then the reply's audio as one binary WAV frame per
sentence, so the first sentence can play while the rest is synthesised, then closes with 1000.
`hands_free=1` ends the turn on the server's endpointing without waiting for eof.

Everything that can be refused with an HTTP status (token, rate, parameters, models still loading) is checked
before the upgrade; after it, failures are a JSON error frame and a close code (voice/streaming.py). A worker
decodes at most MINWON_STREAM_LIMIT streams at once; one more is told it is busy (spoken, in dialog mode) and
closed with 1013 at once. Each stream holds one server thread for its life: under gunicorn use the gthread
worker with more threads than the stream limit (`--threads 8`, the default of `make serve-prod`).

The WebSocket itself is simple-websocket's, on the socket the server hands over (werkzeug's development server or
gunicorn's). Once the stream is over, nothing more may be written on that socket: flask-sock (0.7.0) lets the
development server write an HTTP response after the close frame, which Chromium reports as an invalid frame, so
this route hands the socket over itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, request
from simple_websocket import ConnectionClosed, Server

from channels.native import identifier, identifier_schema, speaker_principal
from channels.voice import answer_transcript, voice_expectation
from http_api import WEBSOCKET_SUBPROTOCOL, ApiError, check_rate, error_responses, locale_schema, parse_locale, services
from settings import parse_flag
from voice.asr import SpeechRecognizer
from voice.commands import command_phrases
from voice.endpoints import model, query_parameter
from voice.streaming import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    CLOSE_TIMEOUT,
    CLOSE_TRY_AGAIN,
    StreamError,
    StreamLimits,
    StreamSession,
    StreamSlots,
)
from voice.tts import SpeechSynthesizer, TtsError, split_sentences

log = logging.getLogger(__name__)

bp = Blueprint("voice_stream", __name__)
PATH = "/v1/voice/stream"
SLOTS_KEY = "minwon_streams"
CLOSE_WAIT_S = 2.0

BUSY_SPEECH = {"ko": "지금은 요청이 많아 답해 드릴 수 없어요. 잠시 뒤에 다시 말씀해 주세요.",
               "en": "I'm busy right now. Please try again in a moment."}


@bp.record_once
def _configure(setup: Any) -> None:
    app = setup.app
    limits = StreamLimits.from_settings(app.extensions["minwon"].settings)
    app.extensions[SLOTS_KEY] = (limits, StreamSlots(limits.per_worker))


def stream_slots() -> tuple[StreamLimits, StreamSlots]:
    return current_app.extensions[SLOTS_KEY]


@dataclass(frozen=True)
class StreamRequest:
    """What was settled before the upgrade."""

    dialog: bool
    hands_free: bool
    locale: str | None
    session_id: str | None
    request_id: str | None
    device_id: str | None
    user_id: str | None


@bp.before_request
def _before_upgrade() -> None:
    """Token, rate and parameters are checked while an HTTP status can still answer them."""
    args = request.args
    dialog = parse_flag(args.get("dialog"), False)
    hands_free = parse_flag(args.get("hands_free"), False)
    locale = parse_locale(args.get("locale"))
    session_id = identifier(args.get("session_id"), "session_id")
    request_id = identifier(args.get("request_id"), "request_id")
    device_id = identifier(args.get("device_id"), "device_id")
    user_id = None
    if dialog:
        user_id = speaker_principal(identifier(args.get("user_id"), "user_id"), session_id)
        check_rate(user=user_id, device=device_id)
        model("tts")
    else:
        check_rate()
    model("asr")
    g.stream_request = StreamRequest(dialog, hands_free, locale, session_id, request_id, device_id, user_id)


class _SocketHandedOver(Response):
    """What the WSGI server gets back once the WebSocket is over: the socket is no longer HTTP, so instead of a
    response this ends the exchange the way each server drops a connection without writing to it."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if self.mode == "gunicorn":
            raise StopIteration()
        raise ConnectionError()     # werkzeug's handler treats it as a dropped connection and writes nothing


@bp.route(PATH, websocket=True)
def voice_stream() -> Response:
    limits, _slots = stream_slots()
    # A frame over the limit is closed with 1009 by simple-websocket itself; "minwon.v1" is the subprotocol a
    # browser offers beside its token (http_api.bearer_token), so the server picks it and never echoes the token.
    ws = Server.accept(request.environ, subprotocols=[WEBSOCKET_SUBPROTOCOL],
                       max_message_size=limits.max_frame_bytes)
    try:
        _stream(ws, g.stream_request)
    finally:
        with contextlib.suppress(ConnectionClosed, OSError):
            ws.close()
        # The closing handshake: simple-websocket's reader keeps reading (and dropping audio still in flight)
        # until the client answers the close or hangs up. Closing the socket before that, with the client's
        # frames unread, would reset the connection, and a reset can destroy the error frame and close code
        # the client has not read yet. A client that never answers is cut off after CLOSE_WAIT_S.
        ws.thread.join(CLOSE_WAIT_S)
    return _SocketHandedOver(ws.mode)


def _stream(ws: Any, req: StreamRequest) -> None:
    limits, slots = stream_slots()
    if not slots.try_acquire():
        _refuse_busy(ws, req)
        return
    try:
        _serve(ws, req, limits)
    except StreamError as exc:
        _close_with(ws, exc)
    except ConnectionClosed:
        pass      # the client went away; nothing is left to tell it
    except Exception:
        log.exception("voice stream failed")
        _close_with(ws, StreamError(CLOSE_INTERNAL, "internal_error", "Something went wrong on our side."))
    finally:
        slots.release()


def _serve(ws: Any, req: StreamRequest, limits: StreamLimits) -> None:
    state = services()
    recognizer: SpeechRecognizer = model("asr")
    expected = state.dialog.expected_input(req.session_id, req.user_id) if req.dialog else None
    listen_locale = (req.locale or expected.locale) if expected else (req.locale or "ko-KR")
    expectation, pin_step = voice_expectation(expected) if expected else (None, False)
    session = StreamSession(recognizer, listen_locale, limits, expectation=expectation,
                            commands=command_phrases(listen_locale) if req.dialog else (),
                            hands_free=req.hands_free, mask=pin_step)
    deadline = time.monotonic() + limits.max_wall_s
    while not session.ended:
        wait = min(limits.idle_s, deadline - time.monotonic())
        message = ws.receive(timeout=wait) if wait > 0 else None
        if message is None:
            if wait < limits.idle_s:
                raise StreamError(CLOSE_TIMEOUT, "stream_timeout",
                                  f"A stream may stay open at most {limits.max_wall_s:.0f} s.")
            raise StreamError(CLOSE_TIMEOUT, "idle_timeout", f"No frame for {limits.idle_s:.0f} s.")
        for reply in session.handle(message):
            ws.send(json.dumps(reply, ensure_ascii=False))
    ended = time.perf_counter()
    if req.dialog:
        assert session.transcript is not None and req.user_id is not None
        _reply(ws, req, session, pin_step, ended)
    ws.close(CLOSE_NORMAL)


def _reply(ws: Any, req: StreamRequest, session: StreamSession, pin_step: bool, ended: float) -> None:
    """The dialog turn on the final transcript, its JSON, then its speech one sentence at a time."""
    assert session.transcript is not None and req.user_id is not None
    synthesizer: SpeechSynthesizer = model("tts")
    reply, body = answer_transcript(session.transcript, user_id=req.user_id, session_id=req.session_id,
                                    locale=req.locale, device_id=req.device_id, request_id=req.request_id,
                                    pin_step=pin_step)
    sentences = split_sentences(reply.speech) if reply.speech else []
    body["timings_ms"] = {"dialog": round((time.perf_counter() - ended) * 1000, 1)}
    body["sentences"] = len(sentences)
    ws.send(json.dumps(body, ensure_ascii=False))
    for sentence in sentences:
        try:
            ws.send(synthesizer.synthesize(sentence, reply.locale))
        except TtsError:
            ws.send(json.dumps({"error": {"code": "tts_unavailable", "message": "The reply could not be spoken."}}))
            return


def _refuse_busy(ws: Any, req: StreamRequest) -> None:
    error = StreamError(CLOSE_TRY_AGAIN, "busy", "Too many voice streams on this server right now. Please retry.")
    try:
        ws.send(json.dumps(error.to_json()))
        if req.dialog:
            language = "en" if (req.locale or "").startswith("en") else "ko"
            ws.send(model("tts").synthesize(BUSY_SPEECH[language], language))
        ws.close(error.close_code, error.code)
    except (ConnectionClosed, TtsError, ApiError, OSError):
        pass


def _close_with(ws: Any, error: StreamError) -> None:
    try:
        ws.send(json.dumps(error.to_json()))
        ws.close(error.close_code, error.code)
    except (ConnectionClosed, OSError):
        pass


# -- OpenAPI ----------------------------------------------------------------------------------------------

OPENAPI_PATHS = {
    PATH: {"get": {
        "summary": "Streaming recognition over WebSocket (the vosk-server protocol), optionally a whole spoken "
                   "dialog turn with the reply's speech streamed sentence by sentence.",
        "description": (
            "Client frames: `{\"config\": {\"sample_rate\", \"phrase_list\", \"words\", \"max_alternatives\"}}`, "
            "binary 16-bit little-endian mono PCM, `{\"eof\": 1}` (or `{\"reset\": 1}`). Server frames: "
            "`{\"partial\"}` or `{\"text\", \"result\"}` per binary frame; at eof the last result with `utterance` "
            "(the /v1/asr result of the whole stream). With dialog=1: then the /v1/voice JSON with `sentences`, "
            "then that many binary WAV frames, then close 1000. Errors: a `{\"error\": {\"code\", \"message\"}}` "
            "frame, then close 1007 (bad frame, config or sample rate), 1009 (frame over 1 MB), 1013 (busy), "
            "4408 (idle 10 s, or open over 45 s), 4413 (over 30 s of audio), 1011 (server error). Browsers "
            "send the device token as the subprotocol `minwon.bearer.<token>` beside `minwon.v1`."),
        "security": [{"DeviceToken": []}, {}],
        "parameters": [
            query_parameter("dialog", "1: run a dialog turn on the final transcript and stream its speech",
                            {"type": "boolean"}),
            query_parameter("hands_free", "1: end the turn on the server's endpointing, without eof",
                            {"type": "boolean"}),
            query_parameter("locale", "ko-KR (default) or en-US", locale_schema()),
            query_parameter("session_id", "dialog mode", identifier_schema()),
            query_parameter("request_id", "dialog mode: a retry returns the same reply", identifier_schema()),
            query_parameter("device_id", "dialog mode", identifier_schema()),
            query_parameter("user_id", "dialog mode: must be the device token's user", identifier_schema()),
        ],
        "responses": {
            "101": {"description": "switching to the WebSocket protocol"},
            **error_responses(400, 401, 403, 429, 503),
        },
    }},
}
