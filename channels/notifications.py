"""Notifications over HTTP (issue 18).

- `POST /v1/agencies/certificates/{certificate_id}/state` — the issuing agency (its API key, Bearer) reports that
  an application was issued or refused. Only for the agency's own document types; another agency's certificate and
  an unknown id get the same 404. Idempotent by `request_id`: a retry gets the same answer and changes nothing; a
  request id used again for something else is a 409.
- `GET /v1/citizens/{id}/notifications` (unread first), `POST …/notifications/{nid}/read` and
  `GET|PUT /v1/citizens/{id}/notification-settings` — for the citizen's app, by the citizen's app token; a token
  only opens its own citizen's notifications.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from flask import Blueprint, jsonify

from channels.mydata import MAX_ID_CHARS, citizen_from_token, unauthorized
from domain.certificates import REPORTABLE_STATES
from domain.notifications import KINDS, PUSH_CHANNELS, NotificationSettings, parse_clock_time
from domain.push_deliveries import PUSH_STATES, PushState
from http_api import ApiError, bearer_token, check_rate, error_responses, json_object, services

log = logging.getLogger(__name__)

bp = Blueprint("notifications", __name__)

MAX_REQUEST_ID_CHARS = 128


@bp.post("/v1/agencies/certificates/<certificate_id>/state")
def certificate_state(certificate_id: str) -> Any:
    state = services()
    key = bearer_token()
    agency = state.agency_keys.agency_for(key) if key else None
    if agency is None:
        raise unauthorized("agency API key")
    check_rate(user=f"agency:{agency}")
    body = json_object()
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise ApiError(400, "invalid_request_id",
                       f"request_id must be a string of 1 to {MAX_REQUEST_ID_CHARS} characters.")
    new_state = body.get("state")
    if new_state not in REPORTABLE_STATES:
        raise ApiError(400, "invalid_state", "state must be one of: " + ", ".join(REPORTABLE_STATES) + ".")
    valid_until = _date(body.get("valid_until"))
    if new_state != "issued" and valid_until is not None:
        raise ApiError(400, "invalid_valid_until", "valid_until is only for an issued certificate.")
    if len(certificate_id) > MAX_ID_CHARS:
        raise ApiError(404, "not_found", "No such certificate of this agency's.")
    report = state.report_certificate_state(agency, certificate_id, request_id, new_state, valid_until)
    log.info("certificate state report", extra={"agency": agency, "state": new_state, "outcome": report.outcome})
    if report.outcome == "not_found":
        raise ApiError(404, "not_found", "No such certificate of this agency's.")
    if report.outcome == "conflict":
        raise ApiError(409, "conflict", "This request id was used for another report, or the application is no "
                       "longer in progress.")
    certificate = report.certificate
    assert certificate is not None
    return jsonify({
        "certificate_id": certificate.id, "state": certificate.state, "request_id": request_id,
        "valid_until": certificate.valid_until.isoformat() if certificate.valid_until else None,
        "repeated": report.outcome == "repeated",
    })


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 10:
        raise ApiError(400, "invalid_valid_until", "valid_until must be a date (YYYY-MM-DD).")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_valid_until", "valid_until must be a date (YYYY-MM-DD).") from None


@bp.get("/v1/citizens/<citizen_id>/notifications")
def list_notifications(citizen_id: str) -> Any:
    citizen_from_token(citizen_id)
    state = services()
    items = state.notifications.for_citizen(citizen_id)
    pushes = state.pushes.queue.states_for(citizen_id)
    return jsonify({"citizen_id": citizen_id, "unread": sum(1 for n in items if n.read_at is None),
                    "notifications": [_with_pushes(n.to_api(), pushes.get(n.id, [])) for n in items]})


def _with_pushes(item: dict[str, Any], pushes: list[PushState]) -> dict[str, Any]:
    """A notification with its pushes' delivery states, one per channel it was pushed on (none: not pushed)."""
    return {**item, "pushes": [p.to_api() for p in pushes]}


