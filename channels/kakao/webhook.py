"""``POST /kakao``: the Kakao i Open Builder skill endpoint.

Settings: ``MINWON_KAKAO_TOKEN`` (the shared secret the bot sends), ``MINWON_KAKAO_TOKEN_HEADER``
(default ``X-Skill-Token``), ``MINWON_KAKAO_BUDGET_S`` (default 3.5: longer turns go through the
callback), ``MINWON_KAKAO_CALLBACK_HOSTS`` (comma-separated allowed callback hosts, default
``kakao.com`` and its subdomains; https and a public address are required too, see ``outbound.py``),
``MINWON_KAKAO_WORKERS`` (default 4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from channels.kakao.callback import CallbackPolicy, CallbackWorker
from channels.kakao.request import parse_kakao_request
from channels.kakao.response import render_callback_ack, render_kakao
from channels.speaker_auth import require_token
from channels.speaker_dialog import SpeakerTurn, charge_speaker_turn, converse_for_speaker
from http_api import error_responses, json_object, services
from skills.engine import Turn
from storage import StorageUnavailable

log = logging.getLogger(__name__)

bp = Blueprint("kakao", __name__)

DEFAULT_TOKEN_HEADER = "X-Skill-Token"
DEFAULT_BUDGET_S = 3.5


@dataclass
class KakaoChannel:
    token: str
    token_header: str
    budget_s: float
    callbacks: CallbackPolicy
    worker: CallbackWorker
    converse: Callable[[Turn], SpeakerTurn]


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    minwon = state.app.extensions["minwon"]
    settings = minwon.settings
    token = settings.get("MINWON_KAKAO_TOKEN", "")
    if not token:
        log.warning("no Kakao skill secret configured (set MINWON_KAKAO_TOKEN): POST /kakao refuses every request")
    hosts = settings.get("MINWON_KAKAO_CALLBACK_HOSTS", "kakao.com").split(",")
    state.app.extensions["minwon_kakao"] = KakaoChannel(
        token=token,
        token_header=settings.get("MINWON_KAKAO_TOKEN_HEADER", DEFAULT_TOKEN_HEADER),
        budget_s=float(settings.get("MINWON_KAKAO_BUDGET_S", str(DEFAULT_BUDGET_S))),
        callbacks=CallbackPolicy(hosts, minwon.outbound),
        worker=minwon.kakao_callbacks,
        converse=lambda turn: _converse(minwon, turn),
    )


def _converse(state: Any, turn: Turn) -> SpeakerTurn:
    outcome = converse_for_speaker(state.dialog, turn)
    if outcome.reply.end_session and outcome.reply.session_id and not outcome.failure:
        # Kakao has no sessions: the service's session for this chat ends when the dialog does, so the
        # next message starts afresh (a PIN given before "그만" does not carry over).
        try:
            state.sessions.end(outcome.reply.session_id)
        except StorageUnavailable:
            log.warning("kakao session could not be ended now; it expires with its TTL")
    return outcome


def _render(outcome: SpeakerTurn) -> dict[str, Any]:
    return render_kakao(outcome.reply)


@bp.post("/kakao")
def kakao() -> Any:
    state = services()
    channel: KakaoChannel = current_app.extensions["minwon_kakao"]
    require_token(request.headers.get(channel.token_header), channel.token, "Kakao")
    body = json_object()
    parsed = parse_kakao_request(body, state.settings.max_text_chars)
    turn = parsed.to_turn()
    busy = charge_speaker_turn(turn)
    if busy is not None:
        return jsonify(_render(busy))
    # None when absent or refused (the policy logs why): the turn is then answered without a callback.
    callback = channel.callbacks.target(parsed.callback_url) if parsed.callback_url else None
    future = channel.worker.submit(channel.converse, turn)
    try:
        outcome = future.result(timeout=channel.budget_s)
    except FutureTimeout:
        if callback is None:
            # No callback to fall back on: the answer is late, but it is the only way to give it.
            outcome = future.result()
        else:
            channel.worker.post_when_done(future, callback, _render)
            return jsonify(render_callback_ack(turn.locale))
    return jsonify(_render(outcome))



OPENAPI_PATHS = {
    "/kakao": {
        "post": {
            "summary": "Kakao i Open Builder skill endpoint (SkillPayload in, SkillResponse version 2.0 out).",
            "description": (
                "Authenticated by the shared token header (X-Skill-Token by default). A turn that takes longer "
                "than the budget (3.5 s) is answered with useCallback and its reply POSTed to "
                "userRequest.callbackUrl once."
            ),
            "parameters": [{"name": "X-Skill-Token", "in": "header", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/KakaoRequest"}}}},
            "responses": {
                "200": {
                    "description": "SkillResponse (schema: channels/schemas/kakao_response.json)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/KakaoResponse"}}},
                },
                **error_responses(400, 401, 413, 415, 429, 500, 503),
            },
        }
    }
}

OPENAPI_COMPONENTS = {
    "KakaoRequest": {
        "type": "object", "required": ["userRequest"],
        "description": "Open Builder's SkillPayload: the parts this service reads (other fields are ignored).",
        "properties": {
            "userRequest": {
                "type": "object", "required": ["user", "utterance"],
                "properties": {
                    "user": {"type": "object", "required": ["id"],
                             "properties": {"id": {"type": "string", "pattern": "\\S"}}},
                    "utterance": {"type": "string", "maxLength": 1000},
                    "lang": {"type": ["string", "null"], "description": "ko (or kr) or en"},
                    "callbackUrl": {"type": "string", "description": "used only on an allowed callback host"},
                    "block": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
            },
            "bot": {"type": "object", "properties": {"id": {"type": "string"}}},
            "action": {"type": "object", "properties": {"params": {"type": "object"},
                                                          "detailParams": {"type": "object"}}},
        },
    },
    "KakaoResponse": {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": {"const": "2.0"},
            "template": {"type": "object"},
            "useCallback": {"type": "boolean"},
            "data": {"type": "object"},
        },
    }
}
