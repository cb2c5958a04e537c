"""The native channel: /health, /v1/devices and /v1/converse, the reference every other channel is checked
against.

Who is calling: a device token (`Authorization: Bearer …`) names the speaker user, and the user id a turn
acts for comes from it. A body or query `user_id` is a claim: it must equal the token's user (else 403),
a speaker platform's user id is never accepted here (403: those users are authenticated by their
platform), and naming a linked user — or one that has device tokens — without its token is 401. A request
without a token is anonymous: it gets a principal of its own (kept with its session) that can ask public
questions but never reads, continues or changes anyone's session or data.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from domain.devices import is_anonymous, is_platform_user, new_anonymous_user
from http_api import (
    ApiError,
    bearer_token,
    check_rate,
    client_address,
    error_responses,
    json_object,
    locale_schema,
    parse_locale,
    services,
)
from skills.engine import Turn

bp = Blueprint("native", __name__)

# Every client-chosen identifier (user, session, request, device) is at most this long.
MAX_ID_CHARS = 128
MAX_TOKEN_CHARS = 200


def identifier(value: Any, name: str) -> str | None:
    """An optional identifier from a body, query or header: None, or a string of 1 to 128 printable ASCII."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS or not value.isascii() or (
            not value.isprintable()):
        raise ApiError(400, f"invalid_{name}", f"{name} must be a string of 1 to {MAX_ID_CHARS} printable ASCII "
                                               "characters.")
    return value


def speaker_principal(claimed_user_id: str | None, session_id: str | None) -> str:
    """The speaker user this request acts for (see the module docstring); raises 401/403 otherwise."""
    state = services()
    if claimed_user_id is not None and is_platform_user(claimed_user_id):
        raise ApiError(403, "platform_user", "Speaker platform users can only be reached through their platform.")
    token = bearer_token()
    if token is not None:
        user_id = state.devices.user_for(token) if len(token) <= MAX_TOKEN_CHARS else None
        if user_id is None:
            raise ApiError(401, "invalid_device_token", "The device token is not valid.",
                           {"WWW-Authenticate": 'Bearer realm="device"'})
        if claimed_user_id is not None and claimed_user_id != user_id:
            raise ApiError(403, "user_mismatch", "user_id is not the user this device token belongs to.")
        return user_id
    if claimed_user_id is not None and not is_anonymous(claimed_user_id) and (
            state.accounts.is_linked(claimed_user_id) or state.devices.has_tokens(claimed_user_id)):
        raise ApiError(401, "device_token_required", "This user can only be reached with its device token.",
                       {"WWW-Authenticate": 'Bearer realm="device"'})
    # Anonymous: the principal of the anonymous session named, else a new one.
    owner = state.sessions.owner(session_id) if session_id else None
    return owner if owner is not None and is_anonymous(owner) else new_anonymous_user()


def turn_from_json(body: dict[str, Any], channel: str = "native") -> Turn:
    """Validates a converse body (also used by the voice and console channels) into a Turn for the
    authenticated (or anonymous) principal."""
    settings = services().settings
    claimed = identifier(body.get("user_id"), "user_id")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "missing_text", "text must be a non-empty string.")
    if len(text) > settings.max_text_chars:
        raise ApiError(400, "text_too_long", f"text must be at most {settings.max_text_chars} characters.")
    locale = parse_locale(body.get("locale"))
    session_id = identifier(body.get("session_id"), "session_id")
    request_id = identifier(body.get("request_id"), "request_id")
    device_id = identifier(body.get("device_id"), "device_id")
    user_id = speaker_principal(claimed, session_id)
    return Turn(user_id=user_id, text=text.strip(), session_id=session_id, locale=locale, channel=channel,
                device_id=device_id, request_id=request_id, origin=client_address())


@bp.get("/health")
def health() -> Any:
    state = services()
    if not state.ready:
        body = {"status": "starting"}
        if state.load_error:
            body = {"status": "error", "component": state.load_error}
        return jsonify(body), 503
    return jsonify({"status": "ok", "components": sorted(state.components)})


@bp.post("/v1/devices")
def register_device() -> Any:
    """A new speaker user and its device token; the device then links to a citizen with a link code."""
    check_rate()
    wait = services().rate_limits.retry_after([("register", client_address())])
    if wait:
        raise ApiError(429, "rate_limited", "Too many devices registered from this address.",
                       {"Retry-After": str(wait)})
    user_id, token = services().devices.register()
    return jsonify({"device_token": token, "user_id": user_id}), 201


@bp.post("/v1/converse")
def converse() -> Any:
    state = services()
    body = json_object()
    turn = turn_from_json(body)
    check_rate(user=turn.user_id, device=turn.device_id)
    reply = state.dialog.converse(turn)
    return jsonify(reply.to_api())


# What identifier() accepts: 1 to 128 printable ASCII characters.
IDENTIFIER_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": "^[ -~]+$"}


def identifier_schema(description: str | None = None) -> dict[str, Any]:
    return {**IDENTIFIER_SCHEMA, "description": description} if description else dict(IDENTIFIER_SCHEMA)


OPENAPI_COMPONENTS = {
    "ConverseRequest": {
        "type": "object", "required": ["text"],
        "properties": {
            "user_id": identifier_schema("Optional; when sent, it must be the device token's user."),
            "session_id": identifier_schema(),
            "text": {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": "\\S",
                     "description": "Not only white space."},
            "locale": locale_schema(),
            "request_id": identifier_schema(
                "A retry with the same request_id returns the same reply and changes nothing."),
            "device_id": identifier_schema(),
        },
    },
    "DeviceRegistration": {
        "type": "object", "required": ["device_token", "user_id"],
        "properties": {"device_token": {"type": "string", "description": "Shown once; send it as a Bearer token."},
                       "user_id": {"type": "string"}},
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
        "description": "With a device token (Bearer) the turn acts for the token's speaker user; without one it "
                       "is anonymous (public questions only, in a session of its own).",
        "security": [{"DeviceToken": []}, {}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConverseRequest"}}}},
        "responses": {
            "200": {"description": "the reply", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ConverseResponse"}}}},
            **error_responses(400, 401, 403, 413, 415, 429, 500, 503),
        },
    }},
    "/v1/devices": {"post": {
        "summary": "Register a new device: a new speaker user and its device token (rate-limited per address).",
        "responses": {
            "201": {"description": "the device's token, shown once", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/DeviceRegistration"}}}},
            **error_responses(429, 500, 503),
        },
    }},
}

OPENAPI_SECURITY_SCHEMES = {
    "DeviceToken": {"type": "http", "scheme": "bearer",
                    "description": "A device token from POST /v1/devices or `app.py device-token`."},
}


@bp.get("/metrics")
def metrics() -> Any:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(services().metrics.registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


OPENAPI_PATHS["/metrics"] = {"get": {
    "summary": "Prometheus metrics: request counts and latency per route and per skill.",
    "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}},
}}
