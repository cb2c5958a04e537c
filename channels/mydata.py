"""My Data over HTTP: the release endpoint that recipient agencies call, and the citizen app's view of
their consents and signed receipts.

- `POST /v1/mydata/share` — an agency, authenticated by its own API key (Bearer), asks for one of a
  citizen's data items; 200 with the data only under an active consent within its validity, 403
  otherwise (404 when the consent is active but the item is not on record, 409 when the stored item fails
  its integrity check). Every call is recorded. A withdrawal by voice is committed before the
  speaker answers, so the very next call sees it.
- `GET /v1/citizens/{id}/consents` and `.../consents/{record_id}/receipts` — for the citizen's app,
  authenticated by the citizen's app token (Bearer); a token only opens its own citizen's records.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify

from domain.consent_terms import DEFAULT_PURPOSE
from domain.mydata import decide_share
from http_api import INTEGRITY_CODE, ApiError, bearer_token, check_rate, error_responses, json_object, services

log = logging.getLogger(__name__)

bp = Blueprint("mydata", __name__)

MAX_ID_CHARS = 64


def unauthorized(what: str) -> ApiError:
    return ApiError(401, "unauthorized", f"Send a valid {what} as 'Authorization: Bearer <token>'.",
                    {"WWW-Authenticate": "Bearer"})


def _identifier(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise ApiError(400, f"invalid_{name}", f"{name} must be a string of 1 to {MAX_ID_CHARS} characters.")
    return value


@bp.post("/v1/mydata/share")
def share() -> Any:
    state = services()
    key = bearer_token()
    agency = state.agency_keys.agency_for(key) if key else None
    if agency is None:
        raise unauthorized("agency API key")
    check_rate(user=f"agency:{agency}")
    body = json_object()
    citizen_id = _identifier(body, "citizen_id")
    data_item = _identifier(body, "data_item")
    purpose = _identifier(body, "purpose", DEFAULT_PURPOSE)
    ledger = state.consents
    if data_item not in ledger.terms.data_items:
        raise ApiError(400, "unknown_data_item", "data_item must be one of: " + ", ".join(ledger.terms.data_items))
    if purpose not in ledger.terms.purposes:
        raise ApiError(400, "unknown_purpose", "purpose must be one of: " + ", ".join(ledger.terms.purposes))
    decision = decide_share(state.db, ledger, state.citizen_data, agency, citizen_id,
                            data_item, purpose)
    log.info("mydata share", extra={"agency": agency, "data_item": data_item, "outcome": decision.outcome})
    if decision.outcome == "refused":
        # The same answer for an unknown citizen, a withdrawn or an expired consent: nothing to learn from it.
        raise ApiError(403, "no_consent", "There is no active consent for this agency to receive this data item.")
    if decision.outcome == "no_data":
        raise ApiError(404, "no_data", "The consent is active, but no such data item is on record for the citizen.")
    if decision.outcome == "unreadable":
        # The stored item is not this row's (copied from another citizen or data item): nothing is released.
        raise ApiError(409, INTEGRITY_CODE, "The data item on record failed its integrity check, so it was not "
                       "released. The operators have been alerted.")
    return jsonify({
        "share_id": decision.request_id, "citizen_id": citizen_id, "data_item": data_item, "purpose": purpose,
        "consent_record_id": decision.consent_record_id,
        "consent_valid_until": decision.valid_until.isoformat() if decision.valid_until else None,
        "data": decision.data,
    })


def citizen_from_token(citizen_id: str) -> None:
    """401 without a valid citizen app token, 403 when the token is another citizen's (after its rate check)."""
    state = services()
    token = bearer_token()
    owner = state.citizen_tokens.citizen_for(token) if token else None
    if owner is None:
        raise unauthorized("citizen app token")
    check_rate(user=f"citizen:{owner}")
    if owner != citizen_id:
        raise ApiError(403, "forbidden", "This token does not give access to that citizen's records.")


@bp.get("/v1/citizens/<citizen_id>/consents")
def list_consents(citizen_id: str) -> Any:
    citizen_from_token(citizen_id)
    ledger = services().consents
    ledger.expire_due(citizen_id)
    consents = []
    for record in ledger.records(citizen_id):
        history = [{"seq": e.seq, "type": e.event, "at": e.at.isoformat(), "channel": e.channel, "actor": e.actor}
                   for e in ledger.events(record.id)]
        consents.append({**ledger.describe(record), "events": history})
    return jsonify({"citizen_id": citizen_id, "consents": consents})


@bp.get("/v1/citizens/<citizen_id>/consents/<record_id>/receipts")
def consent_receipts(citizen_id: str, record_id: str) -> Any:
    citizen_from_token(citizen_id)
    ledger = services().consents
    record = ledger.record(citizen_id, record_id)
    if record is None:
        raise ApiError(404, "not_found", "No such consent record for this citizen.")
    receipts = [{"seq": e.seq, "type": e.event, "at": e.at.isoformat(), "receipt": e.receipt}
                for e in ledger.events(record.id)]
    return jsonify({"record_id": record.id, "receipts": receipts, "jwks": ledger.jwks()})


