"""The one HTTP layer every blueprint uses: JSON errors, JSON bodies, bearer tokens, locales, rate checks (against
the database-backed budgets the services hold), the per-process services, and the OpenAPI pieces they share.

Endpoints of any area (channels, FAQ search, audio, the issuer) import this module and nothing of
another area's HTTP code, so search, audio and issuing do not depend on a speaker channel.
"""

from __future__ import annotations

import hmac
import json
import logging
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from settings import SUPPORTED_LOCALES
from storage import StorageUnavailable

if TYPE_CHECKING:
    from services import Services

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


# -- errors ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """Raised anywhere in a request; answered as {"error": {"code", "message"}} with its status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# The error code of a 409 for stored data that failed its integrity check (a field ciphertext copied from
# another row, a consent chain head that does not match its signature).
INTEGRITY_CODE = "integrity_check_failed"
INTEGRITY_MESSAGE = ("Stored data for this request failed its integrity check, so it was not used. "
                     "The operators have been alerted.")


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask, integrity_errors: tuple[type[Exception], ...] = ()) -> None:
    """JSON errors for every failure. `integrity_errors` are the exception types of stored data that failed an
    integrity check (the wiring passes the domain's; this layer does not import the domain)."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    def _integrity(exc: Exception) -> Any:
        # Tampering or corruption at rest: not the caller's fault and not retryable, but an expected, detected
        # condition rather than a crash, so a 409 with a stable code (and an error log for the operators).
        log.error("stored data failed its integrity check", extra={"detail": str(exc)})
        return error_response(409, INTEGRITY_CODE, INTEGRITY_MESSAGE)

    for error_type in integrity_errors:
        app.register_error_handler(error_type, _integrity)

    @app.errorhandler(StorageUnavailable)
    def _storage(exc: StorageUnavailable) -> Any:
        log.warning("storage unavailable")
        return error_response(503, "storage_unavailable", "The service is busy. Please retry.", {"Retry-After": "1"})

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        # The body is ours, but werkzeug's headers are part of the answer (RFC 9110 requires Allow on a 405).
        headers = {key: value for key, value in exc.get_headers() if key.lower() != "content-type"}
        return error_response(exc.code or 500, code, exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side. Please try again.")


# -- the per-process services ---------------------------------------------------------------------------


def services() -> Services:
    """The Services object create_app attached to the running app."""
    return current_app.extensions["minwon"]


# -- request parts --------------------------------------------------------------------------------------


def json_object() -> dict[str, Any]:
    """The request's JSON object, or an ApiError (415 wrong content type, 413 too large, 400 malformed)."""
    max_bytes = services().settings.max_json_bytes
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Send the request body as application/json.")
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"The request body is larger than {max_bytes} bytes.")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"The request body is larger than {max_bytes} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting depth
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object.")
    return body


def is_json_integer(value: Any) -> bool:
    """True for a JSON whole number: not a bool (a Python int) and not a float such as 16000.0."""
    return isinstance(value, int) and not isinstance(value, bool)