@bp.post("/v1/citizens/<citizen_id>/notifications/<notification_id>/read")
def read_notification(citizen_id: str, notification_id: str) -> Any:
    citizen_from_token(citizen_id)
    store = services().notifications
    # Another citizen's notification id is as unknown as a made-up one.
    if store.get(citizen_id, notification_id) is None:
        raise ApiError(404, "not_found", "No such notification for this citizen.")
    store.mark_read(citizen_id, [notification_id], via="app")
    item = store.get(citizen_id, notification_id)
    assert item is not None
    return jsonify(_with_pushes(item.to_api(), services().pushes.queue.states_for(citizen_id).get(item.id, [])))


@bp.get("/v1/citizens/<citizen_id>/notification-settings")
def get_settings(citizen_id: str) -> Any:
    citizen_from_token(citizen_id)
    return jsonify(services().notifications.settings(citizen_id).to_api())


@bp.put("/v1/citizens/<citizen_id>/notification-settings")
def put_settings(citizen_id: str) -> Any:
    citizen_from_token(citizen_id)
    body = json_object()
    store = services().notifications
    current = store.settings(citizen_id)
    chosen = _settings(body, current)
    store.save_settings(citizen_id, chosen)
    return jsonify(chosen.to_api())


def _settings(body: dict[str, Any], current: NotificationSettings) -> NotificationSettings:
    """The settings the body asks for; a field left out keeps its value, a wrong one is a 400 (nothing saved)."""
    unknown = set(body) - {"spoken_headlines", "channels", "quiet_hours"}
    if unknown:
        raise ApiError(400, "unknown_field", "Unknown fields: " + ", ".join(sorted(unknown)) + ".")
    spoken = body.get("spoken_headlines", current.spoken_headlines)
    if not isinstance(spoken, bool):
        raise ApiError(400, "invalid_spoken_headlines", "spoken_headlines must be true or false.")
    channels = body.get("channels", list(current.channels))
    if not isinstance(channels, list) or any(c not in PUSH_CHANNELS for c in channels):
        raise ApiError(400, "invalid_channels", "channels must be a list of: " + ", ".join(PUSH_CHANNELS) + ".")
    quiet = body.get("quiet_hours", {"start": current.quiet_start, "end": current.quiet_end})
    if not isinstance(quiet, dict) or set(quiet) - {"start", "end", "timezone"}:
        raise ApiError(400, "invalid_quiet_hours", "quiet_hours must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\"}.")
    start, end = quiet.get("start", current.quiet_start), quiet.get("end", current.quiet_end)
    if quiet.get("timezone", "Asia/Seoul") != "Asia/Seoul":
        raise ApiError(400, "invalid_quiet_hours", "Quiet hours are Korean time (Asia/Seoul).")
    for value in (start, end):
        try:
            if not isinstance(value, str):
                raise ValueError
            parse_clock_time(value)
        except ValueError:
            raise ApiError(400, "invalid_quiet_hours", "Quiet hours are times as HH:MM (00:00 to 23:59).") from None
    return NotificationSettings(spoken, tuple(dict.fromkeys(channels)), start, end)


# -- OpenAPI ------------------------------------------------------------------------------------------------


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


_CLOCK_TIME = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}

