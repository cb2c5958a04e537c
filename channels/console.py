"""The web voice console: the page at `/` and, in demo mode only, the read API behind its "My data" panel.

The page (channels/console/) talks to the service exactly as any client does, through /v1/voice,
/v1/converse and /v1/tts. The one thing it needs that no other client may have is a view of a demo
citizen's records, so that a tester can watch a spoken change land: that endpoint exists only while
MINWON_DEMO is on, and only for the demo citizens of data/demo.yaml.
"""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, render_template

from channels.native import turn_from_json
from domain.clock import korean_today
from http_api import ApiError, check_rate, error_responses, json_object, services
from settings import PROJECT_DATA, SUPPORTED_LOCALES

bp = Blueprint(
    "console", __name__,
    static_folder="console/static", static_url_path="/console/static", template_folder="console/templates",
)

DEMO_FILE = PROJECT_DATA / "demo.yaml"
# The page refuses longer recordings before uploading them; the voice endpoint enforces the same limit.
MAX_RECORDING_S = 30

# The page's scripts, styles, worklet and media all come from this origin; replies play from blob: URLs.
_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@functools.cache
def demo_speakers() -> tuple[dict[str, str], ...]:
    """The demo citizens' speaker identities (user id, citizen id, name, locale, device token) from
    data/demo.yaml."""
    spec = yaml.safe_load(DEMO_FILE.read_text(encoding="utf-8"))
    return tuple(
        {"user_id": c["speaker_user"], "citizen_id": c["id"], "name": c["name"], "locale": c["locale"],
         "device_token": c["device_token"]}
        for c in spec["citizens"]
    )


@bp.get("/")
def console_page() -> Response:
    demo = services().settings.demo
    config = {
        "demo": demo,
        "speakers": [
            # Demo mode only (which runs on loopback only): the page speaks as the demo speakers with their
            # published demo device tokens, so nobody has to type one.
            {"user_id": s["user_id"], "name": s["name"], "locale": s["locale"], "device_token": s["device_token"]}
            for s in demo_speakers()
        ] if demo else [],
        "max_recording_s": MAX_RECORDING_S,
    }
    response = Response(render_template("console.html", config=config), mimetype="text/html")
    response.headers["Content-Security-Policy"] = _CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.post("/v1/console/converse")
def console_converse() -> Any:
    """A typed turn from the console: /v1/converse's contract, recorded as the console channel (so a
    consent changed from the page says so in its history), and the reply's locale for the interface."""
    state = services()
    body = json_object()
    turn = turn_from_json(body, channel="console")
    check_rate(user=turn.user_id)
    reply = state.dialog.converse(turn)
    return jsonify({**reply.to_api(), "locale": reply.locale})


def _names(slot_type: str, value_id: str) -> dict[str, str]:
    """Display names per language ("ko", "en") from the slot vocabularies the dialog uses."""
    vocabulary = services().dialog.router.vocabulary
    values = vocabulary.types.get(slot_type, {})
    return dict(values[value_id].names) if value_id in values else {"ko": value_id, "en": value_id}


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _notice_names(facts: dict[str, Any]) -> dict[str, str] | None:
    """What a notice is about, per language: its document, or its consent's recipient and data item."""
    if "doc_type" in facts:
        return _names("document", facts["doc_type"])
    if "recipient" in facts and "data_item" in facts:
        recipient, item = _names("recipient", facts["recipient"]), _names("data_item", facts["data_item"])
        return {lang: f"{recipient.get(lang, '')} · {item.get(lang, '')}" for lang in ("ko", "en")}
    return None


@bp.get("/v1/console/speakers/<user_id>/overview")
def speaker_overview(user_id: str) -> Any:
    state = services()
    if not state.settings.demo:
        raise ApiError(404, "not_found", "The console's data view exists only in demo mode (MINWON_DEMO).")
    check_rate()
    citizen = state.accounts.citizen_for_user(user_id)
    if citizen is None:
        # An unlinked speaker has no data; that is a state the page shows, not an error.
        return jsonify({"user_id": user_id, "citizen": None})
    if citizen.id not in {s["citizen_id"] for s in demo_speakers()}:
        raise ApiError(404, "not_a_demo_citizen", "The console shows the demo citizens only.")
    today = korean_today(state.clock)
    certificates = [
        {
            "id": cert.id, "doc_type": cert.doc_type, "names": _names("document", cert.doc_type),
            "state": cert.state, "status": cert.status_on(today), "applied_on": _day(cert.applied_on),
            "issued_on": _day(cert.issued_on), "valid_until": _day(cert.valid_until),
        }
        for cert in state.certificates.for_citizen(citizen.id)
    ]
    wallet = state.wallets.for_citizen(citizen.id)
    copies = [
        {"id": copy.id, "doc_type": copy.doc_type, "names": _names("document", copy.doc_type),
         "certificate_id": copy.certificate_id, "status": copy.status, "issued_at": _instant(copy.issued_at),
         "valid_until": _instant(copy.valid_until)}
        for copy in state.wallet.status_control.for_citizen(citizen.id)
    ]
    ledger = state.consents
    now = state.clock()
    consents = [
        {
            "id": record.id, "recipient": record.recipient, "recipient_names": _names("recipient", record.recipient),
            "data_item": record.data_item, "data_item_names": _names("data_item", record.data_item),
            "purpose": record.purpose, "status": record.status_at(now), "active": record.is_active(now),
            "since": _instant(record.since), "valid_until": _instant(record.valid_until),
            "history": [{"seq": event.seq, "event": event.event, "at": _instant(event.at), "channel": event.channel}
                        for event in ledger.events(record.id)],
        }
        for record in sorted(ledger.records(citizen.id), key=lambda r: (r.recipient, r.data_item, r.purpose))
    ]
    pushes = state.pushes.queue.states_for(citizen.id)
    notices = [
        {"id": notice.id, "kind": notice.kind, "created_at": _instant(notice.created_at), "read": notice.read_at is not None,
         "names": _notice_names(notice.facts),
         "pushes": [{"channel": p.channel, "state": p.state} for p in pushes.get(notice.id, [])]}
        for notice in state.notifications.for_citizen(citizen.id)
    ]
    return jsonify({
        "user_id": user_id,
        "citizen": {"id": citizen.id, "name": citizen.name, "locale": citizen.locale},
        "as_of": today.isoformat(),
        "certificates": certificates,
        "wallet": {"id": wallet.id, "copies": copies} if wallet else None,
        "consents": consents,
        "notifications": notices,
    })


