"""``POST /alexa``: the Alexa custom-skill endpoint.

Every request is verified as Amazon requires (``verification.py``) before its body is read; a failure
is HTTP 400 and nothing runs. ``MINWON_ALEXA_VERIFY=0`` turns verification off for development only,
and every start of the app then logs a warning. Settings: ``MINWON_ALEXA_SKILL_ID`` (the skill id the
requests must carry), ``MINWON_ALEXA_TRUST_STORE`` (a PEM bundle of roots; default: the CA bundle of
``requests``). The certificate chain is fetched through ``outbound.py`` and only for a request whose
timestamp and application id already pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from channels.alexa.interaction_model import AlexaCatalog
from channels.alexa.request import PLATFORM, parse_alexa_request
from channels.alexa.response import render_alexa, render_delegate, render_empty
from channels.alexa.verification import (
    AlexaRequestVerifier,
    AlexaVerificationError,
    CachedCertificateFetcher,
    HttpCertificateFetcher,
    load_trust_roots,
)
from channels.speaker_dialog import charge_speaker_turn, converse_for_speaker
from http_api import ApiError, error_responses, services
from settings import PROJECT_DATA

log = logging.getLogger(__name__)

bp = Blueprint("alexa", __name__)

HANDLED_TYPES = ("LaunchRequest", "IntentRequest", "SessionEndedRequest")


@dataclass
class AlexaChannel:
    verify: bool
    verifier: AlexaRequestVerifier
    catalog: AlexaCatalog


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    minwon = state.app.extensions["minwon"]
    settings = minwon.settings
    verify = settings.flag("MINWON_ALEXA_VERIFY", True)
    skill_id = settings.get("MINWON_ALEXA_SKILL_ID", "").strip()
    trust_store = settings.get("MINWON_ALEXA_TRUST_STORE", "").strip()
    if not verify:
        log.warning("Alexa request verification is OFF (MINWON_ALEXA_VERIFY=0): development only, never in production")
    elif not skill_id:
        log.warning("MINWON_ALEXA_SKILL_ID is unset: every Alexa request will be refused")
    roots = load_trust_roots(trust_store) if trust_store else None
    state.app.extensions["minwon_alexa"] = AlexaChannel(
        verify=verify,
        verifier=AlexaRequestVerifier(
            skill_id, trust_roots=roots,
            fetch_certificate=CachedCertificateFetcher(HttpCertificateFetcher(minwon.outbound)),
        ),
        catalog=AlexaCatalog.load(PROJECT_DATA),
    )


def _envelope(channel: AlexaChannel, max_bytes: int) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request body as application/json.")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"The request body is larger than {max_bytes} bytes.")
    if channel.verify:
        try:
            return channel.verifier.verify(request.headers, raw)
        except AlexaVerificationError as exc:
            log.warning("alexa request refused", extra={"reason": exc.code})
            raise ApiError(exc.status, exc.code, exc.message) from exc
    try:
        envelope = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: hostile nesting
        raise ApiError(400, "malformed_json", "The request body must be a JSON object.") from exc
    if not isinstance(envelope, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object.")
    return envelope


@bp.post("/alexa")
def alexa() -> Any:
    state = services()
    channel: AlexaChannel = current_app.extensions["minwon_alexa"]
    envelope = _envelope(channel, state.settings.max_json_bytes)
    parsed = parse_alexa_request(envelope)
    if parsed.request_type not in HANDLED_TYPES:
        # System.ExceptionEncountered reports that Alexa could not use an earlier response; player
        # events and other types need no speech. None of them runs a dialog turn.
        log.warning("alexa request without a turn", extra={"type": parsed.request_type, "error": parsed.error_type})
        return jsonify(render_empty())
    turn = parsed.to_turn(channel.catalog)
    # Alexa collects the slots of our own intents; an intent we do not define gets an answer, not a delegation
    # that would leave the citizen in a dialog nobody fulfils.
    if parsed.in_dialog and turn.event != "unsupported":
        return jsonify(render_delegate(parsed.raw_intent, parsed.session_attributes))
    outcome = charge_speaker_turn(turn) or converse_for_speaker(state.dialog, turn)
    remember_push_address(parsed.user_id, parsed.platform_user)
    if parsed.request_type == "SessionEndedRequest":
        return jsonify(render_empty())
    return jsonify(render_alexa(outcome.reply, parsed.session_attributes))



def remember_push_address(user_id: str, platform_user: str) -> None:
    """A linked user whose userId the service keeps only as a digest: its userId, sealed, for the proactive events
    that notify it (channels/pushes.py). Unlinked users' ids are not kept."""
    if not user_id.startswith(f"{PLATFORM}:h:") or not platform_user:
        return
    state = services()
    if state.push_addresses.known(user_id) or not state.accounts.is_linked(user_id):
        return
    state.push_addresses.remember(user_id, platform_user)


OPENAPI_PATHS = {
    "/alexa": {
        "post": {
            "summary": "Alexa custom-skill endpoint (request and response as in the Alexa Skills Kit reference).",
            "description": (
                "Verified as Amazon requires: SignatureCertChainUrl and Signature-256 headers, certificate "
                "chain and SAN echo-api.amazon.com, RSA/SHA-256 signature of the raw body, timestamp within "
                "150 s, application id equal to MINWON_ALEXA_SKILL_ID. Any failure is 400 and nothing runs."
            ),
            "parameters": [
                {"name": "SignatureCertChainUrl", "in": "header", "required": True, "schema": {"type": "string"}},
                {"name": "Signature-256", "in": "header", "required": True, "schema": {"type": "string"}},
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {
                    "description": "Alexa response (schema: channels/schemas/alexa_response.json)",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AlexaResponse"}}},
                },
                **error_responses(400, 413, 415, 429, 500),
            },
        }
    }
}

OPENAPI_COMPONENTS = {
    "AlexaResponse": {
        "type": "object",
        "required": ["version", "response"],
        "properties": {
            "version": {"type": "string"},
            "sessionAttributes": {"type": "object"},
            "response": {"type": "object"},
        },
    }
}