OPENAPI_COMPONENTS = {
    "CertificateStateReport": {
        "type": "object", "required": ["request_id", "state"], "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID_CHARS,
                           "description": "The agency's id for this report; a retry with the same id changes nothing."},
            "state": {"type": "string", "enum": list(REPORTABLE_STATES)},
            "valid_until": {"type": ["string", "null"], "format": "date",
                            "description": "Only for issued: the last day the certificate is valid."},
        },
    },
    "CertificateState": {
        "type": "object", "required": ["certificate_id", "state", "request_id", "repeated"],
        "properties": {
            "certificate_id": {"type": "string"}, "state": {"type": "string"}, "request_id": {"type": "string"},
            "valid_until": {"type": ["string", "null"], "format": "date"},
            "repeated": {"type": "boolean", "description": "true when this report had been applied before"},
        },
    },
    "Notification": {
        "type": "object", "required": ["id", "kind", "subject", "facts", "created_at", "read", "read_at", "pushes"],
        "properties": {
            "id": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)},
            "subject": {"type": "string", "description": "the certificate, consent record, credential or offer id"},
            "facts": {"type": "object", "description": "doc_type, recipient, data_item, date, as the kind has them"},
            "created_at": {"type": "string", "format": "date-time"}, "read": {"type": "boolean"},
            "read_at": {"type": ["string", "null"], "format": "date-time"},
            "pushes": {"type": "array", "items": {"$ref": "#/components/schemas/NotificationPush"},
                       "description": "one per push channel the citizen had opted into when it was raised"},
        },
    },
    "NotificationPush": {
        "type": "object", "required": ["channel", "state", "attempts", "updated_at", "next_attempt_at"],
        "properties": {
            "channel": {"type": "string", "enum": list(PUSH_CHANNELS)},
            "state": {"type": "string", "enum": list(PUSH_STATES), "description":
                      "pending (waiting for its next attempt), held (quiet hours, sent when they end), sent, failed "
                      "(refused or unreachable for a day), not_configured (the service has no credentials for the "
                      "platform: nothing sent), no_recipient (no linked account on the platform: nothing sent), "
                      "opted_out (the channel was turned off before it went out: nothing sent)"},
            "attempts": {"type": "integer", "minimum": 0},
            "updated_at": {"type": "string", "format": "date-time"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time",
                                "description": "when a pending or held push goes out, at the earliest"},
        },
    },
    "NotificationList": {
        "type": "object", "required": ["citizen_id", "unread", "notifications"],
        "properties": {"citizen_id": {"type": "string"}, "unread": {"type": "integer"},
                       "notifications": {"type": "array", "description": "unread first, each group oldest first",
                                         "items": {"$ref": "#/components/schemas/Notification"}}},
    },
    "NotificationSettings": {
        "type": "object", "additionalProperties": False,
        "properties": {
            "spoken_headlines": {"type": "boolean",
                                 "description": "whether a session mentions unread notifications (a count only)"},
            "channels": {"type": "array", "items": {"type": "string", "enum": list(PUSH_CHANNELS)},
                         "description": "the push channels opted into"},
            "quiet_hours": {"type": "object", "additionalProperties": False, "properties": {
                "start": _CLOCK_TIME, "end": _CLOCK_TIME, "timezone": {"type": "string", "enum": ["Asia/Seoul"]}}},
        },
    },
}

_CITIZEN_ID = {"name": "citizen_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "one path segment (an id with '/' matches no route: 404)"}
_SETTINGS = _json("#/components/schemas/NotificationSettings", "the settings")

OPENAPI_PATHS = {
    "/v1/agencies/certificates/{certificate_id}/state": {"post": {
        "summary": "The issuing agency reports that an application was issued or refused (idempotent by request_id).",
        "security": [{"AgencyKey": []}],
        "parameters": [{"name": "certificate_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/CertificateStateReport"}}}},
        "responses": {"200": _json("#/components/schemas/CertificateState", "the certificate's state"),
                      **error_responses(400, 401, 404, 409, 413, 415, 429, 503)},
    }},
    "/v1/citizens/{citizen_id}/notifications": {"get": {
        "summary": "The citizen's notifications, unread first.",
        "security": [{"CitizenToken": []}], "parameters": [_CITIZEN_ID],
        "responses": {"200": _json("#/components/schemas/NotificationList", "the notifications"),
                      **error_responses(401, 403, 404, 429, 503)},
    }},
    "/v1/citizens/{citizen_id}/notifications/{notification_id}/read": {"post": {
        "summary": "Marks one of the citizen's notifications read (again: no change).",
        "security": [{"CitizenToken": []}],
        "parameters": [_CITIZEN_ID, {"name": "notification_id", "in": "path", "required": True,
                                     "schema": {"type": "string"}}],
        "responses": {"200": _json("#/components/schemas/Notification", "the notification"),
                      **error_responses(401, 403, 404, 429, 503)},
    }},
    "/v1/citizens/{citizen_id}/notification-settings": {
        "get": {"summary": "The citizen's notification settings.", "security": [{"CitizenToken": []}],
                "parameters": [_CITIZEN_ID], "responses": {"200": _SETTINGS, **error_responses(401, 403, 404, 429, 503)}},
        "put": {"summary": "Changes the citizen's notification settings (fields left out keep their value).",
                "security": [{"CitizenToken": []}], "parameters": [_CITIZEN_ID],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/NotificationSettings"}}}},
                "responses": {"200": _SETTINGS, **error_responses(400, 401, 403, 404, 413, 415, 429, 503)}},
    },
}
