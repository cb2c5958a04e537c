"""/openapi.json, assembled from the OPENAPI_PATHS (and OPENAPI_COMPONENTS) of every blueprint module."""

from __future__ import annotations

import sys
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

import http_api

bp = Blueprint("api_docs", __name__)


def build_openapi(app: Flask) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = dict(http_api.OPENAPI_COMPONENTS)
    security_schemes: dict[str, Any] = {}
    for blueprint in app.blueprints.values():
        module = sys.modules[blueprint.import_name]
        for path, spec in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(spec)
        schemas.update(getattr(module, "OPENAPI_COMPONENTS", {}))
        security_schemes.update(getattr(module, "OPENAPI_SECURITY_SCHEMES", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Minwon Voice", "version": "1.0.0",
                 "description": "Voice and AI-speaker assistant for citizens' dealings with the government."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": security_schemes},
    }


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(build_openapi(current_app))


OPENAPI_PATHS = {
    "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
}
