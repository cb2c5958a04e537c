"""The one HTTP layer every blueprint uses: JSON errors, JSON bodies, bearer tokens, locales, rate checks,
the per-process services, and the OpenAPI pieces they share.

Endpoints of any area (channels, FAQ search, audio, the issuer) import this module and nothing of
another area's HTTP code, so search, audio and issuing do not depend on a speaker channel.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from settings import SUPPORTED_LOCALES
from storage import StorageUnavailable

if TYPE_CHECKING:
    from services import Services

log = logging.getLogger(__name__)


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
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side. Please try again.")


# -- the per-process services ---------------------------------------------------------------------------


def services() -> Services:
    """The Services object create_app attached to the running app."""
    return current_app.extensions["minwon"]


# -- request parts --------------------------------------------------------------------------------------


def json_object(max_bytes: int | None = None) -> dict[str, Any]:
    """The request's JSON object, or an ApiError (415 wrong content type, 413 too large, 400 malformed)."""
    if max_bytes is None:
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


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer …` header (scheme case-insensitive), or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


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


class RateLimiter:
    """Token buckets per key, in memory per process: `retry_after` is 0 or the seconds to wait."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 when the request may go ahead (and takes a token), else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            return max(1, math.ceil((1 - tokens) / self.rate))


def check_rate(user: str | None = None, device: str | None = None) -> None:
    """429 when the user, the device or the calling address has used up its budget."""
    limiters = services().rate_limiters
    for kind, key in (("user", user), ("device", device), ("ip", request.remote_addr or "-")):
        if key is None:
            continue
        wait = limiters[kind].retry_after(key)
        if wait:
            raise ApiError(429, "rate_limited", "Too many requests. Please slow down.", {"Retry-After": str(wait)})


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
