"""JSON errors for every HTTP channel: {"error": {"code", "message"}}, never a traceback."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from storage import StorageUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def json_object(max_bytes: int) -> dict[str, Any]:
    """The request's JSON object, or an ApiError (415 wrong content type, 413 too large, 400 malformed)."""
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


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

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