# -- OpenAPI ------------------------------------------------------------------------------------------------


def _json(ref: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": ref}}}}


_NAMED = {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}}

OPENAPI_SECURITY_SCHEMES = {
    "AgencyKey": {"type": "http", "scheme": "bearer", "description": "A recipient agency's own API key."},
    "CitizenToken": {"type": "http", "scheme": "bearer", "description": "The citizen's app token."},
}

OPENAPI_COMPONENTS = {
    "ShareRequest": {
        "type": "object", "required": ["citizen_id", "data_item"],
        "properties": {
            "citizen_id": {"type": "string", "maxLength": MAX_ID_CHARS},
            "data_item": {"type": "string", "enum": ["income", "resident-registration", "health-insurance"]},
            "purpose": {"type": "string", "default": DEFAULT_PURPOSE},
        },
    },
    "ShareResponse": {
        "type": "object",
        "required": ["share_id", "citizen_id", "data_item", "purpose", "consent_record_id", "data"],
        "properties": {
            "share_id": {"type": "string"}, "citizen_id": {"type": "string"}, "data_item": {"type": "string"},
            "purpose": {"type": "string"}, "consent_record_id": {"type": "string"},
            "consent_valid_until": {"type": ["string", "null"], "format": "date-time"},
            "data": {"type": "object", "description": "The citizen's data item."},
        },
    },
    "ConsentRecord": {
        "type": "object",
        "description": "A consent record after ISO/IEC TS 27560, with its event history.",
        "properties": {
            "record_id": {"type": "string"}, "principal_id": {"type": "string", "description": "pseudonym"},
            "controller": _NAMED, "recipient": _NAMED,
            "purpose": {"type": "object", "properties": {"id": {"type": "string"}, "description": {"type": "string"}}},
            "data_items": {"type": "array", "items": _NAMED}, "legal_basis": {"type": "string"},
            "notice_url": {"type": "string", "format": "uri"}, "language": {"type": "string"},
            "jurisdiction": {"type": "string"}, "status": {"enum": ["active", "withdrawn", "expired"]},
            "validity": {"type": "object", "properties": {
                "from": {"type": ["string", "null"], "format": "date-time"},
                "until": {"type": ["string", "null"], "format": "date-time"}}},
            "withdrawal_method": {"type": "string"},
            "events": {"type": "array", "items": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "type": {"enum": ["given", "withdrawn", "expired", "renewed"]},
                "at": {"type": "string", "format": "date-time"}, "channel": {"type": "string"},
                "actor": {"type": "string"}}}},
        },
    },
    "ConsentList": {
        "type": "object", "required": ["citizen_id", "consents"],
        "properties": {"citizen_id": {"type": "string"},
                       "consents": {"type": "array", "items": {"$ref": "#/components/schemas/ConsentRecord"}}},
    },
    "ReceiptList": {
        "type": "object", "required": ["record_id", "receipts", "jwks"],
        "properties": {
            "record_id": {"type": "string"},
            "receipts": {"type": "array", "items": {"type": "object", "properties": {
                "seq": {"type": "integer"}, "type": {"type": "string"}, "at": {"type": "string", "format": "date-time"},
                "receipt": {"type": "string", "description": "Compact JWS (ES256) over the consent receipt."}}}},
            "jwks": {"type": "object", "description": "The JWK Set that verifies the receipts."},
        },
    },
}

_CITIZEN_ID = {"name": "citizen_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "one path segment (an id with '/' matches no route: 404)"}

OPENAPI_PATHS = {
    "/v1/mydata/share": {"post": {
        "summary": "A recipient agency receives one of a citizen's data items, only under an active consent.",
        "security": [{"AgencyKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ShareRequest"}}}},
        "responses": {"200": _json("#/components/schemas/ShareResponse", "the data item"),
                      **error_responses(400, 401, 403, 404, 409, 413, 415, 429, 503)},
    }},
    "/v1/citizens/{citizen_id}/consents": {"get": {
        "summary": "The citizen's consent records (ISO/IEC TS 27560 fields) with their event history.",
        "security": [{"CitizenToken": []}], "parameters": [_CITIZEN_ID],
        "responses": {"200": _json("#/components/schemas/ConsentList", "the consent records"),
                      **error_responses(401, 403, 404, 429, 503)},
    }},
    "/v1/citizens/{citizen_id}/consents/{record_id}/receipts": {"get": {
        "summary": "The signed consent receipts (one per event) of one consent record, and the key to check them.",
        "security": [{"CitizenToken": []}],
        "parameters": [_CITIZEN_ID, {"name": "record_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _json("#/components/schemas/ReceiptList", "the receipts"),
                      **error_responses(401, 403, 404, 429, 503)},
    }},
}