# Browsers cannot set headers on a WebSocket handshake; the one thing they can send is the list of subprotocols,
# so a page offers its device token as one of them ("minwon.bearer.<token>", beside "minwon.v1", which the
# server picks, so the token is never echoed back).
WEBSOCKET_SUBPROTOCOL = "minwon.v1"
WEBSOCKET_BEARER_PREFIX = "minwon.bearer."


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer …` header (scheme case-insensitive), or, on a WebSocket
    handshake only, of a `minwon.bearer.<token>` subprotocol; else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return token
    if request.headers.get("Upgrade", "").lower() == "websocket":
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        for protocol in offered:
            if protocol.startswith(WEBSOCKET_BEARER_PREFIX) and len(protocol) > len(WEBSOCKET_BEARER_PREFIX):
                return protocol[len(WEBSOCKET_BEARER_PREFIX):]
    return None


def require_admin_key() -> None:
    """401 unless the request carries the admin API key (``X-Admin-Key`` or ``Authorization: Bearer``)."""
    expected = services().settings.admin_api_key
    presented = request.headers.get("X-Admin-Key") or bearer_token()
    if not expected or not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise ApiError(401, "invalid_admin_key", "This endpoint needs the admin API key.")


def parse_locale(value: Any, default: str | None = None) -> str | None:
    """A supported locale, `default` when absent or empty, else a 400."""
    if value is None or value == "":
        return default
    if value not in SUPPORTED_LOCALES:
        raise ApiError(400, "unsupported_locale", "locale must be one of: " + ", ".join(SUPPORTED_LOCALES) + ".")
    return value


# -- rate limits ----------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _trusted_proxies(setting: str) -> int | tuple[IPNetwork, ...]:
    """MINWON_TRUSTED_PROXIES read once per value: a hop count, CIDRs, or 0 (none, the default)."""
    text = setting.strip()
    if not text:
        return 0
    if text.isascii() and text.isdecimal():
        return int(text)
    try:
        return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    except ValueError:
        # Trusting no proxy can only make limits stricter (every client behind the proxy shares its
        # address); trusting a wrong one would let any client choose its own bucket.
        log.error("MINWON_TRUSTED_PROXIES is neither a hop count nor a list of CIDRs: no proxy is trusted")
        return 0


def _ip(text: str) -> IPAddress | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def client_address() -> str:
    """The address per-address limits count. X-Forwarded-For is read only as far as MINWON_TRUSTED_PROXIES
    allows: each trusted proxy appends the address it was called from, so the right-most entry that no
    trusted proxy wrote is the client; anything left of it is whatever the client chose to send."""
    peer = request.remote_addr or "-"
    trusted = _trusted_proxies(services().settings.get("MINWON_TRUSTED_PROXIES"))
    if not trusted:
        return peer
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if isinstance(trusted, int):
        # A hop count: the peer is the nearest proxy, and the last `trusted` entries were written by the proxies.
        chosen = _ip(forwarded[-trusted]) if len(forwarded) >= trusted else None
        return str(chosen) if chosen else peer
    hop = _ip(peer)
    if hop is None or not any(hop in network for network in trusted):
        return peer
    for entry in reversed(forwarded):
        address = _ip(entry)
        if address is None:
            break  # not an address: the trusted hop that passed it on is as far as we can tell
        hop = address
        if not any(address in network for network in trusted):
            break
    return str(hop)


def check_rate(user: str | None = None, device: str | None = None) -> None:
    """429 when the user, the device or the calling address has used up its budget. The budgets are counted in
    the database (`services().rate_limits`), so they hold across worker processes and nodes."""
    charges = [(kind, key) for kind, key in (("user", user), ("device", device), ("ip", client_address()))
               if key is not None]
    wait = services().rate_limits.retry_after(charges)
    if wait:
        raise ApiError(429, "rate_limited", "Too many requests. Please slow down.", {"Retry-After": str(wait)})


def limit_unrouted_requests(app: Flask) -> None:
    """Requests no route takes (404, 405, made-up methods) spend the caller's address budget too, so probing
    paths and methods costs the same as calling the API; routes charge their own budgets in the handler."""

    @app.before_request
    def _charge_unrouted() -> None:
        if request.routing_exception is not None:
            check_rate()


# -- OpenAPI pieces -------------------------------------------------------------------------------------

ERROR_REF = {"$ref": "#/components/schemas/Error"}

OPENAPI_COMPONENTS = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def error_responses(*codes: int, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """OpenAPI `responses` entries for error statuses, each with the JSON error body (or `schema`)."""
    body = schema or ERROR_REF
    return {str(c): {"description": "error", "content": {"application/json": {"schema": body}}} for c in codes}


def locale_schema(default: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "enum": list(SUPPORTED_LOCALES)}
    if default:
        schema["default"] = default
    return schema
