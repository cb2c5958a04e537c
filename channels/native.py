"""The native channel: /health and /v1/converse, the reference every other channel is checked against."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from http_api import ApiError, check_rate, error_responses, json_object, locale_schema, parse_locale, services
from skills.engine import Turn

bp = Blueprint("native", __name__)


def turn_from_json(body: dict[str, Any], channel: str = "native") -> Turn:
    """Validates a converse body (also used by the voice and console channels) into a Turn."""
    settings = services().settings
    user_id = body.get("user_id")
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 200:
        raise ApiError(400, "invalid_user_id", "user_id must be a non-empty string of at most 200 characters.")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "missing_text", "text must be a non-empty string.")
    if len(text) > settings.max_text_chars:
        raise ApiError(400, "text_too_long", f"text must be at most {settings.max_text_chars} characters.")
    locale = parse_locale(body.get("locale"))
    session_id = body.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not 0 < len(session_id) <= 64):
        raise ApiError(400, "invalid_session_id", "session_id must be a string of 1 to 64 characters.")
    request_id = body.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not 0 < len(request_id) <= 128):
        raise ApiError(400, "invalid_request_id", "request_id must be a string of 1 to 128 characters.")
    device_id = body.get("device_id")
    if device_id is not None and not isinstance(device_id, str):
        raise ApiError(400, "invalid_device_id", "device_id must be a string.")
    return Turn(user_id=user_id, text=text.strip(), session_id=session_id, locale=locale, channel=channel,
                device_id=device_id, request_id=request_id)


@bp.get("/health")
def health() -> Any:
    state = services()
    if not state.ready:
        body = {"status": "starting"}
        if state.load_error:
            body = {"status": "error", "component": state.load_error}
        return jsonify(body), 503
    return jsonify({"status": "ok", "components": sorted(state.components)})


@bp.post("/v1/converse")
def converse() -> Any:
    state = services()
    body = json_object()
    turn = turn_from_json(body)
    check_rate(user=turn.user_id, device=turn.device_id)
    reply = state.dialog.converse(turn)
    return jsonify(reply.to_api())


OPENAPI_COMPONENTS = {
    "ConverseRequest": {
        "type": "object", "required": ["user_id", "text"],
        "properties": {
            "user_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "session_id": {"type": "string", "maxLength": 64},
            "text": {"type": "string", "minLength": 1, "maxLength": 1000},
            "locale": locale_schema(),
            "request_id": {"type": "string", "maxLength": 128,
                           "description": "A retry with the same request_id returns the same reply and changes nothing."},
            "device_id": {"type": "string"},
        },
    },
    "ConverseResponse": {
        "type": "object",
        "required": ["session_id", "speech", "ssml", "display", "intent", "end_session", "expects"],
        "properties": {
            "session_id": {"type": "string"}, "speech": {"type": "string"}, "ssml": {"type": "string"},
            "display": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "title": {"type": "string"}, "body": {"type": "string"}}}]},
            "intent": {"type": "string"}, "end_session": {"type": "boolean"},
            "expects": {"enum": [None, "confirmation", "pin", "slot"]},
        },
    },
}

OPENAPI_PATHS = {
    "/health": {"get": {
        "summary": "Readiness: 200 once models and storage are ready, 503 while starting.",
        "responses": {"200": {"description": "ready"}, "503": {"description": "starting"}},
    }},
    "/v1/converse": {"post": {
        "summary": "One text turn of the dialog.",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConverseRequest"}}}},
        "responses": {
            "200": {"description": "the reply", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ConverseResponse"}}}},
            **error_responses(400, 413, 415, 429, 500, 503),
        },
    }},
}


@bp.get("/metrics")
def metrics() -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(services().metrics.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


OPENAPI_PATHS["/metrics"] = {"get": {
    "summary": "Prometheus metrics: request counts and latency per route and per skill.",
    "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}},
}}
