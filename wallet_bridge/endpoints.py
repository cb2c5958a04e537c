"""HTTP endpoints of the wallet bridge: OID4VCI discovery, token, nonce and credential endpoints, the JWKS,
status lists, the JSON-LD context, credential verification and the wallet mailbox.

The OAuth/OID4VCI endpoints answer errors in their specs' shape (`{"error", "error_description"}`);
the service's own endpoints (mailbox, verify) use the service's `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from domain.crypto import JWKError, public_key_from_jwk
from domain.wallets import Wallet
from http_api import ApiError, bearer_token, check_rate, client_address, error_responses, json_object, services
from outbound import OutboundRefused
from wallet_bridge.bridge import WalletBridge
from wallet_bridge.documents import CONTEXT_PATH, json_ld_context
from wallet_bridge.metadata import (
    AUTHORIZATION_SERVER_METADATA_PATH,
    CREDENTIAL_PATH,
    ISSUER_METADATA_PATH,
    JWKS_PATH,
    NONCE_PATH,
    TOKEN_PATH,
    authorization_server_metadata,
    credential_issuer_metadata,
)
from wallet_bridge.oauth_errors import OAuthError
from wallet_bridge.presentation import PAIRING_PATH, REQUEST_PATH, RESPONSE_PATH
from wallet_bridge.verification import KeyBindingRequirement

bp = Blueprint("wallet_bridge", __name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_PUSH_URL = 500


def bridge() -> WalletBridge:
    return services().wallet


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None,
          mimetype: str = "application/json") -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=mimetype)
    response.headers.update(headers or {})
    return response


@bp.errorhandler(OAuthError)
def _oauth_error(exc: OAuthError) -> Response:
    return _json(exc.body(), exc.status, exc.headers)


# --- discovery -----------------------------------------------------------------------------------------


@bp.get(ISSUER_METADATA_PATH)
def issuer_metadata() -> Response:
    return _json(credential_issuer_metadata(bridge().config))


@bp.get(AUTHORIZATION_SERVER_METADATA_PATH)
def authorization_server() -> Response:
    return _json(authorization_server_metadata(bridge().config))


@bp.get(JWKS_PATH)
def jwks() -> Response:
    # Short caching: a rotated key must reach verifiers soon, and old keys stay in the set anyway.
    return _json(bridge().keyring.jwks(), headers={"Cache-Control": "public, max-age=300"},
                 mimetype="application/jwk-set+json")


@bp.get(CONTEXT_PATH)
def context() -> Response:
    return _json(json_ld_context(bridge().config.issuer), headers={"Cache-Control": "public, max-age=86400"},
                 mimetype="application/ld+json")


@bp.get("/status/<list_id>")
def status_list(list_id: str) -> Response:
    token = bridge().status_list_jwt(list_id) if len(list_id) <= 64 else None
    if token is None:
        raise ApiError(404, "status_list_not_found", "There is no status list with that id.")
    # A revocation should reach verifiers within a minute.
    return Response(token, mimetype="application/vc+jwt", headers={"Cache-Control": "public, max-age=60"})


# --- OID4VCI ---------------------------------------------------------------------------------------------


@bp.post(TOKEN_PATH)
def token() -> Response:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the token request as application/x-www-form-urlencoded")
    if any(len(values) > 1 for values in request.form.listvalues()):
        raise OAuthError("invalid_request", "a parameter is repeated")
    response = bridge().offers.exchange_token(request.form.to_dict(), client_address())
    return _json(response, headers=NO_STORE)


@bp.post(NONCE_PATH)
def nonce() -> Response:
    check_rate(f"ip:{client_address()}")
    return _json({"c_nonce": bridge().nonces.issue()}, headers=NO_STORE)


@bp.post(CREDENTIAL_PATH)
def credential() -> Response:
    if request.mimetype != "application/json":
        raise OAuthError("invalid_credential_request", "send the credential request as application/json")
    limit = services().settings.max_json_bytes
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise OAuthError("invalid_credential_request", f"the request body is larger than {limit} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise OAuthError("invalid_credential_request", "the request body is not JSON") from None
    response = bridge().issuance.handle(request.headers.get("Authorization"), body)
    return _json(response, headers=NO_STORE)


# --- the service's own API -------------------------------------------------------------------------------


@bp.post("/v1/credentials/verify")
def verify() -> Response:
    body = json_object()
    check_rate()  # every call parses a token, checks a signature and reads a status list
    token = body.get("credential")
    if not isinstance(token, str) or not token.strip():
        raise ApiError(400, "missing_credential", "credential must be the credential as a compact JWT string.")
    holder_jwk = body.get("holder_jwk")
    if holder_jwk is not None:
        try:
            public_key_from_jwk(holder_jwk)
        except JWKError as exc:
            raise ApiError(400, "invalid_holder_jwk", "holder_jwk must be a usable public JWK.") from exc
    result = bridge().verify(token.strip(), holder_jwk)
    return _json(result.to_json(), headers=NO_STORE)


MAX_NONCE_CHARS = 256


@bp.post("/v1/presentations/verify")
def verify_presentation() -> Response:
    """For agencies: an SD-JWT VC presentation with key binding, checked for the nonce and audience they used."""
    body = json_object()
    check_rate()
    presentation = body.get("presentation")
    if not isinstance(presentation, str) or "~" not in presentation:
        raise ApiError(400, "missing_presentation",
                       "presentation must be an SD-JWT presentation (issuer JWT~disclosures~KB-JWT).")
    nonce, audience = body.get("nonce"), body.get("audience")
    for name, value in (("nonce", nonce), ("audience", audience)):
        if not isinstance(value, str) or not value or len(value) > MAX_NONCE_CHARS:
            raise ApiError(400, f"missing_{name}",
                           f"{name} must be the {name} the verifier put in its request (1 to 256 characters).")
    requirement = KeyBindingRequirement(nonce=nonce, audience=audience)
    result = bridge().verify_presentation(presentation.strip(), requirement)
    return _json(result.to_json(), headers=NO_STORE)


# --- OpenID4VP: linking a speaker by presenting the mobile ID ------------------------------------------------


def _form() -> dict[str, str]:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded")
    if request.content_length is not None and request.content_length > services().settings.max_json_bytes:
        raise OAuthError("invalid_request", "the request body is too large")
    if any(len(values) > 1 for values in request.form.listvalues()):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return request.form.to_dict()


@bp.post(PAIRING_PATH)
def pairing() -> Response:
    response = bridge().pairings.resolve(_form().get("pairing_number"), client_address())
    return _json(response, headers=NO_STORE)


@bp.get(f"{REQUEST_PATH}/<pairing_id>")
def request_object(pairing_id: str) -> Response:
    token = bridge().pairings.request_object(pairing_id)
    if token is None:
        # Like any other missing resource (a request_uri is fetched, not called with parameters).
        raise ApiError(404, "request_not_found", "There is no open authorization request at this request_uri.")
    return Response(token, mimetype="application/oauth-authz-req+jwt", headers=NO_STORE)


@bp.post(RESPONSE_PATH)
def presentation_response() -> Response:
    return _json(bridge().pairings.respond(_form()), headers=NO_STORE)


def _wallet(wallet_id: str) -> Wallet:
    token = bearer_token()
    wallet = bridge().wallets.authenticate(wallet_id, token) if token and len(token) <= 200 else None
    if wallet is None:
        # The same answer for an unknown wallet and a wrong token: the id alone reveals nothing.
        raise ApiError(401, "invalid_token", "A valid wallet token is required (Authorization: Bearer …).",
                       {"WWW-Authenticate": 'Bearer realm="wallet-mailbox"'})
    return wallet


@bp.get("/v1/wallets/<wallet_id>/offers")
def mailbox(wallet_id: str) -> Response:
    wallet = _wallet(wallet_id)
    return _json({"wallet_id": wallet.id, "offers": bridge().offers.pending_for_wallet(wallet.id)}, headers=NO_STORE)


@bp.put("/v1/wallets/<wallet_id>/push-url")
def push_url(wallet_id: str) -> Response:
    wallet = _wallet(wallet_id)
    body = json_object()
    url = body.get("url")
    if url is not None:
        if not isinstance(url, str) or len(url) > MAX_PUSH_URL:
            reason = "not a URL of at most 500 characters"
        else:
            # The rules of outbound.py, without DNS: a name that resolves to a public address now may not later,
            # so names are resolved and checked at every push; address literals are checked here already.
            try:
                bridge().outbound.check_url(url)
                reason = None
            except OutboundRefused as exc:
                reason = exc.reason
        if reason:
            raise ApiError(400, "invalid_push_url", "url must be an https URL of at most 500 characters on a "
                           f"public host, without user info or fragment, or null ({reason}).")
    bridge().wallets.set_push_url(wallet.id, url)
    return _json({"wallet_id": wallet.id, "push_url": url})


# --- OpenAPI -----------------------------------------------------------------------------------------------

_OAUTH_ERROR = {"$ref": "#/components/schemas/OAuthError"}


def _json_ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}}


_ONE_SEGMENT = "one path segment (an id with '/' matches no route: 404)"
_BEARER = [{"name": "Authorization", "in": "header", "required": True, "schema": {"type": "string"},
            "description": "Bearer token"}]

OPENAPI_COMPONENTS = {
    "OAuthError": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
        "description": "RFC 6749 / OID4VCI error: invalid_request, invalid_grant, unsupported_grant_type, slow_down, "
                       "invalid_token, invalid_credential_request, invalid_proof, invalid_nonce, "
                       "unknown_credential_configuration, unknown_credential_identifier, credential_request_denied, "
                       "invalid_encryption_parameters; OpenID4VP: access_denied.",
    },
    "VerificationResult": {
        "type": "object", "required": ["valid", "failed_check", "checks"],
        "properties": {
            "valid": {"type": "boolean"},
            "failed_check": {"type": ["string", "null"],
                             "enum": [None, "format", "key", "signature", "claims", "dates", "holder_binding", "status"]},
            "checks": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "ok": {"type": ["boolean", "null"]}, "detail": {"type": "string"}}}},
            "credential": {"type": ["object", "null"]},
            "disclosed": {"type": "object"},
            "status": {"type": "object", "additionalProperties": {"type": "integer"}},
        },
    },
}

OPENAPI_PATHS = {
    ISSUER_METADATA_PATH: {"get": {"summary": "OID4VCI 1.0 Credential Issuer metadata.",
                                   "responses": _json_ok("issuer metadata")}},
    AUTHORIZATION_SERVER_METADATA_PATH: {"get": {"summary": "RFC 8414 authorization server metadata (token endpoint).",
                                                 "responses": _json_ok("authorization server metadata")}},
    JWKS_PATH: {"get": {"summary": "The issuer's public keys (JWKS), current and rotated.",
                        "responses": {"200": {"description": "JWK set",
                                              "content": {"application/jwk-set+json": {"schema": {"type": "object"}}}}}}},
    CONTEXT_PATH: {"get": {"summary": "JSON-LD context of this issuer's credential types and claims.",
                           "responses": {"200": {"description": "JSON-LD context",
                                                 "content": {"application/ld+json": {"schema": {"type": "object"}}}}}}},
    "/status/{list_id}": {"get": {
        "summary": "A Bitstring Status List credential (revocation or suspension), signed as vc+jwt.",
        "parameters": [{"name": "list_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "compact JWS", "content": {"application/vc+jwt": {"schema": {"type": "string"}}}},
                      **error_responses(404)},
    }},
    TOKEN_PATH: {"post": {
        "summary": "Token endpoint: pre-authorized code grant with tx_code.",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["grant_type", "pre-authorized_code"],
            "properties": {"grant_type": {"const": "urn:ietf:params:oauth:grant-type:pre-authorized_code"},
                           "pre-authorized_code": {"type": "string"}, "tx_code": {"type": "string"}}}}}},
        "responses": {**_json_ok("access token", {"type": "object", "properties": {
            "access_token": {"type": "string"}, "token_type": {"const": "Bearer"}, "expires_in": {"type": "integer"}}}),
            **error_responses(400, 429, schema=_OAUTH_ERROR)},
    }},
    NONCE_PATH: {"post": {"summary": "A fresh c_nonce for a key proof (single use, Cache-Control: no-store).",
                          "responses": {**_json_ok("c_nonce", {"type": "object", "properties": {
                              "c_nonce": {"type": "string"}}}), **error_responses(429)}}},
    CREDENTIAL_PATH: {"post": {
        "summary": "Credential endpoint: a vc+jwt bound to the key of the jwt proof.",
        "parameters": _BEARER,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object", "properties": {
            "credential_configuration_id": {"type": "string"},
            "proofs": {"type": "object", "properties": {"jwt": {"type": "array", "items": {"type": "string"}}}}}}}}},
        "responses": {**_json_ok("credentials", {"type": "object", "properties": {"credentials": {
            "type": "array", "items": {"type": "object", "properties": {"credential": {"type": "string"}}}}}}),
            **error_responses(400, 401, schema=_OAUTH_ERROR)},
    }},
    "/v1/credentials/verify": {"post": {
        "summary": "Verify a credential of this issuer: signature, key, claims, dates, holder binding, status.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["credential"],
            "properties": {"credential": {"type": "string"}, "holder_jwk": {"type": "object"}}}}}},
        "responses": {**_json_ok("verification result (valid or not)",
                                 {"$ref": "#/components/schemas/VerificationResult"}),
                      **error_responses(400, 413, 415, 429)},
    }},
    "/v1/presentations/verify": {"post": {
        "summary": "Verify an SD-JWT VC presentation of a credential of this issuer, with its key binding JWT.",
        "description": "Checks format, the issuer's key and signature, the disclosures, dates, the key binding "
                       "(signed by the cnf key, sd_hash, the given nonce and audience, iat within five minutes) "
                       "and the status lists; answers the disclosed claims and the first check that failed.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["presentation", "nonce", "audience"],
            "properties": {"presentation": {"type": "string"}, "nonce": {"type": "string"},
                           "audience": {"type": "string"}}}}}},
        "responses": {**_json_ok("verification result (valid or not)",
                                 {"$ref": "#/components/schemas/VerificationResult"}),
                      **error_responses(400, 413, 415, 429)},
    }},
    PAIRING_PATH: {"post": {
        "summary": "OpenID4VP cross-device: the pairing number the speaker read out, for an authorization "
                   "request by reference (client_id + request_uri). The number is spent.",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["pairing_number"],
            "properties": {"pairing_number": {"type": "string"}}}}}},
        "responses": {**_json_ok("authorization request by reference", {"type": "object", "properties": {
            "client_id": {"type": "string"}, "request_uri": {"type": "string"},
            "request_uri_method": {"type": "string"}, "expires_in": {"type": "integer"}}}),
            **error_responses(400, 429, schema=_OAUTH_ERROR)},
    }},
    REQUEST_PATH + "/{pairing_id}": {"get": {
        "summary": "The signed OpenID4VP request object (oauth-authz-req+jwt): direct_post, nonce, state, DCQL.",
        "parameters": [{"name": "pairing_id", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": _ONE_SEGMENT}],
        "responses": {"200": {"description": "compact JWS", "content": {
            "application/oauth-authz-req+jwt": {"schema": {"type": "string"}}}},
            **error_responses(404)},
    }},
    RESPONSE_PATH: {"post": {
        "summary": "OpenID4VP response URI (direct_post): vp_token and state; links the speaker when the "
                   "mobile ID presentation verifies.",
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["state"],
            "properties": {"vp_token": {"type": "string"}, "state": {"type": "string"},
                           "error": {"type": "string"}, "error_description": {"type": "string"}}}}}},
        "responses": {**_json_ok("accepted", {"type": "object"}), **error_responses(400, schema=_OAUTH_ERROR)},
    }},
    "/v1/wallets/{wallet_id}/offers": {"get": {
        "summary": "The wallet's mailbox: pending OID4VCI credential offers.",
        "parameters": [{"name": "wallet_id", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": _ONE_SEGMENT}, *_BEARER],
        "responses": {**_json_ok("pending offers", {"type": "object", "properties": {
            "wallet_id": {"type": "string"}, "offers": {"type": "array", "items": {"type": "object", "properties": {
                "offer_id": {"type": "string"}, "created_at": {"type": "string"}, "expires_at": {"type": "string"},
                "credential_offer": {"type": "object"}}}}}}),
            **error_responses(401, 404)},
    }},
    "/v1/wallets/{wallet_id}/push-url": {"put": {
        "summary": "Register (or with null, remove) the URL that new offers are POSTed to, with retries.",
        "description": "https only, on a public host (an address literal must be public; a name is resolved and "
                       "checked at every push), no user info or fragment; redirects are not followed.",
        "parameters": [{"name": "wallet_id", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": _ONE_SEGMENT}, *_BEARER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["url"], "properties": {"url": {"type": ["string", "null"]}}}}}},
        "responses": {**_json_ok("registered"), **error_responses(400, 401, 404, 413, 415)},
    }},
}
