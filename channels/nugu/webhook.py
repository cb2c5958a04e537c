"""``POST /nugu/<action>`` and ``GET /nugu/health``: the NUGU backend proxy.

The play's backend proxy URL is ``https://<host>/nugu``: NUGU calls ``<url>/<actionName>`` for each action
and ``<url>/health`` to check the server. Every action request must carry ``Authorization: token
<MINWON_NUGU_TOKEN>``; a missing or wrong token is 401 and nothing runs. Handled outcomes, failures
included, are HTTP 200 with a result code (``channels/nugu/README.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from channels.nugu.request import parse_nugu_request
from channels.nugu.response import ACCOUNT_NOT_LINKED, BACKEND_ERROR, OK, SERVICE_BUSY, render_nugu
from channels.speaker_auth import authorization_token, require_token
from channels.speaker_dialog import SpeakerTurn, charge_speaker_turn, converse_for_speaker
from http_api import error_responses, json_object, services
from skills.engine import Turn

log = logging.getLogger(__name__)

bp = Blueprint("nugu", __name__)

_FAILURE_CODES = {"busy": SERVICE_BUSY, "error": BACKEND_ERROR}


@dataclass
class NuguChannel:
    token: str
    converse: Callable[[Turn], SpeakerTurn]


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    minwon = state.app.extensions["minwon"]
    token = minwon.settings.get("MINWON_NUGU_TOKEN", "")
    if not token:
        log.warning("no NUGU API key configured (set MINWON_NUGU_TOKEN): POST /nugu/<action> refuses every request")
    state.app.extensions["minwon_nugu"] = NuguChannel(
        token=token, converse=lambda turn: converse_for_speaker(minwon.dialog, turn)
    )


def _resolve_slot(slot_type: str, words: str) -> str | None:
    """The value id that the play's entity words name, when the parameter is one of the service's slot types."""
    vocabulary = services().dialog.router.vocabulary
    if slot_type not in vocabulary.types:
        return None
    _, found = vocabulary.find(words, only=slot_type)
    ids = found.get(slot_type, [])
    return ids[0] if len(ids) == 1 else None


@bp.post("/nugu/<action>")
def nugu_action(action: str) -> Any:
    state = services()
    channel: NuguChannel = current_app.extensions["minwon_nugu"]
    require_token(authorization_token(request.headers.get("Authorization")), channel.token, "NUGU")
    body = json_object()
    parsed = parse_nugu_request(body, action)
    turn = parsed.to_turn(intents=state.dialog.router.intents, resolve_slot=_resolve_slot)
    outcome = charge_speaker_turn(turn) or channel.converse(turn)
    if outcome.failure:
        code = _FAILURE_CODES[outcome.failure]
    elif outcome.needs_linking:
        code = ACCOUNT_NOT_LINKED
    else:
        code = OK
    return jsonify(render_nugu(outcome.reply, code))


@bp.get("/nugu/health")
def nugu_health() -> Any:
    """NUGU's server check: 200 once the service can answer, 503 while it is still loading."""
    state = services()
    if not state.ready:
        return jsonify({"status": "starting"}), 503
    return jsonify({"status": "ok"})



OPENAPI_PATHS = {
    "/nugu/{action}": {
        "post": {
            "summary": "NUGU backend proxy action (request and response version 2.0).",
            "description": (
                "Authorization: token <MINWON_NUGU_TOKEN>. Handled outcomes are HTTP 200 with resultCode OK, "
                "accountNotLinked, serviceBusy or backendError; output keys are listed in channels/nugu/README.md."
            ),
            "parameters": [
                {"name": "action", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "the body's action.actionName; one path segment (with '/' no route matches: 404)"},
                {"name": "Authorization", "in": "header", "required": True, "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/NuguRequest"}}}},
            "responses": {
                "200": {
                    "description": "backend proxy response (schema: channels/schemas/nugu_response.json)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NuguResponse"}}},
                },
                **error_responses(400, 401, 404, 413, 415, 429, 500, 503),
            },
        }
    },
    "/nugu/health": {
        "get": {
            "summary": "NUGU health check: 200 when the backend proxy can answer, 503 while starting.",
            "responses": {"200": {"description": "ready"}, "503": {"description": "starting"}},
        }
    },
}

OPENAPI_COMPONENTS = {
    "NuguRequest": {
        "type": "object", "required": ["action", "context"],
        "description": "The backend proxy request: the parts this service reads. actionName must equal the path's "
                       "action; the session needs an accessToken (account linking) or an id.",
        "properties": {
            "version": {"type": "string"},
            "action": {"type": "object", "required": ["actionName"], "properties": {
                "actionName": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,63}$"},
                "parameters": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "type": {"type": "string"}, "value": {"type": ["string", "number", "null"]}}}},
            }},
            "context": {"type": "object", "required": ["session"], "properties": {
                "session": {"type": "object", "properties": {
                    "id": {"type": "string"}, "accessToken": {"type": "string"}, "isNew": {"type": "boolean"}}},
                "device": {"type": "object", "properties": {"type": {"type": "string"}}},
            }},
            "event": {"type": "object", "properties": {"type": {"type": "string"}}},
        },
    },
    "NuguResponse": {
        "type": "object",
        "required": ["version", "resultCode", "output"],
        "properties": {
            "version": {"const": "2.0"},
            "resultCode": {"type": "string"},
            "output": {"type": "object", "additionalProperties": {"type": "string"}},
            "directives": {"type": "array", "items": {"type": "object"}},
        },
    }
}