_NAMES = {"type": "object", "properties": {"ko": {"type": "string"}, "en": {"type": "string"}}}
_DAY = {"type": ["string", "null"], "format": "date"}
_INSTANT = {"type": ["string", "null"], "format": "date-time"}

OPENAPI_COMPONENTS = {
    "ConsoleOverview": {
        "type": "object", "required": ["user_id", "citizen"],
        "description": "A demo citizen's records as the console's My data panel shows them; `citizen` is null "
                       "for a speaker that is not linked.",
        "properties": {
            "user_id": {"type": "string"},
            "citizen": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "locale": {"type": "string"}}}]},
            "as_of": {"type": "string", "format": "date"},
            "certificates": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "doc_type": {"type": "string"}, "names": _NAMES,
                "state": {"enum": ["issued", "in_progress", "revoked", "suspended"]},
                "status": {"enum": ["issued", "expired", "in_progress", "revoked", "suspended"],
                           "description": "The state as of `as_of` (an issued certificate past its date is expired)."},
                "applied_on": _DAY, "issued_on": _DAY, "valid_until": _DAY}}},
            "wallet": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                "id": {"type": "string"},
                "copies": {"type": "array", "description": "credentials issued to the citizen's wallet, oldest first",
                           "items": {"type": "object", "properties": {
                               "id": {"type": "string"}, "doc_type": {"type": "string"}, "names": _NAMES,
                               "certificate_id": {"type": ["string", "null"]},
                               "status": {"enum": ["valid", "revoked", "suspended"]},
                               "issued_at": _INSTANT, "valid_until": _INSTANT}}}}}]},
            "consents": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "string"}, "recipient": {"type": "string"}, "recipient_names": _NAMES,
                "data_item": {"type": "string"}, "data_item_names": _NAMES, "purpose": {"type": "string"},
                "active": {"type": "boolean"}, "since": _INSTANT, "valid_until": _INSTANT}}},
            "notifications": {"type": "array", "description": "unread first, each with its pushes' delivery states",
                              "items": {"type": "object", "properties": {
                                  "id": {"type": "string"}, "kind": {"type": "string"}, "created_at": _INSTANT,
                                  "read": {"type": "boolean"},
                                  "names": {"oneOf": [{"type": "null"}, _NAMES]},
                                  "pushes": {"type": "array", "items": {"type": "object", "properties": {
                                      "channel": {"type": "string"}, "state": {"type": "string"}}}}}}},
        },
    },
}

OPENAPI_PATHS = {
    "/v1/console/converse": {"post": {
        "summary": "A typed turn from the web console: the same as /v1/converse (device token or anonymous), "
                   "recorded as channel `console`, with the session's locale in the reply.",
        "security": [{"DeviceToken": []}, {}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConverseRequest"}}}},
        "responses": {
            "200": {"description": "the reply", "content": {"application/json": {"schema": {"allOf": [
                {"$ref": "#/components/schemas/ConverseResponse"},
                {"type": "object", "required": ["locale"],
                 "properties": {"locale": {"type": "string", "enum": list(SUPPORTED_LOCALES)}}}]}}}},
            **error_responses(400, 401, 403, 413, 415, 429, 500, 503),
        },
    }},
    "/": {"get": {
        "summary": "The web voice console: push-to-talk or hands-free speech, typed turns, and (in demo mode) "
                   "the selected demo citizen's data.",
        "responses": {"200": {"description": "the page", "content": {"text/html": {}}}},
    }},
    "/console/static/{filename}": {"get": {
        "summary": "The console's scripts, styles and audio worklet.",
        "parameters": [{"name": "filename", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "the file"}, "404": {"description": "no such file"}},
    }},
    "/v1/console/speakers/{user_id}/overview": {"get": {
        "summary": "Demo mode only: the certificates, wallet and consents of the demo citizen a speaker is linked to.",
        "description": "Exists only while MINWON_DEMO is on (404 otherwise) and answers only for the demo "
                       "citizens of data/demo.yaml (404 for any other citizen). An unlinked speaker gets "
                       "`citizen: null`.",
        "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the overview", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ConsoleOverview"}}}},
            **error_responses(404, 429, 503),
        },
    }},
}
